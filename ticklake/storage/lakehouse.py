"""The lake: every dataset a DuckLake table, one copy of each row, read and written through one catalog.

The pipeline and analysts open the same lake. Each connection sees one committed snapshot, so an analyst's
session never blocks a run and never sees half of one, and a run's commit is one transaction: a partition's rows,
the versions they supersede, the ledger entries they apply and their `lake_partitions` rows become visible
together or not at all. A run killed mid-commit leaves the previous snapshot; its unreferenced files are deleted
by the next commit of the same tables (local data path) or by `lake_maintenance`.

Writes replace logical partitions (a source's rows of one region and month): DELETE then INSERT in one
transaction, under that table's commit lock (`ticklake.storage.locks`), taken around the commit only.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from ticklake.dictionary import DATASETS, LAKE_PARTITIONS, MACROS, Dataset
from ticklake.storage.catalog import ALIAS, SCHEMA_TABLE, Catalog
from ticklake.storage.ddl import (
    cluster_order,
    comment_sql,
    create_table_sql,
    layout_sql,
    partition_filter,
    quote,
    status_filter,
)
from ticklake.storage.frames import from_arrow
from ticklake.storage.legacy import refuse_old_layout
from ticklake.storage.locks import CommitLocks


class LakeStorageError(RuntimeError):
    """The lake's files could not be read or written (a full disk, an object store down or refusing); the message
    names where and the setting behind it. Nothing half-written is ever visible."""


SCHEMA_LOCK = "__schema__"

# (dataset, the partitions' new rows or None to keep them, the partitions, their lake_partitions rows or None)
Batch = tuple[Dataset, pa.Table | None, Sequence[Mapping[str, str]], pa.Table | None]


def schema_fingerprint() -> str:
    digest = hashlib.sha256()
    for dataset in DATASETS.values():
        for statement in (create_table_sql(dataset), *comment_sql(dataset), *layout_sql(dataset)):
            digest.update(statement.encode())
    for macro in MACROS.values():
        digest.update(macro.create_sql.encode())
    return digest.hexdigest()[:16]


class Lakehouse:
    """One lake (catalog + data path) as seen by one process: a DuckDB database with the lake attached, whose
    cursors are the connections handed out (they share the attachment; each runs its own transactions)."""

    def __init__(self, catalog: Catalog, state_dir: Path, *, lock_timeout_s: float = 900.0,
                 check_old_layout: bool = True):
        self.catalog = catalog
        self.state_dir = Path(state_dir)
        # TICKLAKE_HOME (state_dir's parent) may still hold the previous release's storage: refused unless this is
        # the migration itself (ticklake.storage.legacy says why)
        self.check_old_layout = check_old_layout
        self.locks = CommitLocks(scope=f"ticklake-lake:{catalog.data_path}", directory=self.state_dir / "locks",
                                 conninfo=catalog.target if catalog.kind == "postgres" else None,
                                 describe=catalog.describe(), timeout_s=lock_timeout_s, scrub=catalog.scrub)
        self._db: duckdb.DuckDBPyConnection | None = None
        self._guard = threading.Lock()

    def __repr__(self) -> str:
        return f"Lakehouse({self.catalog.describe()}, data={self.catalog.data_path})"

    # ------------------------------------------------------------------ connections
    def _database(self) -> duckdb.DuckDBPyConnection:
        with self._guard:
            if self._db is None:
                if self.check_old_layout:
                    refuse_old_layout(self.state_dir.parent)
                con = self.catalog.connect()
                try:
                    # Attaching an empty catalog creates DuckLake's metadata tables: workers starting together on a
                    # new PostgreSQL catalog raced to create them ("relation ducklake_metadata already exists").
                    with self.locks.hold([SCHEMA_LOCK]):
                        self.catalog.attach(con)
                        self._ensure_schema(con)
                except duckdb.IOException as exc:  # the fingerprint's file on an object store that does not answer
                    con.close()
                    raise LakeStorageError(self._storage_error(exc)) from exc
                except BaseException:
                    con.close()
                    raise
                self._db = con
            return self._db

    @contextlib.contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection with the lake as its default catalog (`FROM klines_daily`); each statement outside an
        explicit transaction sees the latest committed snapshot."""
        cursor = self._database().cursor()
        try:
            cursor.execute(f"USE {ALIAS}")
            yield cursor
        except duckdb.IOException as exc:  # HTTP (object store) and file errors: say where, and which setting
            raise LakeStorageError(self._storage_error(exc)) from exc
        finally:
            cursor.close()

    def _storage_error(self, exc: BaseException) -> str:
        where = ("TICKLAKE_STORAGE_URL" if self.catalog.is_remote else "TICKLAKE_HOME")
        return (f"lake storage failed (data at {self.catalog.data_path}, set by {where}; catalog "
                f"TICKLAKE_CATALOG={self.catalog.describe()}): {self.catalog.scrub(str(exc))}. Nothing of an "
                "unfinished commit is visible: the last snapshot is intact, and a re-run completes the work once "
                "the cause (a full disk, an unreachable store) is fixed.")

    writer = connection  # the names the write steps and checks use
    reader = connection

    def close(self) -> None:
        with self._guard:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _ensure_schema(self, con: duckdb.DuckDBPyConnection) -> None:
        """Create what the dictionary declares (tables, comments, layout, macros), once per dictionary version:
        a process on a lake at the current fingerprint only reads one row."""
        wanted = schema_fingerprint()
        if self._fingerprint(con) == wanted:
            return
        with self.locks.hold([SCHEMA_LOCK]):
            if self._fingerprint(con) == wanted:
                return
            con.execute("BEGIN")
            try:
                created = []
                for dataset in DATASETS.values():
                    existing = dict(con.execute(
                        "SELECT column_name, is_nullable FROM duckdb_columns() WHERE database_name = ? AND "
                        "table_name = ?", [ALIAS, dataset.name]).fetchall())
                    if not existing:
                        con.execute(create_table_sql(dataset))
                        created.append(dataset.name)
                    for f in dataset.fields:  # additive evolution: new dictionary fields become nullable columns,
                        if existing and f.name not in existing:  # and a field made nullable drops its NOT NULL
                            con.execute(f"ALTER TABLE {quote(dataset.name)} ADD COLUMN {quote(f.name)} "
                                        f"{f.duckdb_type}")
                        elif existing and f.nullable and not existing[f.name]:
                            con.execute(f"ALTER TABLE {quote(dataset.name)} ALTER {quote(f.name)} DROP NOT NULL")
                    for statement in (*comment_sql(dataset), *layout_sql(dataset)):
                        con.execute(statement)
                if "klines_daily_by_source" in created and "klines_daily" not in created:
                    seed_raw_layer(con)
                for macro in MACROS.values():  # after every table exists: macros may read any of them
                    con.execute(macro.create_sql)
                con.execute(f"CREATE TABLE IF NOT EXISTS {SCHEMA_TABLE} (fingerprint VARCHAR NOT NULL)")
                con.execute(f"DELETE FROM {SCHEMA_TABLE}")
                con.execute(f"INSERT INTO {SCHEMA_TABLE} VALUES (?)", [wanted])
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    @staticmethod
    def _fingerprint(con: duckdb.DuckDBPyConnection) -> str | None:
        found = con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND table_name = ?",
                            [ALIAS, SCHEMA_TABLE]).fetchone()[0]
        if not found:
            return None
        row = con.execute(f"SELECT max(fingerprint) FROM {SCHEMA_TABLE}").fetchone()
        return row[0] if row else None

    # ------------------------------------------------------------------ reads
    def read_partitions(self, dataset: Dataset, partitions: Sequence[Mapping[str, str]]) -> pa.Table:
        """The stored rows of the given logical partitions, in the dataset's Arrow schema and sort order."""
        where, params = partition_filter(dataset, partitions)
        columns = ", ".join(quote(c) for c in dataset.columns)
        order = ", ".join(quote(c) for c in dataset.sort_by) or "ALL"
        with self.connection() as con:
            table = con.execute(f"SELECT {columns} FROM {quote(dataset.name)} WHERE {where} ORDER BY {order}",
                                params).to_arrow_table()
        return table.cast(dataset.arrow_schema)

    def read_table(self, dataset: Dataset, **values: str) -> pa.Table | None:
        """One source's rows of one partition; None when it holds none."""
        table = self.read_partitions(dataset, [values])
        return table if table.num_rows else None

    def read(self, dataset: Dataset, **values: str) -> pd.DataFrame | None:
        table = self.read_table(dataset, **values)
        return None if table is None else from_arrow(dataset, table)

    def distinct(self, dataset: Dataset, column: str, **fixed: str) -> list:
        """The distinct values of `column` among the rows matching `fixed` (column = value), sorted."""
        where = " AND ".join(f"{quote(k)} = ?" for k in fixed) or "TRUE"
        with self.connection() as con:
            rows = con.execute(f"SELECT DISTINCT {quote(column)} FROM {quote(dataset.name)} WHERE {where} "
                               f"ORDER BY 1", list(fixed.values())).fetchall()
        return [r[0] for r in rows]

    def snapshot_id(self) -> int:
        """The lake's latest snapshot: what a connection opened now would see."""
        with self.connection() as con:
            return int(con.execute("SELECT id FROM current_snapshot()").fetchone()[0])


    # ------------------------------------------------------------------ writes
    def append(self, dataset: Dataset, table: pa.Table) -> int:
        """Append `table`'s rows to `dataset` in one commit (a pure INSERT: nothing is replaced, no partition status
        is kept), under the table's commit lock; return rows appended. For tables only ever appended to (the read
        API's `api_audit`, written in batches). On the embedded SQLite catalog two commits landing at once collide
        ("database is locked": the other writer's commit fails), so there an append holds every table's commit
        lock and never lands while a pipeline commit does; PostgreSQL takes concurrent commits."""
        if table.schema.remove_metadata() != dataset.arrow_schema.remove_metadata():
            raise TypeError(f"{dataset.name}: table schema does not match the data dictionary")
        if not table.num_rows:
            return 0
        columns = ", ".join(quote(c) for c in dataset.columns)
        tables = {dataset.name} if self.catalog.kind == "postgres" else {*DATASETS, LAKE_PARTITIONS.name}
        with self.locks.hold(tables), self.connection() as con:
            con.register("appended_rows", table)
            try:
                con.execute(f"INSERT INTO {quote(dataset.name)} ({columns}) SELECT {columns} FROM appended_rows "
                            f"ORDER BY {cluster_order(dataset)}")
            finally:
                con.unregister("appended_rows")
        return table.num_rows

    def replace_partitions(self, dataset: Dataset, table: pa.Table, partitions: Sequence[Mapping[str, str]],
                           status: pa.Table | None = None) -> int:
        """Replace the rows of the given logical partitions with `table` (and, given `status`, their rows in
        `lake_partitions`) in one transaction; return rows inserted."""
        return self.replace_many([(dataset, table, partitions, status)])

    def replace_many(self, batches: Sequence[Batch]) -> int:
        """Several `replace_partitions` in ONE transaction (a dataset's rows, the history of the versions they
        supersede, the ledger and the status rows commit together or not at all); return rows inserted."""
        batches = [b for b in batches if b[2]]
        if not batches:
            return 0
        tables = {b[0].name for b in batches if b[1] is not None}
        tables |= {LAKE_PARTITIONS.name} if any(b[3] is not None for b in batches) else set()
        for dataset, table, _, _ in batches:
            if table is not None and table.schema.remove_metadata() != dataset.arrow_schema.remove_metadata():
                raise TypeError(f"{dataset.name}: table schema does not match the data dictionary")
        with self.locks.hold(tables), self.connection() as con:
            if interrupted := self._interrupted(tables):  # a commit of these tables was killed: its files go first
                self._remove_orphans(con, interrupted)
                self._settled(interrupted)
            self._pending(tables)
            con.execute("BEGIN TRANSACTION")
            try:
                for i, (dataset, table, partitions, status) in enumerate(batches):
                    if table is not None:
                        _delete_insert(con, dataset, table, f"incoming_rows_{i}",
                                       *partition_filter(dataset, partitions))
                    if status is not None:
                        _delete_insert(con, LAKE_PARTITIONS, status, f"incoming_status_{i}",
                                       *status_filter(dataset, partitions))
                con.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(duckdb.Error):
                    con.execute("ROLLBACK")
                with contextlib.suppress(duckdb.Error, OSError):  # a full disk, say: what it half-wrote goes now
                    self._remove_orphans(con, tables)
                    self._settled(tables)  # else the markers stay, and the next commit of these tables retries
                raise
            self._settled(tables)
        return sum(b[1].num_rows for b in batches if b[1] is not None)

    # A commit's Parquet files are written before its COMMIT; a writer killed in between leaves them on disk,
    # referenced by no snapshot. Each commit on a local data path leaves a marker per table for its duration
    # (under the tables' commit locks, so no two writers mark one table at once): a marker found by the next
    # commit of that table means its previous writer died mid-commit, and only then are the table's unreferenced
    # files looked for (listing the lake's files costs what the lake holds: a nightly must not pay it each run).
    def _marker(self, table: str) -> Path:
        return self.state_dir / "commits" / f"{table}.pending"

    def _pending(self, tables: set[str]) -> None:
        if self.catalog.is_remote:
            return
        with contextlib.suppress(OSError):  # no marker (a full disk): a failed commit still sweeps on its way out
            self._marker(next(iter(tables))).parent.mkdir(parents=True, exist_ok=True)
            for table in tables:
                self._marker(table).touch()

    def _interrupted(self, tables: set[str]) -> set[str]:
        return set() if self.catalog.is_remote else {t for t in tables if self._marker(t).exists()}

    def _settled(self, tables: set[str]) -> None:
        for table in tables:
            with contextlib.suppress(OSError):
                self._marker(table).unlink(missing_ok=True)

    def _remove_orphans(self, con: duckdb.DuckDBPyConnection, tables: set[str]) -> int:
        """Delete the files under these tables' folders that no snapshot references: what a commit that failed (a
        full disk) or a writer killed mid-commit left. Only a holder of a table's commit lock writes its files, and
        the caller holds these, so none of them belongs to a commit in flight. A local data path only: on object
        storage `lake_maintenance` deletes orphans once they are a day old."""
        if self.catalog.is_remote:
            return 0
        found = con.execute("SELECT * FROM ducklake_delete_orphaned_files(?, dry_run => true, older_than => "
                            "now() + INTERVAL 1 DAY)", [ALIAS]).fetchall()
        folders = [f"{Path(self.catalog.data_path) / 'main' / table}{os.sep}" for table in tables]
        removed = 0
        for (path, *_rest) in found:
            if any(str(path).startswith(folder) for folder in folders):
                Path(path).unlink(missing_ok=True)
                removed += 1
        return removed


