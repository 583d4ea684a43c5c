"""Client-side quota: a sliding-window limiter that never lets more than N calls start per window, and lowers N
to what the server actually grants when it answers 429.

One limiter instance is safe across threads. Given a state store, the window *and* the adapted limit are shared by
everyone using the same store, because the iTick quota is per account, not per process: a `state_file` (a
`FileStateStore`) for every process of one machine (Dagster's multiprocess executor, parallel backfills), a
`PostgresStateStore` for workers on several machines (sources.quota_state). A store that keeps a clock (PostgreSQL:
the server's) supplies "now" for every instant in the state, so machines whose clocks disagree share one window.

Adapting. A quota of S calls per window means that past S grants the server refuses *every* call until its window
slides: quota 429s come in runs. A 429 for any other reason (an overloaded or faulty server, a proxy) comes alone,
and the next calls are granted as usual. So a run of `REFUSALS_IN_A_ROW` 429s with no call granted between them
(within one window) is what shows the quota: a real quota produces one with its first calls past S, at the cost
of that many 429s, while stray 429s arriving at a rate q produce one only with probability q^(REFUSALS_IN_A_ROW-1)
per stray (one in a thousand at q = 10%, a server refusing a tenth of all calls for reasons of its own). Shorter
runs change nothing: the earlier rule, which cut at every 429 to what the last window granted, let such strays
ratchet the limit down (a soak at 10% faults took 495 s instead of about 60 s). Then the limit drops at once to
the calls the server granted in the last window (by half when it granted none, once per window), never below 1.
After `PROBE_AFTER_WINDOWS` windows' worth of successes at the limit it probes back up by a quarter (at least one
call), never above the plan: an unlucky cut recovers in a few probes, and a real quota answers each probe with one
run of 429s. A Retry-After, even on a stray 429, pauses every caller sharing the state. The adapted limit is
forgotten once the account has been idle for `IDLE_RESET_WINDOWS` windows, so each run starts from the plan again.
"""

from __future__ import annotations

import bisect
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import orjson

from ticklake.sources.quota_state import FileStateStore, StateStore

T = TypeVar("T")

PLAN_CALLS_PER_MINUTE: dict[str, int] = {"free": 5, "base": 120, "pro": 600, "premium": 1200}
PROBE_AFTER_WINDOWS = 2  # probe up after this many windows' worth of successes at the current limit
PROBE_STEP = 4  # a probe raises the limit by limit // PROBE_STEP, at least one call
REFUSALS_IN_A_ROW = 4  # 429s with no call granted between them (within a window) that show the quota
IDLE_RESET_WINDOWS = 10  # an account idle this long starts again from the plan

logger = logging.getLogger(__name__)


def calls_per_minute(plan: str | int) -> int:
    """Resolve an iTick plan name (free/base/pro/premium) or a positive number to calls per minute."""
    if isinstance(plan, int) and not isinstance(plan, bool):
        value = plan
    else:
        text = str(plan).strip().lower()
        if text in PLAN_CALLS_PER_MINUTE:
            return PLAN_CALLS_PER_MINUTE[text]
        if not text.isdigit():
            raise ValueError(
                f"unknown iTick plan {plan!r}: use one of {', '.join(PLAN_CALLS_PER_MINUTE)} or a number of calls "
                "per minute (ITICK_PLAN)"
            )
        value = int(text)
    if value <= 0:
        raise ValueError(f"calls per minute must be positive, got {value}")
    return value


class QuotaWaitError(TimeoutError):
    """The limiter would make a call wait longer than its caller allows."""

    def __init__(self, wait_s: float):
        super().__init__(f"the next call could start in {wait_s:.1f} s")
        self.wait_s = wait_s


