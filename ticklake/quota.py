"""Client-side quota: a sliding-window limiter that never lets more than N calls start per window, and lowers N
to what the server actually grants when it answers 429.

One limiter instance is safe across threads. Given a `state_file`, the window *and* the adapted limit are
shared by every process on the machine that uses the same file (Dagster's multiprocess executor, parallel
backfills), because the iTick quota is per account, not per process.

Adapting (AIMD): on a 429 the limit drops at once to the calls the server granted in the last window (by half
when it granted none), never below 1; after a sustained run of successes it probes back up by one call, never
above the plan. A Retry-After pauses every caller sharing the state. The adapted limit is forgotten once the
account has been idle for `IDLE_RESET_WINDOWS` windows, so each run starts from the plan again.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from filelock import FileLock

PLAN_CALLS_PER_MINUTE: dict[str, int] = {"free": 5, "base": 120, "pro": 600, "premium": 1200}
PROBE_AFTER_WINDOWS = 2  # probe up after this many windows' worth of successes at the current limit
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
    streak: int = 0  # successes since the last change of limit or the last 429
    cut_at: float | None = None
    blocked_until: float = 0.0  # Retry-After
    observed: int | None = None  # the last measured grant per window
    warned: bool = False
    touched: float = 0.0

    def forget_adaptation(self) -> None:
        self.limit, self.streak, self.cut_at, self.observed, self.warned = None, 0, None, None, False

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
                       touched=float(raw.get("touched") or 0.0))
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
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        plan: str | None = None,
    ):
        if calls <= 0 or window_s <= 0:
            raise ValueError("a rate limit needs calls > 0 and window_s > 0")
        self.calls = calls
        self.plan = plan or str(calls)  # how ITICK_PLAN was written, for messages
        self.nominal_window_s = window_s
        # The server stamps a call when it arrives, we stamp it when it leaves: a small margin absorbs
        # the jitter between the two so both clocks agree the window was respected.
        self.window_s = window_s + (margin_s if margin_s is not None else max(0.05, window_s * 0.02))
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._memory = _State()
        self._state_file = state_file
        self._file_lock = FileLock(str(state_file) + ".lock") if state_file else None
        self.waited_s = 0.0

    # -- the quota ------------------------------------------------------------------------------------
    def acquire(self, max_wait_s: float | None = None) -> float:
        """Block until a call may start; return the seconds waited. QuotaWaitError, without waiting, when the
        call could not start within `max_wait_s`."""
        waited = 0.0
        while True:
            with self._locked() as state:
                now = self._clock()
                limit = self._limit(state)
                if now >= state.blocked_until and len(state.starts) < limit:
                    state.starts.append(now)
                    self.waited_s += waited
                    return waited
                delay = max(state.blocked_until - now, _next_free(state.starts, limit, self.window_s) - now)
            delay = max(delay, 0.001)
            if max_wait_s is not None and waited + delay > max_wait_s:
                raise QuotaWaitError(waited + delay)
            self._sleep(delay)
            waited += delay

    @property
    def limit(self) -> int:
        """Calls per window the limiter admits now (the plan, or less after 429s)."""
        with self._locked() as state:
            return self._limit(state)

    # -- adapting -------------------------------------------------------------------------------------
    def record_success(self) -> None:
        """The server answered (not 429): count the grant; after a sustained run, probe one call higher."""
        with self._locked() as state:
            state.granted.append(self._clock())
            state.streak += 1
            limit = self._limit(state)
            if limit < self.calls and state.streak >= PROBE_AFTER_WINDOWS * limit:
                state.limit, state.streak = limit + 1, 0
                logger.debug("iTick quota: probing %d %s", limit + 1, per_window(self.nominal_window_s))

    def record_rate_limited(self, retry_after: float | None = None) -> None:
        """The server answered 429: slow down to what it granted, pause for Retry-After, say so once."""
        with self._locked() as state:
            now = self._clock()
            if retry_after is not None and retry_after > 0:
                state.blocked_until = max(state.blocked_until, now + retry_after)
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
            message = self._slowing_down(granted, new) if warn else None
        if message:
            logger.warning(message)

    def describe(self) -> str:
        """What the server grants against what ITICK_PLAN allows, for warnings and errors."""
        with self._locked() as state:
            granted = state.observed
            limit = self._limit(state)
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

    # -- state: in memory, or a small file shared between processes ---------------------------------
    def _locked(self):
        return _Locked(self)

    def _load(self) -> _State:
        now = self._clock()
        state = self._memory
        if self._state_file:
            try:
                state = _State.from_text(self._state_file.read_text())
            except FileNotFoundError:
                state = _State()
        for times in (state.starts, state.granted):
            while times and times[0] <= now - self.window_s:
                times.popleft()
        if state.touched and now - state.touched > IDLE_RESET_WINDOWS * self.window_s:
            state.forget_adaptation()
        state.touched = now
        return state

    def _store(self, state: _State) -> None:
        if not self._state_file:
            return
        tmp = self._state_file.with_name(self._state_file.name + f".{os.getpid()}.tmp")
        tmp.write_bytes(state.to_json())
        os.replace(tmp, self._state_file)


def _next_free(starts: deque[float], limit: int, window_s: float) -> float:
    """When the window will hold fewer than `limit` starts (it may hold more, right after a cut)."""
    if len(starts) < limit:
        return -math.inf
    return starts[len(starts) - limit] + window_s


class _Locked:
    """The limiter's thread lock, then its file lock: the state, loaded on entry and stored on exit."""

    def __init__(self, limiter: SlidingWindowLimiter):
        self.limiter = limiter
        self.state: _State | None = None

    def __enter__(self) -> _State:
        self.limiter._lock.acquire()
        try:
            if self.limiter._file_lock:
                self.limiter._file_lock.acquire()
            self.state = self.limiter._load()
        except BaseException:
            self._release()
            raise
        return self.state

    def __exit__(self, exc_type, *exc: object) -> bool:
        try:
            if exc_type is None and self.state is not None:
                self.limiter._store(self.state)
        finally:
            self._release()
        return False

    def _release(self) -> None:
        if self.limiter._file_lock and self.limiter._file_lock.is_locked:
            self.limiter._file_lock.release()
        self.limiter._lock.release()
