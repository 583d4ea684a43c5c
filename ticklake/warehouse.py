"""The DuckDB warehouse analysts open: tables derived from the data dictionary, loaded from the lake.

DuckDB allows one writer per file. Every write goes through `Warehouse.writer()`, which serialises
writers across threads and processes with a file lock and waits out readers that hold DuckDB's own lock
(an analyst's open session), so parallel runs queue instead of failing with "Could not set lock".
Loads are delete-then-insert of exactly the partitions being written, inside one transaction, so a
re-run replaces and a failed load leaves the previous rows.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import duckdb
import pyarrow as pa
from filelock import FileLock, Timeout

from ticklake.dictionary import DATASETS, Dataset


class WarehouseBusyError(RuntimeError):
    """The warehouse stayed locked by another process for longer than the configured timeout."""


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def create_table_sql(dataset: Dataset) -> str:
    columns = ",\n  ".join(
        f"{_quote(f.name)} {f.duckdb_type}{'' if f.nullable else ' NOT NULL'}" for f in dataset.fields
    )
    return f"CREATE TABLE IF NOT EXISTS {_quote(dataset.name)} (\n  {columns}\n)"


def comment_sql(dataset: Dataset) -> list[str]:
    statements = [f"COMMENT ON TABLE {_quote(dataset.name)} IS {_literal(dataset.description)}"]
    statements += [
        f"COMMENT ON COLUMN {_quote(dataset.name)}.{_quote(f.name)} IS {_literal(f.doc)}" for f in dataset.fields
    ]
    return statements


def cluster_order(dataset: Dataset) -> str:
    """Physical row order of a load. Date-keyed tables are clustered by (region, year, symbol, date): DuckDB's
    zone maps then prune row groups for both analyst shapes, a symbol's history (a few row groups per year)
    and a date's cross-section (only that year's row groups), instead of favouring one of them."""
    columns = [_quote(c) for c in dataset.sort_by]
    if "trade_date" in dataset.sort_by:
        columns.insert(dataset.sort_by.index("trade_date") - 1, "date_trunc('year', \"trade_date\")")
    return ", ".join(columns) or "ALL"


class Warehouse:
    def __init__(self, path: Path, *, lock_timeout_s: float = 900.0):
        self.path = Path(path)
        self.lock_timeout_s = lock_timeout_s
        self._lock = FileLock(str(self.path) + ".writer.lock")

    @contextlib.contextmanager
    def writer(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The single read-write connection, with the schema ensured. Blocks while another writer works."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_timeout_s
        try:
            self._lock.acquire(timeout=self.lock_timeout_s)
        except Timeout:
            raise WarehouseBusyError(
                f"another ticklake writer held {self.path} for {self.lock_timeout_s:.0f}s; "
                f"is a stuck run holding {self._lock.lock_file}?"
            ) from None
        try:
            con = self._connect(deadline)
            try:
                self._ensure_schema(con)
                yield con
            finally:
                con.close()
        finally:
            self._lock.release()

    def _connect(self, deadline: float) -> duckdb.DuckDBPyConnection:
        delay = 0.05
        while True:
            try:
                return duckdb.connect(str(self.path))
            except duckdb.IOException as exc:  # an analyst (or a foreign process) holds DuckDB's file lock
                if "lock" not in str(exc).lower():
                    raise
                if time.monotonic() + delay > deadline:
                    raise WarehouseBusyError(
                        f"{self.path} stayed locked by another process: {exc}. Close read-write sessions on the "
                        "warehouse (analysts should open it with read_only=True) and re-run."
                    ) from exc
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    @staticmethod
    def _ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
        for dataset in DATASETS.values():
            existing = {r[0] for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [dataset.name]
            ).fetchall()}
            if not existing:
                con.execute(create_table_sql(dataset))
                for statement in comment_sql(dataset):
                    con.execute(statement)
                continue
            for f in dataset.fields:  # additive evolution: new dictionary fields become nullable columns
                if f.name not in existing:
                    con.execute(f"ALTER TABLE {_quote(dataset.name)} ADD COLUMN {_quote(f.name)} {f.duckdb_type}")
                    con.execute(f"COMMENT ON COLUMN {_quote(dataset.name)}.{_quote(f.name)} IS {_literal(f.doc)}")

    def replace_dates(self, dataset: Dataset, table: pa.Table, *, region: str, dates: Sequence[dt.date],
                      date_column: str = "trade_date") -> int:
        """Replace the rows of (`region`, `dates`) with `table` in one transaction; return rows inserted."""
        with self.writer() as con:
            return self._replace(
                con, dataset, table,
                f"region = ? AND {_quote(date_column)} IN (SELECT UNNEST(?::DATE[]))", [region, list(dates)],
            )

    def replace_region(self, dataset: Dataset, table: pa.Table, *, region: str) -> int:
        with self.writer() as con:
            return self._replace(con, dataset, table, "region = ?", [region])

    @staticmethod
    def _replace(con: duckdb.DuckDBPyConnection, dataset: Dataset, table: pa.Table, where: str,
                 params: list) -> int:
        columns = ", ".join(_quote(c) for c in dataset.columns)
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(f"DELETE FROM {_quote(dataset.name)} WHERE {where}", params)
            con.register("incoming", table)
            con.execute(f"INSERT INTO {_quote(dataset.name)} ({columns}) SELECT {columns} FROM incoming "
                        f"ORDER BY {cluster_order(dataset)}")
            con.unregister("incoming")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return table.num_rows
