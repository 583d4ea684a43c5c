"""The limiter adapts to the quota the server really grants, and not to stray 429s: a fake clock, shared through its
file."""

from __future__ import annotations

import logging
import random
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.test_rate_limit import FakeClock
from ticklake.sources.quota import (
    IDLE_RESET_WINDOWS,
    PROBE_AFTER_WINDOWS,
    PROBE_STEP,
    REFUSALS_IN_A_ROW,
    SlidingWindowLimiter,
    _State,
    cut,
)


class FakeServer:
    """iTick's quota: at most `calls` accepted calls in any `window` seconds; a refused call costs nothing. With
    `stray`, it also answers that share of the calls 429 for reasons of its own (seeded), as a faulty server or the
    simulator's fault injection does."""

    def __init__(self, clock: FakeClock, calls: int, window: float = 60.0, stray: float = 0.0, seed: int = 7):
        self.clock, self.calls, self.window, self.stray = clock, calls, window, stray
        self.accepted: deque[float] = deque()
        self.refused = self.strays = 0
        self.rng = random.Random(seed)

    def call(self) -> bool:
        now = self.clock.now
        if self.stray and self.rng.random() < self.stray:
            self.strays += 1
            return False
        while self.accepted and self.accepted[0] <= now - self.window:
            self.accepted.popleft()
        if len(self.accepted) >= self.calls:
            self.refused += 1
            return False
        self.accepted.append(now)
        return True


def _limiter(clock: FakeClock, calls: int = 600, plan: str = "pro", **kwargs) -> SlidingWindowLimiter:
    return SlidingWindowLimiter(calls, 60.0, margin_s=0.5, clock=clock.time, sleep=clock.sleep, plan=plan, **kwargs)


def _fetch(limiter: SlidingWindowLimiter, server: FakeServer, calls: int, latency: float = 0.05) -> None:
    """What the client does: every call is retried until the server grants it."""
    for _ in range(calls):
        while True:
            limiter.acquire()
            limiter._sleep(latency)
            if server.call():
                limiter.record_success()
                break
            limiter.record_rate_limited()


def _grant(limiter: SlidingWindowLimiter, clock: FakeClock, n: int) -> None:
    for _ in range(n):
        limiter.acquire()
        limiter.record_success()
        clock.now += 0.01


def _refuse(limiter: SlidingWindowLimiter, clock: FakeClock, n: int, retry_after: float | None = None) -> None:
    for _ in range(n):
        limiter.record_rate_limited(retry_after)
        clock.now += 0.01


def test_a_run_of_429s_cuts_at_once_to_what_the_server_granted(caplog):
    clock = FakeClock()
    limiter = _limiter(clock)
    _grant(limiter, clock, 30)
    with caplog.at_level(logging.WARNING, logger="ticklake.sources.quota"):
        _refuse(limiter, clock, REFUSALS_IN_A_ROW - 1)
        assert limiter.limit == 600  # perhaps stray 429s: not yet
        _refuse(limiter, clock, 1)
        assert limiter.limit == 30
        _refuse(limiter, clock, 3)  # the other calls in flight are refused too: same evidence, same limit
    assert limiter.limit == 30
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == ["iTick answered 429: the server granted about 30 calls/min while ITICK_PLAN=pro allows 600: "
                        "slowing down to 30; set ITICK_PLAN=30 to skip the probing"]


def test_a_grant_ends_the_run_and_a_run_ends_after_a_window_without_429():
    clock = FakeClock()
    limiter = _limiter(clock)
    for _ in range(20):
        _grant(limiter, clock, 10)
        _refuse(limiter, clock, REFUSALS_IN_A_ROW - 1)
    assert limiter.limit == 600
    _refuse(limiter, clock, 1)
    assert limiter.limit < 600  # the run reached REFUSALS_IN_A_ROW
    clock = FakeClock()
    limiter = _limiter(clock)
    _grant(limiter, clock, 10)
    for _ in range(REFUSALS_IN_A_ROW):
        _refuse(limiter, clock, 1)
        clock.now += 61  # each 429 alone in its window
    assert limiter.limit == 600


@settings(max_examples=60, deadline=None)
@given(runs=st.lists(st.integers(0, REFUSALS_IN_A_ROW - 1), max_size=60), gap=st.floats(0, 5))
def test_shorter_runs_of_429s_than_refusals_in_a_row_never_lower_the_limit(runs, gap):
    clock = FakeClock()
    limiter = _limiter(clock, calls=20, plan="20")
    for run in runs:
        _refuse(limiter, clock, run)
        _grant(limiter, clock, 1)
        clock.now += gap
    assert limiter.limit == 20


