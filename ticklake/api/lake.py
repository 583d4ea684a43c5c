"""The API's read side of the lake: one long-lived read-only connection (`ticklake.storage.connect`; a connect costs
150-350 ms), a cursor per worker thread, the current snapshot id reused for TICKLAKE_API_SNAPSHOT_MS (reading it
costs a catalog round trip, 2-5 ms measured), and every answer encoded in the thread that read it.

Each answer is cut from one snapshot: the statement is planned with `snapshot=id`, so every table it reads (the
bars, and for a tenant on USD the security master, fundamentals and FX) is read `AT (VERSION => id)`. The id is the
latest snapshot that changed a table the API serves (`LakeReader.snapshot`), so the API's own audit commits never
invalidate the hot-data cache, whose keys hold it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

import duckdb
import orjson
import pyarrow as pa

from ticklake.products.delivery import arrow_schema, encode
from ticklake.products.query import Query
from ticklake.storage import ALIAS, CatalogError, catalog_from_env, connect
from ticklake.storage.catalog import Catalog

REBASE_S = 3600.0  # the data snapshot moves to the current one at least this often (snapshots expire eventually)
FORMATS = {"json": "application/json", "csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet"}


class LakeUnavailableError(RuntimeError):
    """The lake cannot be read now (503): the message names the setting, never a password."""


@dataclass(frozen=True)
class Answer:
    rows: int
    body: bytes


class LakeReader:
    def __init__(self, snapshot_ms: int, tables: Iterable[str] = (), *, reconnect_after_s: float = 1.0) -> None:
        self.snapshot_s = snapshot_ms / 1000
        self.tables = tuple(sorted(set(tables)))  # what the answers read: their changes move the snapshot
        self.reconnect_after_s = reconnect_after_s
        self._refresh_lock = threading.Lock()
        self._refreshing = False
        self._since = 0.0  # when the data snapshot last moved
        self._con: duckdb.DuckDBPyConnection | None = None
        self._generation = 0
        self._lock = threading.Lock()
        self._local = threading.local()
        self._snapshot: tuple[float, int, int] | None = None  # (checked at, data snapshot, current snapshot)
        self._failed: tuple[float, str] | None = None
        self._catalog: Catalog | None = None

    # ------------------------------------------------------------------ connection
    def _catalog_described(self) -> Catalog | None:
        if self._catalog is None:
            try:
                self._catalog = catalog_from_env()
            except Exception:
                return None
        return self._catalog

    def _connection(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            if self._con is not None:
                return self._con
            now = time.monotonic()
            if self._failed is not None and now - self._failed[0] < self.reconnect_after_s:
                raise LakeUnavailableError(self._failed[1])
            try:
                self._con = connect()
                # Many small queries at once, parallel across the worker threads: one DuckDB thread each serves
                # more of them than DuckDB's per-query parallelism (measured: 28-29 vs 22-24 symbol-years/s with 8
                # threads on 2 cores).
                self._con.execute("SET threads = 1")
            except (CatalogError, duckdb.Error, OSError, ValueError) as exc:
                message = self._message(exc)
                self._failed = (now, message)
                raise LakeUnavailableError(message) from None
            self._failed = None
            self._generation += 1
            return self._con

    def _message(self, exc: BaseException) -> str:
        text = " ".join(str(exc).split())
        catalog = self._catalog_described()
        if catalog is not None:
            text = catalog.scrub(text)
        if isinstance(exc, CatalogError):
            return f"the lake cannot be read: {text}"
        where = "TICKLAKE_STORAGE_URL" if catalog is not None and catalog.is_remote else "TICKLAKE_HOME"
        return (f"the lake cannot be read (data set by {where}, catalog by TICKLAKE_CATALOG): {text[:300]}; retry "
                "once it is reachable")

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        con = self._connection()
        local = self._local
        if getattr(local, "generation", None) != self._generation:
            local.cursor = con.cursor()
            local.cursor.execute(f"USE {ALIAS}")
            local.generation = self._generation
        return local.cursor

    def reset(self) -> None:
        """Drop the connection after a storage failure: the next request connects again."""
        with self._lock:
            con, self._con = self._con, None
            self._snapshot = None
            self._generation += 1
        if con is not None:
            with contextlib.suppress(duckdb.Error):
                con.close()

    def close(self) -> None:
        self.reset()

    # ------------------------------------------------------------------ reads (in worker threads)
    def cached_snapshot(self) -> tuple[int | None, bool]:
        """(the data snapshot last checked, whether it is due for a check): no I/O, for the event loop. None when
        it was never read; not due while a check runs (requests meanwhile keep the last one, a whole snapshot)."""
        held = self._snapshot
        if held is None:
            return None, True
        return held[1], not self._refreshing and time.monotonic() - held[0] >= self.snapshot_s

    def snapshot(self) -> int:
        """The snapshot answers are cut at: the lake's current one, unless every commit since the last one used
        touched none of the tables the API serves (the API's own `api_audit` appends, say), in which case that
        one still holds exactly the same rows. So an audit batch does not turn every cached answer stale, and a
        commit that changes served data does, at the next check."""
        with self._refresh_lock:
            held = self._snapshot
            now = time.monotonic()
            if held is not None and now - held[0] < self.snapshot_s:
                return held[1]
            self._refreshing = True
            try:
                cursor = self._cursor()
                current = int(cursor.execute("SELECT id FROM current_snapshot()").fetchone()[0])
                if held is None or not self.tables or now - self._since > REBASE_S:
                    data, self._since = current, now
                elif current == held[2]:
                    data = held[1]
                elif self._changed(cursor, held[1], current):
                    data, self._since = current, now
                else:
                    data = held[1]
                self._snapshot = (now, data, current)
                return data
            except duckdb.Error as exc:
                message = self._message(exc)
                self.reset()
                raise LakeUnavailableError(message) from None
            finally:
                self._refreshing = False

    def _changed(self, cursor: duckdb.DuckDBPyConnection, since: int, current: int) -> bool:
        for table in self.tables:  # names from the dictionary, ids from the lake: no user input in this SQL
            try:
                changes = cursor.execute(f"SELECT count(*) FROM ducklake_table_changes('{ALIAS}', 'main', "
                                         f"'{table}', {int(since) + 1}, {int(current)})").fetchone()[0]
            except duckdb.CatalogException:  # not there at one end of the range: changed
                return True
            if changes:
                return True
        return False

    def answer(self, query: Query, fmt: str, meta: dict) -> Answer:
        try:
            result = self._cursor().execute(query.sql, list(query.params))
            if fmt == "json":
                return _json(result.fetchall(), query, meta)
            table = result.to_arrow_table()
        except duckdb.Error as exc:
            message = self._message(exc)
            if isinstance(exc, duckdb.IOException | duckdb.ConnectionException | duckdb.InternalException):
                self.reset()
            raise LakeUnavailableError(message) from None
        return _encoded(table, fmt, query)


def _json(rows: list[tuple], query: Query, meta: dict) -> Answer:
    names = query.names
    payload = {**meta, "fields": names, "units": {c.name: c.unit for c in query.columns if c.unit},
               "rows": len(rows), "data": [dict(zip(names, row, strict=True)) for row in rows]}
    # dates as ISO strings, NaN and infinities as null (orjson's own rules)
    return Answer(len(rows), orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS))


def _encoded(table: pa.Table, fmt: str, query: Query) -> Answer:
    """CSV or Parquet exactly as a delivery of the same rows encodes them (`ticklake.products.delivery.encode`), each
    Parquet field carrying its dictionary description."""
    return Answer(table.num_rows, encode(table.cast(arrow_schema(query.columns, query.product.name)), fmt))
