"""The DuckDB warehouse analysts open: tables derived from the data dictionary, loaded from the lake.

DuckDB allows one writer per file. Every write goes through `Warehouse.writer()`, which serialises
writers across threads and processes with a file lock and waits out readers that hold DuckDB's own lock
(an analyst's open session), so parallel runs queue instead of failing with "Could not set lock".
Loads are delete-then-insert of exactly the partitions being written, inside one transaction, so a
re-run replaces and a failed load leaves the previous rows.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import duckdb
import pyarrow as pa
from filelock import FileLock, Timeout

from ticklake.dictionary import DATASETS, LAKE_PARTITIONS, Dataset


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

    def replace_partitions(self, dataset: Dataset, table: pa.Table, partitions: Sequence[Mapping[str, str]],
                           status: pa.Table | None = None) -> int:
        """Replace the rows of the given lake partitions with `table` (and, given `status`, their rows in
        `lake_partitions`) in one transaction, so a failure leaves both as they were; return rows inserted."""
        if not partitions:
            return 0
        with self.writer() as con:
            con.register("incoming_rows", table)
            con.register("incoming_status", LAKE_PARTITIONS.arrow_schema.empty_table() if status is None else status)
            con.execute("BEGIN TRANSACTION")
            try:
                _delete_insert(con, dataset, "incoming_rows", *partition_filter(dataset, partitions))
                if status is not None:
                    _delete_insert(con, LAKE_PARTITIONS, "incoming_status", *status_filter(dataset, partitions))
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            finally:
                con.unregister("incoming_rows")
                con.unregister("incoming_status")
        return table.num_rows

    def partition_status(self, dataset: Dataset, region: str) -> dict[str, tuple[int, int]]:
        """partition -> (file_bytes, file_mtime_ns) as committed, for drift detection."""
        with self.writer() as con:
            rows = con.execute("SELECT partition, file_bytes, file_mtime_ns FROM lake_partitions "
                               "WHERE dataset = ? AND region = ?", [dataset.name, region]).fetchall()
        return {partition: (size, mtime) for partition, size, mtime in rows}

    def read_partitions(self, dataset: Dataset, partitions: Sequence[Mapping[str, str]]) -> pa.Table:
        """The stored rows of the given lake partitions, in the dataset's Arrow schema."""
        where, params = partition_filter(dataset, partitions)
        columns = ", ".join(_quote(c) for c in dataset.columns)
        with self.writer() as con:
            sql = f"SELECT {columns} FROM {_quote(dataset.name)} WHERE {where} ORDER BY {cluster_order(dataset)}"
            table = con.sql(sql, params=params).to_arrow_table()
        return table.cast(dataset.arrow_schema)


def _delete_insert(con: duckdb.DuckDBPyConnection, dataset: Dataset, view: str, where: str, params: list) -> None:
    columns = ", ".join(_quote(c) for c in dataset.columns)
    con.execute(f"DELETE FROM {_quote(dataset.name)} WHERE {where}", params)
    con.execute(f"INSERT INTO {_quote(dataset.name)} ({columns}) SELECT {columns} FROM {view} "
                f"ORDER BY {cluster_order(dataset)}")


def partition_filter(dataset: Dataset, partitions: Sequence[Mapping[str, str]]) -> tuple[str, list]:
    """A WHERE clause selecting exactly the rows of the given lake partitions (by region, month, ...)."""
    clauses, params = [], []
    for values in partitions:
        terms = []
        for key in dataset.lake_keys:
            bounds = key.bounds(values[key.name])
            if bounds is None:
                terms.append(f"{_quote(key.column)} = ?")
                params.append(values[key.name])
            else:
                terms.append(f"{_quote(key.column)} BETWEEN ? AND ?")
                params += list(bounds)
        clauses.append("(" + " AND ".join(terms) + ")")
    return " OR ".join(clauses), params


def partition_label(dataset: Dataset, values: Mapping[str, str]) -> str:
    """A partition's name within its region in `lake_partitions`: its month, or "-" when there is none."""
    rest = [values[k.name] for k in dataset.lake_keys if k.name != "region"]
    return "/".join(rest) or "-"


def status_filter(dataset: Dataset, partitions: Sequence[Mapping[str, str]]) -> tuple[str, list]:
    clauses, params = [], []
    for values in partitions:
        clauses.append("(dataset = ? AND region = ? AND partition = ?)")
        params += [dataset.name, values["region"], partition_label(dataset, values)]
    return " OR ".join(clauses), params