def test_without_grants_the_limit_halves_once_per_window_and_never_below_one():
    clock = FakeClock()
    limiter = _limiter(clock, calls=5, plan="free")
    _refuse(limiter, clock, REFUSALS_IN_A_ROW)
    _refuse(limiter, clock, REFUSALS_IN_A_ROW)  # same window: no second cut
    assert limiter.limit == 2
    for _ in range(4):
        clock.now += 61
        _refuse(limiter, clock, REFUSALS_IN_A_ROW)
    assert limiter.limit == 1


@pytest.mark.parametrize(("limit", "granted", "recent", "expected"),
                         [(600, 30, False, 30), (600, 30, True, 30), (30, 30, False, 29), (30, 30, True, 30),
                          (30, 0, False, 15), (1, 0, False, 1), (1, 1, False, 1), (31, 45, False, 30)])
def test_a_cut_takes_the_granted_rate_else_lowers_at_most_once_per_window(limit, granted, recent, expected):
    assert cut(limit, granted, recent) == expected


def test_a_sustained_run_of_successes_probes_up_by_a_quarter_and_never_above_the_plan():
    clock = FakeClock()
    limiter = _limiter(clock, calls=100, plan="100")
    _grant(limiter, clock, 40)
    _refuse(limiter, clock, REFUSALS_IN_A_ROW)
    assert limiter.limit == 40
    for expected in (50, 62, 77, 96, 100, 100):
        previous = limiter.limit
        clock.now += 61
        _grant(limiter, clock, PROBE_AFTER_WINDOWS * previous - 1)
        assert limiter.limit == previous  # not yet
        clock.now += 61
        _grant(limiter, clock, 1)
        assert limiter.limit == expected
    small = _limiter(clock, calls=5, plan="free")
    _refuse(small, clock, REFUSALS_IN_A_ROW)
    assert small.limit == 2
    _grant(small, clock, PROBE_AFTER_WINDOWS * 2)
    assert small.limit == 3  # at least one call