def seed_raw_layer(con: duckdb.DuckDBPyConnection) -> None:
    """A lake from before the golden copy holds its bars in `klines_daily` only: the raw layer starts as a copy of
    them (what that source said), so re-deriving a golden month never drops a bar the raw layer lacks."""
    raw = DATASETS["klines_daily_by_source"]
    golden = {f.name for f in DATASETS["klines_daily"].fields}
    missing = {"received_at": "ingested_at"}
    columns = ", ".join(quote(c) for c in raw.columns)
    select = ", ".join(quote(c) if c in golden else missing.get(c, "NULL") for c in raw.columns)
    con.execute(f"INSERT INTO klines_daily_by_source ({columns}) SELECT {select} FROM klines_daily")


def _delete_insert(con: duckdb.DuckDBPyConnection, dataset: Dataset, table: pa.Table, name: str, where: str,
                   params: list) -> None:
    """Make the rows matching `where` exactly `table`, touching only the rows that differ: rows no longer there or
    changed are deleted by key, new or changed rows inserted; identical rows stay where they are. The result is the
    same as DELETE then INSERT of everything, but a nightly run that adds one session to a month appends that
    session instead of rewriting the month (no delete file on the month's compacted year file), and a restatement
    deletes only the bars it restates. Computed inside the caller's transaction, under the table's commit lock,
    against the rows stored now (keys are unique per source and partition: validation holds them).

    When the commit inserts anything, the partition's own files (`_own_files`: files holding only rows of these
    partitions, none deleted, such as the previous nights' one-session files) are rewritten together with the new
    rows into one file. So between two maintenances a month holds its compacted rows plus one file, not one file
    per night: every read of it opens the same number of files whatever the night of the weekly cycle. It costs
    rewriting at most those files' rows (bounded by one partition), and they are dropped whole (no delete file)."""
    if not table.num_rows:
        con.execute(f"DELETE FROM {quote(dataset.name)} WHERE {where}", params)
        return
    columns = ", ".join(quote(c) for c in dataset.columns)
    key = ", ".join(quote(c) for c in dataset.key)
    stored, gone, fresh = f"{name}_stored", f"{name}_gone", f"{name}_fresh"
    con.register(name, table)
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {stored} AS SELECT {columns}, filename AS {FILE_COLUMN} FROM "
                    f"{quote(dataset.name)} WHERE {where}", params)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {fresh} AS SELECT {columns} FROM {name} EXCEPT ALL SELECT "
                    f"{columns} FROM {stored}")  # new or changed rows
        changed = con.execute(f"SELECT count(*) FROM {fresh}").fetchone()[0]
        own = _own_files(con, dataset, stored) if changed else []
        if own:
            con.execute(f"DELETE FROM {stored} WHERE {FILE_COLUMN} IN (SELECT unnest(?))", [own])
        con.execute(f"CREATE OR REPLACE TEMP TABLE {gone} AS SELECT {key} FROM (SELECT {columns} FROM {stored} "
                    f"EXCEPT ALL SELECT {columns} FROM {name})")
        if con.execute(f"SELECT count(*) FROM {gone}").fetchone()[0]:
            con.execute(f"DELETE FROM {quote(dataset.name)} WHERE ({where}) AND ({key}) IN (SELECT {key} FROM {gone})",
                        params)
        if own:  # every row of these files is this partition's: they go whole, their rows come back below
            con.execute(f"DELETE FROM {quote(dataset.name)} WHERE ({where}) AND filename IN (SELECT unnest(?))",
                        [*params, own])
        if own:  # the new rows and those of the files just dropped: what the other files do not hold
            con.execute(f"INSERT INTO {quote(dataset.name)} ({columns}) SELECT {columns} FROM (SELECT {columns} "
                        f"FROM {name} EXCEPT ALL SELECT {columns} FROM {stored}) ORDER BY {cluster_order(dataset)}")
        elif changed:
            con.execute(f"INSERT INTO {quote(dataset.name)} ({columns}) SELECT {columns} FROM {fresh} ORDER BY "
                        f"{cluster_order(dataset)}")
    finally:
        con.unregister(name)
        with contextlib.suppress(duckdb.Error):  # after a failed statement the ROLLBACK takes them with it
            for temp in (stored, gone, fresh):
                con.execute(f"DROP TABLE IF EXISTS {temp}")


