"""Cross-machine mutual exclusion for the one DuckDB writer: a PostgreSQL advisory lock.

Locally a `filelock.FileLock` serialises the pipeline database's writers; workers on several machines share no
file, so the production profile takes a session-level advisory lock on the coordination database
(TICKLAKE_COORDINATION_URL) instead. PostgreSQL releases it when the holder's connection ends, so a worker that
is killed mid-write never leaves the lock held (the file lock's equivalent is the OS releasing a dead process's
lock).
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time

from ticklake.urls import redact_url


class MutexTimeoutError(TimeoutError):
    """The lock stayed held by someone else for longer than the caller allows."""


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for a name (the same on every machine and Python)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


class PostgresMutex:
    """A re-entrant (per thread) advisory lock named `name`, with FileLock's acquire/release/is_locked shape."""

    def __init__(self, url: str, name: str, *, poll_s: float = 0.05):
        self.url, self.name, self.key = url, name, lock_key(name)
        self.lock_file = f"advisory lock {name!r} on {redact_url(url)}"  # how messages name it (FileLock's attribute)
        self._poll_s = poll_s
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._conn = None

    @property
    def is_locked(self) -> bool:
        return self._depth > 0

    def acquire(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        if not self._thread_lock.acquire(timeout=max(timeout, 0)):
            raise MutexTimeoutError(f"{self.lock_file} is held by another thread of this process")
        if self._depth:
            self._depth += 1
            return
        try:
            self._conn = _connect(self.url)
            delay = self._poll_s
            while True:
                with self._conn.cursor() as cur:
                    cur.execute("SELECT pg_try_advisory_lock(%s)", (self.key,))
                    if cur.fetchone()[0]:
                        break
                if time.monotonic() + delay > deadline:
                    raise MutexTimeoutError(f"{self.lock_file} stayed held for {timeout:.0f}s")
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        except BaseException:
            self._close()
            self._thread_lock.release()
            raise
        self._depth = 1

    def release(self) -> None:
        if not self._depth:
            return
        self._depth -= 1
        if self._depth == 0:
            self._close()  # ending the session releases the advisory lock with it
        self._thread_lock.release()

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # a connection already gone has released the lock too
                conn.close()


def _connect(url: str):
    import psycopg2  # the production profile's (dagster-postgres brings it); the embedded default never loads it

    try:
        conn = psycopg2.connect(url, connect_timeout=10, application_name="ticklake")
    except psycopg2.OperationalError as exc:
        raise ConnectionError(
            f"cannot reach the coordination database {redact_url(url)} (TICKLAKE_COORDINATION_URL): "
            f"{str(exc).strip().splitlines()[0]}"
        ) from None
    conn.autocommit = True
    return conn
