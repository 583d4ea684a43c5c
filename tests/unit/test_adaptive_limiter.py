"""The limiter adapts to the quota the server really grants: AIMD with a fake clock, shared through its file."""

from __future__ import annotations

import logging
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.test_rate_limit import FakeClock
from ticklake.quota import IDLE_RESET_WINDOWS, PROBE_AFTER_WINDOWS, SlidingWindowLimiter, cut


class FakeServer:
    """iTick's quota: at most `calls` accepted calls in any `window` seconds; a refused call costs nothing."""

    def __init__(self, clock: FakeClock, calls: int, window: float = 60.0):
        self.clock, self.calls, self.window = clock, calls, window
        self.accepted: deque[float] = deque()
        self.refused = 0

    def call(self) -> bool:
        now = self.clock.now
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


def test_a_429_cuts_at_once_to_what_the_server_granted(caplog):
    clock = FakeClock()
    limiter = _limiter(clock)
    _grant(limiter, clock, 30)
    with caplog.at_level(logging.WARNING, logger="ticklake.quota"):
        limiter.record_rate_limited()
        limiter.record_rate_limited()  # the other calls in flight are refused too: same evidence, same limit
    assert limiter.limit == 30
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == ["iTick answered 429: the server granted about 30 calls/min while ITICK_PLAN=pro allows 600: "
                        "slowing down to 30; set ITICK_PLAN=30 to skip the probing"]


def test_without_grants_the_limit_halves_once_per_window_and_never_below_one():
    clock = FakeClock()
    limiter = _limiter(clock, calls=5, plan="free")
    limiter.record_rate_limited()
    limiter.record_rate_limited()  # same window: no second cut
    assert limiter.limit == 2
    for _ in range(4):
        clock.now += 61
        limiter.record_rate_limited()
    assert limiter.limit == 1


@pytest.mark.parametrize(("limit", "granted", "recent", "expected"),
                         [(600, 30, False, 30), (600, 30, True, 30), (30, 30, False, 29), (30, 30, True, 30),
                          (30, 0, False, 15), (1, 0, False, 1), (1, 1, False, 1), (31, 45, False, 30)])
def test_cut_rule(limit, granted, recent, expected):
    assert cut(limit, granted, recent) == expected


def test_a_sustained_run_of_successes_probes_up_by_one_and_never_above_the_plan():
    clock = FakeClock()
    limiter = _limiter(clock, calls=12, plan="12")
    _grant(limiter, clock, 10)
    limiter.record_rate_limited()
    assert limiter.limit == 10
    for expected in (11, 12, 12):
        clock.now += 61
        _grant(limiter, clock, PROBE_AFTER_WINDOWS * limiter.limit - 1)
        clock.now += 61
        _grant(limiter, clock, 1)
        assert limiter.limit == expected


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
    assert server.refused <= 1 + minutes  # the first overshoot, then at most one probe's 429 per window
    assert limiter.limit in (30, 31)


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
    two.record_rate_limited()
    assert one.limit == two.limit == 30
    assert one.acquire() == pytest.approx(60.5 - 0.30)  # 30 starts in the window, 20 of them one's: it waits


def test_an_idle_account_starts_again_from_the_plan():
    clock = FakeClock()
    limiter = _limiter(clock)
    _grant(limiter, clock, 30)
    limiter.record_rate_limited()
    clock.now += IDLE_RESET_WINDOWS * 61
    assert limiter.limit == 600


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
        limiter.acquire()
        starts.append(clock.now)
        assert sum(1 for t in starts if t > clock.now - 60.5) <= min(plan, limiter.limit + 1)
        if quota.call():
            limiter.record_success()
        else:
            limiter.record_rate_limited()