def cut(limit: int, granted: int, recently_cut: bool) -> int:
    """The limit after a 429. Evidence first: the server granted `granted` calls in the last window, so that is its
    rate (idempotent, so the 429s of calls already in flight agree). Without evidence below the limit, decrease
    at most once per window: by one when the server granted the whole limit, by half when it granted nothing."""
    if 0 < granted < limit:
        return granted
    if recently_cut:
        return limit
    return max(1, min(limit - 1, granted) if granted else limit // 2)


@dataclass
class _State:
    """What the limiter shares: call starts, grants (answers that were not 429), the adapted limit and a pause."""

    starts: deque[float] = field(default_factory=deque)
    granted: deque[float] = field(default_factory=deque)
    limit: int | None = None  # None: the plan
    streak: int = 0  # successes since the last change of limit or the last run of 429s
    cut_at: float | None = None
    refusals: int = 0  # 429s since the last grant: the current run (over once a window passes without a 429)
    refused_at: float | None = None  # the last 429
    blocked_until: float = 0.0  # Retry-After
    observed: int | None = None  # the last measured grant per window
    warned: bool = False
    touched: float = 0.0

    def forget_adaptation(self) -> None:
        self.limit, self.streak, self.cut_at, self.observed, self.warned = None, 0, None, None, False
        self.refusals, self.refused_at = 0, None

    def to_json(self) -> bytes:
        return orjson.dumps({**vars(self), "starts": list(self.starts), "granted": list(self.granted)})

    @classmethod
    def from_text(cls, text: str) -> _State:
        """The shared file's state; the older format (one start per line) keeps its starts, a damaged file reads
        as fresh state (the worst case is one window's worth of 429s, which the limiter then adapts to)."""
        try:
            raw = orjson.loads(text) if text.strip() else {}
        except orjson.JSONDecodeError:
            return cls(starts=deque(_finite(text.split())))
        if not isinstance(raw, dict):
            return cls()
        try:
            return cls(starts=deque(_finite(raw.get("starts") or [])), granted=deque(_finite(raw.get("granted") or [])),
                       limit=_positive(raw.get("limit")), streak=int(raw.get("streak") or 0),
                       cut_at=_float_or_none(raw.get("cut_at")), blocked_until=float(raw.get("blocked_until") or 0.0),
                       observed=_positive(raw.get("observed")), warned=bool(raw.get("warned")),
                       touched=float(raw.get("touched") or 0.0), refusals=int(raw.get("refusals") or 0),
                       refused_at=_float_or_none(raw.get("refused_at")))
        except (TypeError, ValueError):
            return cls()


def _finite(values: Iterable[object]) -> list[float]:
    out = []
    for value in values:
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            out.append(number)
    return out


def _float_or_none(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _positive(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) and value >= 1 else None


def per_window(window_s: float) -> str:
    """How a rate reads: "calls/min" for iTick's real window, "calls per 2 s" for a compressed one."""
    return "calls/min" if window_s == 60 else f"calls per {window_s:g} s"


class SlidingWindowLimiter:
    """At most `limit` call starts in any interval of `window_s` (+ a safety margin) seconds, where `limit` is
    `calls` (the plan) until the server's 429s show it grants fewer."""

    def __init__(
        self,
        calls: int,
        window_s: float = 60.0,
        *,
        margin_s: float | None = None,
        state_file: Path | None = None,
        store: StateStore | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        plan: str | None = None,
    ):
        if calls <= 0 or window_s <= 0:
            raise ValueError("a rate limit needs calls > 0 and window_s > 0")
        if state_file is not None and store is not None:
            raise ValueError("give the limiter a state_file or a store, not both")
        self.calls = calls
        self.plan = plan or str(calls)  # how ITICK_PLAN was written, for messages
        self.nominal_window_s = window_s
        # The server stamps a call when it arrives, we stamp it when it leaves: a small margin absorbs
        # the jitter between the two so both clocks agree the window was respected.
        self.window_s = window_s + (margin_s if margin_s is not None else max(0.05, window_s * 0.02))
        self._clock, self._sleep = clock, sleep  # the clock only when the store keeps none
        self._lock = threading.Lock()
        self._memory = _State()
        self.store: StateStore | None = FileStateStore(state_file) if state_file is not None else store
        self.waited_s = 0.0
        # Calls of this process in flight (thread -> its start, on the state's clock), and the advice of a cut that
        # waits for the calls in flight at the cut: their grants count in the window the server measured.
        self._flight_lock = threading.Lock()
        self._in_flight: dict[int, float] = {}
        self._advice: _Advice | None = None

    # -- the quota ------------------------------------------------------------------------------------
    def acquire(self, max_wait_s: float | None = None) -> float:
        """Block until a call may start; return the seconds waited. QuotaWaitError, without waiting, when the
        call could not start within `max_wait_s`."""
        waited = 0.0
        while True:
            delay, now = self._transact(self._start)
            if delay is None:
                with self._lock:
                    self.waited_s += waited
                self._begin(now)
                return waited
            delay = max(delay, 0.001)
            if max_wait_s is not None and waited + delay > max_wait_s:
                raise QuotaWaitError(waited + delay)
            self._sleep(delay)
            waited += delay

    def _start(self, state: _State, now: float) -> tuple[float | None, float]:
        """Record a call start now if the window and any pause allow it (None), else the seconds to wait; and now."""
        limit = self._limit(state)
        if now >= state.blocked_until and len(state.starts) < limit:
            state.starts.append(now)
            return None, now
        return max(state.blocked_until - now, _next_free(state.starts, limit, self.window_s) - now), now

    @property
    def limit(self) -> int:
        """Calls per window the limiter admits now (the plan, or less after 429s)."""
        return self._transact(lambda state, now: self._limit(state))

    def close(self) -> None:
        """Close the store's connection, if it keeps one (a PostgreSQL store reopens it on next use)."""
        with self._flight_lock:
            advice, self._advice = self._advice, None
        if advice is not None:
            self._advise(advice)
        if self.store is not None:
            self.store.close()

    def done(self) -> None:
        """The calling thread's call is over, however it ended (the client calls this after every call)."""
        self._end(None)

    # -- calls in flight, and the advice that waits for them -------------------------------------------
    def _begin(self, now: float) -> None:
        self._end(None)  # a call this thread left unrecorded (a transport error) ended before this one started
        with self._flight_lock:
            self._in_flight[threading.get_ident()] = now

    def _end(self, granted: bool | None) -> float | None:
        """Forget this thread's call in flight (counting its grant toward a pending advice); return its start."""
        me = threading.get_ident()
        with self._flight_lock:
            start = self._in_flight.pop(me, None)
            advice = self._advice
            if advice is None or me not in advice.awaiting:
                return start
            advice.awaiting.discard(me)
            if granted and start is not None and advice.since < start <= advice.at:
                advice.granted += 1
            if advice.awaiting:
                return start
            self._advice = None
        self._advise(advice)
        return start

    def _advise(self, advice: _Advice) -> None:
        """The one warning of a cut, once every call in flight at the cut is answered: the calls the server granted
        in the window that ended with the run of 429s. Below that figure, the limit is raised to it."""

        def settle(state: _State, now: float) -> int:
            if advice.granted:
                state.observed = max(state.observed or 0, advice.granted)
                if self._limit(state) < advice.granted:
                    state.limit = min(self.calls, advice.granted)
            return self._limit(state)

        limit = self._transact(settle)
        logger.warning(self._slowing_down(advice.granted, limit))


    # -- adapting -------------------------------------------------------------------------------------
    def record_success(self) -> None:
        """The server answered (not 429): count the grant, end any run of 429s; after a sustained run of grants,
        probe a quarter higher."""
        start = self._end(True)
        probed = self._transact(lambda state, now: self._granted(state, now, start))
        if probed:
            logger.debug("iTick quota: probing %d %s", probed, per_window(self.nominal_window_s))

    def _granted(self, state: _State, now: float, start: float | None = None) -> int | None:
        # A grant counts at its call's start: the server counted it when the call arrived, not when its (perhaps
        # long) answer did, so a slow answer falls in the same window as the server's count.
        bisect.insort(state.granted, now if start is None else min(start, now))
        state.streak += 1
        state.refusals = 0
        limit = self._limit(state)
        if limit < self.calls and state.streak >= PROBE_AFTER_WINDOWS * limit:
            state.limit, state.streak = min(self.calls, limit + max(1, limit // PROBE_STEP)), 0
            return state.limit
        return None

    def record_rate_limited(self, retry_after: float | None = None) -> None:
        """The server answered 429: pause for Retry-After; when it ends a run of `REFUSALS_IN_A_ROW` 429s, slow down
        to what the server granted and say so once (module docstring)."""
        self._end(False)
        cut_at = self._transact(lambda state, now: self._refused(state, now, retry_after))
        if cut_at is None:
            return
        at, granted = cut_at
        me = threading.get_ident()
        with self._flight_lock:  # the calls still in flight that started before the run: their grants count too
            awaiting = {t for t, start in self._in_flight.items() if start <= at and t != me}
            advice = _Advice(at, at - self.nominal_window_s, granted, awaiting)
            if awaiting:
                self._advice = advice
                return
        self._advise(advice)

    def _refused(self, state: _State, now: float, retry_after: float | None) -> tuple[float, int] | None:
        """Count a 429; at a cut that should be announced, (now, calls granted in the window up to now)."""
        if retry_after is not None and retry_after > 0:
            state.blocked_until = max(state.blocked_until, now + retry_after)
        if state.refused_at is None or now - state.refused_at >= self.window_s:
            state.refusals = 0
        state.refusals, state.refused_at = state.refusals + 1, now
        if state.refusals < REFUSALS_IN_A_ROW:
            return None  # perhaps a stray 429: the next answers tell
        granted, limit = len(state.granted), self._limit(state)
        recently_cut = state.cut_at is not None and now - state.cut_at < self.window_s
        new = cut(limit, granted, recently_cut)
        state.streak = 0
        if granted:
            state.observed = granted
        if new < limit:
            state.limit, state.cut_at = new, now
        warn = new < limit and not state.warned
        state.warned = state.warned or warn
        return (now, sum(1 for t in state.granted if t > now - self.nominal_window_s)) if warn else None

    def describe(self) -> str:
        """What the server grants against what ITICK_PLAN allows, for warnings and errors."""
        granted, limit = self._transact(lambda state, now: (state.observed, self._limit(state)))
        unit = per_window(self.nominal_window_s)
        seen = f"about {granted} {unit}" if granted else f"fewer calls (now limited to {limit} {unit})"
        return f"the server granted {seen} while ITICK_PLAN={self.plan} allows {self.calls}"

    def _slowing_down(self, granted: int, new: int) -> str:
        unit = per_window(self.nominal_window_s)
        if granted:
            return (f"iTick answered 429: the server granted about {granted} {unit} while ITICK_PLAN={self.plan} "
                    f"allows {self.calls}: slowing down to {new}; set ITICK_PLAN={granted} to skip the probing")
        return (f"iTick answered 429 with no call granted in the last window while ITICK_PLAN={self.plan} allows "
                f"{self.calls}: slowing down to {new} {unit}, lower again on each window of 429s; set ITICK_PLAN to "
                "what the account grants to skip the probing")

    def _limit(self, state: _State) -> int:
        return min(self.calls, state.limit or self.calls)

    # -- state: in memory, or in a store shared with other processes and machines ------------------------
    def _transact(self, change: Callable[[_State, float], T]) -> T:
        """`change(state, now)` as one atomic step on the state everyone using the store shares (this limiter's
        own, in memory, without a store). `now` is the store's clock if it keeps one, else this limiter's. A store
        may run `change` again on a fresh read (after a dropped connection), so it only changes the state."""
        with self._lock:
            if self.store is None:
                now = self._clock()
                return change(self._current(self._memory, now), now)

            def update(text: str | None, store_now: float | None) -> tuple[bytes, T]:
                now = self._clock() if store_now is None else store_now
                state = self._current(_State.from_text(text or ""), now)
                result = change(state, now)
                return state.to_json(), result

            return self.store.transact(update)

    def _current(self, state: _State, now: float) -> _State:
        """`state` as of `now`: instants older than the window dropped, an idle account's adaptation forgotten."""
        for times in (state.starts, state.granted):
            while times and times[0] <= now - self.window_s:
                times.popleft()
        if state.touched and now - state.touched > IDLE_RESET_WINDOWS * self.window_s:
            state.forget_adaptation()
        state.touched = now
        return state


@dataclass
class _Advice:
    """A cut's warning, held until the calls in flight at the cut (`awaiting` threads) are answered."""

    at: float  # the 429 that ended the run
    since: float  # the start of the window the server measured (`at` less one nominal window)
    granted: int  # calls granted in (since, at], counted at their start
    awaiting: set[int]


def _next_free(starts: deque[float], limit: int, window_s: float) -> float:
    """When the window will hold fewer than `limit` starts (it may hold more, right after a cut)."""
    if len(starts) < limit:
        return -math.inf
    return starts[len(starts) - limit] + window_s
