"""Per-table commit locks: the one thing DuckLake leaves to its writers.

DuckLake retries conflicting appends and writes to different tables, but two transactions that DELETE from the
same table conflict even on different partitions, and that conflict is not retried ("another transaction has
deleted from it"). Every ticklake write replaces partitions (DELETE + INSERT), so writers of one table take that
table's lock around the COMMIT only; fetching, parsing and validating never hold it, so regions still run in
parallel on different workers. With a PostgreSQL catalog the lock is a session advisory lock in the catalog's own
database (released by PostgreSQL when a killed worker's connection ends); with the embedded catalog, a file lock
under `TICKLAKE_HOME/state/locks/` (released by the OS when a process dies).
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from ticklake.storage.catalog import CatalogError


class LockTimeoutError(TimeoutError):
    """A table's commit lock stayed held by another writer for longer than the configured timeout."""


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for a name (the same on every machine and Python)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


class CommitLocks:
    """`hold(tables)` takes the named tables' locks in one global order (no deadlock between writers of several
    tables) and releases them when the block ends."""

    def __init__(self, *, scope: str, directory: Path | None = None, conninfo: str | None = None,
                 describe: str = "", timeout_s: float = 900.0, scrub=lambda text: text):
        self.scope = scope  # the lake's identity: locks of two lakes never collide
        self.directory = directory
        self.conninfo = conninfo
        self.describe = describe
        self.timeout_s = timeout_s
        self.scrub = scrub  # takes the catalog's password out of a driver's message
        self._local = threading.local()  # re-entrant per thread: a commit inside a commit of the same tables

    @contextlib.contextmanager
    def hold(self, tables: Iterable[str]) -> Iterator[None]:
        held: set[str] = getattr(self._local, "held", set())
        wanted = sorted(set(tables) - held)
        if not wanted:
            yield
            return
        self._local.held = held | set(wanted)
        try:
            with self._postgres(wanted) if self.conninfo else self._files(wanted):
                yield
        finally:
            self._local.held = held

    @contextlib.contextmanager
    def _files(self, tables: list[str]) -> Iterator[None]:
        assert self.directory is not None
        self.directory.mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as stack:
            for table in tables:
                lock = FileLock(str(self.directory / f"{table}.lock"))
                try:
                    lock.acquire(timeout=self.timeout_s)
                except Timeout:
                    raise LockTimeoutError(f"another ticklake writer held the commit lock of {table} "
                                           f"({lock.lock_file}) for {self.timeout_s:.0f}s; is a run stuck?") from None
                stack.callback(lock.release)
            yield

    @contextlib.contextmanager
    def _postgres(self, tables: list[str]) -> Iterator[None]:
        import psycopg2  # the production profile's (dagster-postgres brings it); the embedded default never loads it

        try:
            conn = psycopg2.connect(self.conninfo, connect_timeout=10, application_name="ticklake-commit")
        except psycopg2.OperationalError as exc:
            raise CatalogError(f"could not open the lake catalog TICKLAKE_CATALOG={self.describe} for a commit lock: "
                               f"{self.scrub(_first_line(exc))}; check that the database is up, reachable from here, "
                               "and that the user may connect to it") from None
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute("SET lock_timeout = %s", (f"{int(self.timeout_s * 1000)}ms",))
                for table in tables:
                    try:
                        cur.execute("SELECT pg_advisory_lock(%s)", (lock_key(f"{self.scope}:{table}"),))
                    except psycopg2.errors.LockNotAvailable:
                        raise LockTimeoutError(f"another ticklake writer held the commit lock of {table} on "
                                               f"{self.describe} for {self.timeout_s:.0f}s; is a run stuck?") from None
            yield
        finally:
            with contextlib.suppress(Exception):  # ending the session releases its advisory locks
                conn.close()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
