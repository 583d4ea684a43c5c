"""The client-side limiter never lets more than N calls start in any window, across threads and processes."""

from __future__ import annotations

import multiprocessing
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ticklake.sources.quota import SlidingWindowLimiter, calls_per_minute


class FakeClock:
    def __init__(self):
        self.now = 1_000.0

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _max_in_window(starts: list[float], window: float) -> int:
    starts = sorted(starts)
    best, lo = 0, 0
    for hi, t in enumerate(starts):
        while starts[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


@settings(max_examples=60, deadline=None)
@given(calls=st.integers(1, 20), window=st.floats(0.5, 120), gaps=st.lists(st.floats(0, 30), max_size=80))
def test_no_window_ever_holds_more_than_the_plan(calls, window, gaps):
    clock = FakeClock()
    limiter = SlidingWindowLimiter(calls, window, margin_s=0, clock=clock.time, sleep=clock.sleep)
    starts = []
    for gap in gaps:
        clock.now += gap
        limiter.acquire()
        starts.append(clock.now)
    assert _max_in_window(starts, window) <= calls


class GrantClock:
    """time.time that remembers, per thread, the last reading: after acquire() returns, that reading is the
    instant the limiter granted the call, free of any scheduling delay before the caller could record it."""

    def __init__(self):
        self.local = threading.local()

    def __call__(self) -> float:
        self.local.now = time.time()
        return self.local.now

    @property
    def granted_at(self) -> float:
        return self.local.now


def test_threads_share_one_budget():
    clock = GrantClock()
    limiter = SlidingWindowLimiter(4, 0.5, margin_s=0.0, clock=clock)
    starts: list[float] = []
    lock = threading.Lock()

    def work():
        for _ in range(3):
            limiter.acquire()
            with lock:
                starts.append(clock.granted_at)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(starts) == 12
    assert _max_in_window(starts, 0.5) <= 4
    assert max(starts) - min(starts) >= 1.0  # 12 calls at 4 per 0.5 s cannot finish sooner


def _acquire_in_process(state_file, out, n):
    clock = GrantClock()
    limiter = SlidingWindowLimiter(3, 0.6, margin_s=0.0, state_file=state_file, clock=clock)
    for _ in range(n):
        limiter.acquire()
        out.put(clock.granted_at)


def test_processes_sharing_a_state_file_share_one_budget(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    state = tmp_path / "quota.txt"
    procs = [ctx.Process(target=_acquire_in_process, args=(state, out, 3)) for _ in range(3)]
    for p in procs:
        p.start()
    starts = [out.get(timeout=60) for _ in range(9)]
    for p in procs:
        p.join(timeout=30)
    assert _max_in_window(starts, 0.6) <= 3


@pytest.mark.parametrize(("plan", "expected"), [("free", 5), ("base", 120), ("PRO", 600), ("premium", 1200),
                                                ("250", 250), (42, 42)])
def test_plans_resolve_to_calls_per_minute(plan, expected):
    assert calls_per_minute(plan) == expected


@pytest.mark.parametrize("plan", ["gold", "-3", "0", ""])
def test_unknown_plans_are_refused_with_the_choices(plan):
    with pytest.raises(ValueError, match=r"free|positive"):
        calls_per_minute(plan)
