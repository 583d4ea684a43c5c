"""Client-side quota: a sliding-window limiter that never lets more than N calls start per window.

One limiter instance is safe across threads. Given a `state_file`, the window is also shared by every
process on the machine that uses the same file (Dagster's multiprocess executor, parallel backfills),
because the iTick quota is per account, not per process.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

PLAN_CALLS_PER_MINUTE: dict[str, int] = {"free": 5, "base": 120, "pro": 600, "premium": 1200}


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


class SlidingWindowLimiter:
    """At most `calls` call starts in any interval of `window_s` (+ a safety margin) seconds."""

    def __init__(
        self,
        calls: int,
        window_s: float = 60.0,
        *,
        margin_s: float | None = None,
        state_file: Path | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if calls <= 0 or window_s <= 0:
            raise ValueError("a rate limit needs calls > 0 and window_s > 0")
        self.calls = calls
        # The server stamps a call when it arrives, we stamp it when it leaves: a small margin absorbs
        # the jitter between the two so both clocks agree the window was respected.
        self.window_s = window_s + (margin_s if margin_s is not None else max(0.05, window_s * 0.02))
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._starts: deque[float] = deque()
        self._state_file = state_file
        self._file_lock = FileLock(str(state_file) + ".lock") if state_file else None
        self.waited_s = 0.0

    def acquire(self) -> float:
        """Block until a call may start; return the seconds waited."""
        waited = 0.0
        while True:
            with self._lock, self._shared():
                starts = self._load()
                now = self._clock()
                while starts and starts[0] <= now - self.window_s:
                    starts.popleft()
                if len(starts) < self.calls:
                    starts.append(now)
                    self._store(starts)
                    self.waited_s += waited
                    return waited
                delay = starts[0] + self.window_s - now
            delay = max(delay, 0.001)
            self._sleep(delay)
            waited += delay

    # -- state: in memory, or a small file shared between processes ---------------------------------
    def _shared(self):
        return self._file_lock if self._file_lock else _NullContext()

    def _load(self) -> deque[float]:
        if not self._state_file:
            return self._starts
        try:
            text = self._state_file.read_text()
        except FileNotFoundError:
            return deque()
        values = [float(x) for x in text.split() if x]
        return deque(v for v in values if math.isfinite(v))

    def _store(self, starts: deque[float]) -> None:
        if not self._state_file:
            return
        tmp = self._state_file.with_name(self._state_file.name + f".{os.getpid()}.tmp")
        tmp.write_text("\n".join(f"{v:.6f}" for v in starts))
        os.replace(tmp, self._state_file)


class _NullContext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
