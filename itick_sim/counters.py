"""Thread-safe request counters and the per-token sliding-window quota."""

from __future__ import annotations

import collections
import threading
import time


class RequestCounters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.total = 0
        self.by_path: dict[str, int] = {}
        self.by_status: dict[int, int] = {}
        self.rate_limited = 0
        self.faults: dict[str, int] = {}

    def record_fault(self, kind: str) -> None:
        """An injected fault (see SimSettings.fault_rate), counted by kind apart from the statuses it caused."""
        with self._lock:
            self.faults[kind] = self.faults.get(kind, 0) + 1

    def record(self, path: str, status: int, rate_limited: bool = False) -> None:
        with self._lock:
            self.total += 1
            self.by_path[path] = self.by_path.get(path, 0) + 1
            self.by_status[status] = self.by_status.get(status, 0) + 1
            if rate_limited:
                self.rate_limited += 1

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "total": self.total,
                "by_path": dict(self.by_path),
                "by_status": dict(self.by_status),
                "rate_limited": self.rate_limited,
                "faults": dict(self.faults),
            }

    def reset(self) -> None:
        with self._lock:
            self.total = 0
            self.by_path = {}
            self.by_status = {}
            self.rate_limited = 0
            self.faults = {}

    def count(self, path: str) -> int:
        with self._lock:
            return self.by_path.get(path, 0)

    def __repr__(self) -> str:
        return f"RequestCounters({self.snapshot()})"


class Quota:
    """At most `calls` accepted calls per token in any `window` seconds (monotonic wall time)."""

    def __init__(self, calls: int | None, window: float) -> None:
        self.calls = calls
        self.window = window
        self._lock = threading.Lock()
        self._hits: dict[str, collections.deque[float]] = {}

    def acquire(self, token: str) -> bool:
        if self.calls is None:
            return True
        now = time.monotonic()
        with self._lock:
            q = self._hits.setdefault(token, collections.deque())
            while q and q[0] <= now - self.window:
                q.popleft()
            if len(q) >= self.calls:
                return False
            q.append(now)
            return True