def test_stray_429s_do_not_hold_back_probing():
    clock = FakeClock()
    limiter = _limiter(clock, calls=100, plan="100")
    _grant(limiter, clock, 40)
    _refuse(limiter, clock, REFUSALS_IN_A_ROW)
    for _ in range(PROBE_AFTER_WINDOWS * 40 // 8):
        _grant(limiter, clock, 8)
        _refuse(limiter, clock, 1)
        clock.now += 61 / 8
    assert limiter.limit == 40 + 40 // PROBE_STEP


def test_retry_after_pauses_every_caller():
    clock = FakeClock()
    limiter = _limiter(clock)
    other = _limiter(clock)  # another thread's view is the same object; here: the same clock, its own state
    limiter.record_rate_limited(retry_after=7.5)
    assert limiter.acquire() == pytest.approx(7.5)
    assert other.acquire() == 0.0


def test_plan_pro_against_a_30_per_minute_server_converges_and_finishes():
    clock = FakeClock()
    limiter, server = _limiter(clock), FakeServer(clock, calls=30)
    start = clock.now
    _fetch(limiter, server, 300)
    minutes = (clock.now - start) / 60
    assert 9 <= minutes <= 12  # 300 calls at 30/min, not the plan's 600/min
    # the first overshoot, then one probe every PROBE_AFTER_WINDOWS windows at 30, each answered by one run of 429s
    assert server.refused <= REFUSALS_IN_A_ROW * (1 + minutes / PROBE_AFTER_WINDOWS)
    assert 30 <= limiter.limit <= 30 + 30 // PROBE_STEP


def test_a_server_that_grants_fewer_calls_is_found_within_one_run_of_429s():
    clock = FakeClock()
    limiter, server = _limiter(clock), FakeServer(clock, calls=30)
    _fetch(limiter, server, 30)
    assert limiter.limit == 600
    _fetch(limiter, server, 1)
    assert server.refused == REFUSALS_IN_A_ROW
    assert limiter.limit == 30


def _fetch_time(plan: int, server_calls: int, calls: int, stray: float) -> tuple[float, int, FakeServer]:
    clock = FakeClock()
    limiter = _limiter(clock, calls=plan, plan=str(plan))
    server = FakeServer(clock, calls=server_calls, stray=stray)
    _fetch(limiter, server, calls, latency=0.2)
    return clock.now - 1_000.0, limiter.limit, server


@pytest.mark.parametrize(("plan", "server_calls", "calls"), [(100_000, 100_000, 2000), (120, 120, 1200),
                                                             (600, 30, 300)],
                         ids=["no-quota", "plan-equals-quota", "quota-below-plan"])
def test_stray_429s_at_a_tenth_of_all_calls_do_not_drive_the_limit_down(plan, server_calls, calls):
    """A server answering 10% of the calls 429 for reasons of its own (the soak's fault rate): the fetch takes about
    as long as without the strays (each costs a retry, and a start of the window), and the limit stays what the
    quota allows. The former rule (a cut at every 429) took over an hour for the 2000 calls of "no-quota"."""
    clean, _, _ = _fetch_time(plan, server_calls, calls, stray=0.0)
    seconds, limit, server = _fetch_time(plan, server_calls, calls, stray=0.1)
    assert server.strays > calls // 20
    assert seconds <= 1.25 * clean + 60
    assert limit >= min(plan, server_calls)


def test_a_plan_below_the_server_limit_never_sees_a_429():
    clock = FakeClock()
    limiter, server = _limiter(clock, calls=20, plan="20"), FakeServer(clock, calls=30)
    _fetch(limiter, server, 100)
    assert server.refused == 0
    assert limiter.limit == 20


def test_processes_sharing_the_state_file_share_the_adapted_limit(tmp_path):
    clock = FakeClock()
    state = tmp_path / "quota.txt"
    one, two = _limiter(clock, state_file=state), _limiter(clock, state_file=state)
    _grant(one, clock, 20)
    _grant(two, clock, 10)
    for _ in range(REFUSALS_IN_A_ROW // 2):  # one run of 429s, answered to both processes
        _refuse(one, clock, 1)
        _refuse(two, clock, 1)
    assert one.limit == two.limit == 30
    assert one.acquire() == pytest.approx(60.5 - 0.30 - 0.01 * REFUSALS_IN_A_ROW)  # 30 starts in the window: wait


def test_an_idle_account_starts_again_from_the_plan():
    clock = FakeClock()
    limiter = _limiter(clock)
    _grant(limiter, clock, 30)
    _refuse(limiter, clock, REFUSALS_IN_A_ROW)
    assert limiter.limit == 30
    clock.now += IDLE_RESET_WINDOWS * 61
    assert limiter.limit == 600


def test_a_state_file_written_before_the_run_of_429s_was_kept_reads_with_no_run(tmp_path):
    clock = FakeClock()
    state = tmp_path / "quota.txt"
    state.write_text(f'{{"starts": [{clock.now - 1}], "granted": [{clock.now - 1}], "limit": 40, "streak": 3, '
                     f'"cut_at": {clock.now - 30}, "blocked_until": 0.0, "observed": 40, "warned": true, '
                     f'"touched": {clock.now - 1}}}')
    limiter = _limiter(clock, state_file=state)
    assert limiter.limit == 40
    _refuse(limiter, clock, REFUSALS_IN_A_ROW - 1)
    assert limiter.limit == 40
    assert _State.from_text(state.read_text()).refusals == REFUSALS_IN_A_ROW - 1  # the run is kept in the file


def test_the_older_state_file_format_keeps_its_window(tmp_path):
    clock = FakeClock()
    state = tmp_path / "quota.txt"
    state.write_text("\n".join(f"{clock.now - i:.6f}" for i in (2, 1, 0)))
    limiter = _limiter(clock, calls=3, plan="3", state_file=state)
    assert limiter.acquire() == pytest.approx(60.5 - 2)


@settings(max_examples=60, deadline=None)
@given(plan=st.integers(1, 20), server=st.integers(1, 25), gaps=st.lists(st.floats(0, 5), max_size=60))
def test_never_more_than_the_plan_nor_the_adapted_limit_per_window(plan, server, gaps):
    clock = FakeClock()
    limiter, quota = _limiter(clock, calls=plan, plan=str(plan)), FakeServer(clock, calls=server)
    starts: list[float] = []
    for gap in gaps:
        clock.now += gap
        limit = limiter.limit
        limiter.acquire()
        starts.append(clock.now)
        assert sum(1 for t in starts if t > clock.now - 60.5) <= min(plan, limit)  # admitted only below the limit
        if quota.call():
            limiter.record_success()
        else:
            limiter.record_rate_limited()
