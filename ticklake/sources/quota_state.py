"""Where the quota limiter keeps the state every worker of one iTick account shares.

A store runs one read-modify-write of that state at a time across everyone using it: `transact(update)` reads
the stored text (None when nothing is stored yet), calls `update(text, now)`, stores the bytes it returns and
hands back its result. `now` is the store's own clock, or None when it keeps none (the caller then uses its own).

- `FileStateStore`: a JSON file guarded by a `filelock.FileLock`, for the processes of one machine (the default).
- `PostgresStateStore`: one row per account in PostgreSQL, for workers on several machines
  (TICKLAKE_COORDINATION_URL). The row is locked with `SELECT ... FOR UPDATE` for the transaction, and "now" is
  the database server's clock, read after the lock is granted, so workers whose own clocks disagree still count
  one window and every start is stamped later than the ones before it.

psycopg2 is imported only by the PostgreSQL store (the `distributed` extra), so the file store needs nothing more.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from filelock import FileLock

from ticklake.urls import redact_url, url_passwords

R = TypeVar("R")
# update(stored text or None, the store's now or None) -> (bytes to store, result for the caller)
Update = Callable[[str | None, float | None], tuple[bytes, R]]

TABLE = "ticklake_quota_state"
CONNECT_TIMEOUT_S = 10
# A session that sits in a transaction this long (a frozen or stopped worker holding the row lock) is ended by the
# server, which releases the lock for everyone else; our transactions last a few milliseconds.
IDLE_IN_TRANSACTION_TIMEOUT_MS = 30_000

logger = logging.getLogger(__name__)


class QuotaStateError(RuntimeError):
    """The shared quota state could not be read or written; the message names where it lives (never a password)."""


class StateStore(Protocol):
    def transact(self, update: Update[R]) -> R:
        """Run `update` on the stored state as one atomic step among every user of this store."""
        ...

    def describe(self) -> str:
        """Where the state lives, for messages (never a password)."""
        ...

    def close(self) -> None: ...


class FileStateStore:
    """The state as a file next to a lock file: shared by the processes of one machine. Keeps no clock.

    The file is replaced atomically through `<name>.<pid>.tmp`. A write that fails (a full disk) removes its temp
    file and raises QuotaStateError naming the file and TICKLAKE_HOME; temp files left by a process that died
    mid-write are removed by the next store to take the lock (only the lock holder ever writes one, so any other
    temp file found under the lock is a leftover)."""

    setting = "TICKLAKE_HOME"  # what decides where the file lives, for messages

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = FileLock(str(self.path) + ".lock")
        self._swept = False

    def transact(self, update: Update[R]) -> R:
        try:
            self._lock.acquire()
        except OSError as exc:
            raise self._error("lock", Path(self._lock.lock_file), exc) from exc
        try:
            if not self._swept:
                self._swept = True
                self._remove_leftovers()
            try:
                text: str | None = self.path.read_text()
            except FileNotFoundError:
                text = None
            except OSError as exc:
                raise self._error("read", self.path, exc) from exc
            data, result = update(text, None)
            tmp = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
            try:
                tmp.write_bytes(data)
                os.replace(tmp, self.path)  # a reader sees the old state or the new one, never half of it
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                raise self._error("write", self.path, exc) from exc
            return result
        finally:
            self._lock.release()

    def _remove_leftovers(self) -> None:
        for leftover in self.path.parent.glob(f"{self.path.name}.*.tmp"):
            try:
                leftover.unlink(missing_ok=True)
                logger.info("removed %s, left by a process that died while writing the quota state", leftover)
            except OSError as exc:  # not fatal: the state itself is intact
                logger.warning("could not remove %s: %s", leftover, exc.strerror or exc)

    def _error(self, verb: str, path: Path, exc: OSError) -> QuotaStateError:
        why = exc.strerror or type(exc).__name__
        return QuotaStateError(
            f"cannot {verb} the quota state file {path}: {why} (errno {exc.errno}); the file lives under "
            "TICKLAKE_HOME (its state/ directory): free space there or point TICKLAKE_HOME at a writable disk"
        )

    def describe(self) -> str:
        return str(self.path)

    def close(self) -> None:
        pass


class PostgresStateStore:
    """The state as one row of `ticklake_quota_state` (created when missing), keyed by `key`.

    One connection per store and process, opened on first use; the caller serializes its use (the limiter holds
    its thread lock around `transact`). A forked child never speaks on its parent's connection: it opens its own.
    A dropped connection (a PostgreSQL restart, a session ended by the server) is reopened once and the
    transaction run again from a fresh read; if that fails too, QuotaStateError names the server and database.
    """

    def __init__(self, url: str, key: str):
        self.url, self.key = url, key
        self._where = redact_url(url)
        self._conn: Any = None
        self._pid: int | None = None

    def describe(self) -> str:
        return f"{self._where} (table {TABLE}, key {self.key})"

    def transact(self, update: Update[R]) -> R:
        import psycopg2

        for attempt in (1, 2):
            conn = self._connection(reconnecting=attempt == 2)
            try:
                with conn.cursor() as cur:
                    text = self._lock_row(cur)
                    cur.execute("SELECT extract(epoch FROM clock_timestamp())::float8")  # after the lock: see above
                    now = cur.fetchone()[0]
                    data, result = update(text, now)
                    cur.execute(
                        f"UPDATE {TABLE} SET state = %s::jsonb, updated_at = clock_timestamp() WHERE account = %s",
                        (data.decode(), self.key),
                    )
                conn.commit()
                return result
            except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
                if not conn.closed:  # the server refused a statement (a lock or statement timeout): not retried
                    self._rollback(conn)
                    raise QuotaStateError(
                        f"the quota state in PostgreSQL at {self.describe()} could not be updated: {self._scrub(exc)}"
                    ) from None
                self._conn = None
                if attempt == 2:
                    raise QuotaStateError(
                        f"lost the connection to the quota state in PostgreSQL at {self.describe()} twice in a row: "
                        f"{self._scrub(exc)}; check that the server is up and TICKLAKE_COORDINATION_URL"
                    ) from None
                logger.warning(
                    "lost the connection to the quota state in PostgreSQL at %s (%s); reconnecting",
                    self._where,
                    self._scrub(exc),
                )
            except psycopg2.Error as exc:  # e.g. the table dropped under us: not retried
                self._rollback(conn)
                raise QuotaStateError(
                    f"the quota state in PostgreSQL at {self.describe()} could not be updated: {self._scrub(exc)}"
                ) from None
            except BaseException:
                if not conn.closed:
                    self._rollback(conn)
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and self._pid == os.getpid() and not conn.closed:
            conn.close()

    # -- the row ----------------------------------------------------------------------------------------
    def _lock_row(self, cur: Any) -> str | None:
        """Lock this key's row for the transaction and return its state (None: never written); the row is
        inserted first when missing (ON CONFLICT DO NOTHING: a concurrent insert wins, and we then wait for it)."""
        select = f"SELECT state::text FROM {TABLE} WHERE account = %s FOR UPDATE"
        cur.execute(select, (self.key,))
        row = cur.fetchone()
        if row is None:
            cur.execute(
                f"INSERT INTO {TABLE} (account, state, updated_at) VALUES (%s, NULL, clock_timestamp()) "
                "ON CONFLICT (account) DO NOTHING",
                (self.key,),
            )
            cur.execute(select, (self.key,))
            row = cur.fetchone()
        return row[0]

    # -- the connection ---------------------------------------------------------------------------------
    def _connection(self, reconnecting: bool = False) -> Any:
        if self._pid != os.getpid():
            # A forked child must not speak on its parent's connection: it drops it without closing it (close()
            # would tell the server to end the session the parent still uses; psycopg2 never closes a connection
            # it collects in a process other than the one that opened it) and opens its own.
            self._conn = None
        if self._conn is None or self._conn.closed:
            self._conn, self._pid = self._connect(reconnecting), os.getpid()
        return self._conn

    def _connect(self, reconnecting: bool = False) -> Any:
        try:
            import psycopg2
        except ImportError:
            raise QuotaStateError(
                "TICKLAKE_COORDINATION_URL needs psycopg2: install the distributed extra "
                "(pip install 'ticklake[distributed]')"
            ) from None
        try:
            conn = psycopg2.connect(
                self.url,
                connect_timeout=CONNECT_TIMEOUT_S,
                application_name="ticklake-quota",
                options=f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_TIMEOUT_MS}",
            )
        except psycopg2.Error as exc:
            what = "lost the connection to" if reconnecting else "cannot connect to"
            again = " and could not reconnect" if reconnecting else ""
            raise QuotaStateError(
                f"{what} the quota state in PostgreSQL at {self._where}{again}: {self._scrub(exc)}; "
                "check that the server is up and TICKLAKE_COORDINATION_URL"
            ) from None
        try:
            with conn.cursor() as cur:
                # Two workers creating the table at once would collide in the catalog: one creates, the other waits.
                cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (TABLE,))
                cur.execute(
                    f"CREATE TABLE IF NOT EXISTS {TABLE} (account text PRIMARY KEY, state jsonb, "
                    "updated_at timestamptz NOT NULL DEFAULT clock_timestamp())"
                )
            conn.commit()
        except psycopg2.Error as exc:
            conn.close()
            raise QuotaStateError(
                f"cannot create table {TABLE} for the quota state in PostgreSQL at {self._where}: {self._scrub(exc)}"
            ) from None
        return conn

    def _rollback(self, conn: Any) -> None:
        if conn.closed:
            self._conn = None
            return
        try:
            conn.rollback()
        except Exception:  # the connection is unusable: the next transaction opens another
            self._conn = None

    def _scrub(self, exc: BaseException) -> str:
        """The driver's message, first line, with any password of the URL masked (libpq may quote the URL)."""
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        for secret in url_passwords(self.url):
            text = text.replace(secret, "***")
        return text