FILE_COLUMN = "__ticklake_file"  # the stored rows' data file (DuckLake's `filename` virtual column)
METADATA = f"__ducklake_metadata_{ALIAS}"  # the catalog's own tables, as DuckLake attaches them


def _own_files(con: duckdb.DuckDBPyConnection, dataset: Dataset, stored: str) -> list[str]:
    """The data files of which every row is in `stored` (the rows of the partitions being replaced) and none is
    deleted: the catalog's row count of the file equals its rows among them. Dropping such a file removes only
    rows of these partitions. A file written earlier in this transaction is not in the catalog yet: never own."""
    counts = dict(con.execute(f"SELECT {FILE_COLUMN}, count(*) FROM {stored} GROUP BY 1").fetchall())
    if not counts:
        return []
    by_name = {os.path.basename(path): path for path in counts if path}  # rows inlined in the catalog: none
    recorded = con.execute(
        f"SELECT f.path, f.record_count FROM {METADATA}.ducklake_data_file f JOIN {METADATA}.ducklake_table t "
        f"USING (table_id) WHERE t.table_name = ? AND t.end_snapshot IS NULL AND f.end_snapshot IS NULL AND NOT "
        f"EXISTS (SELECT 1 FROM {METADATA}.ducklake_delete_file d WHERE d.data_file_id = f.data_file_id AND "
        f"d.end_snapshot IS NULL)", [dataset.name]).fetchall()
    own = []
    for path, rows in recorded:
        full = by_name.get(os.path.basename(path))
        if full is not None and counts[full] == rows:
            own.append(full)
    return sorted(own)
