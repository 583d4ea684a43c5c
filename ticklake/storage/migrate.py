"""Migrate a TICKLAKE_HOME written by the previous release into the lake, keeping every row and its history.

    python -m ticklake.storage.migrate [--home DIR] [--dry-run]

The previous release kept each dataset as Parquet files `lake/<dataset>/region=XX/[month=YYYY-MM/]<source>.parquet`
(the `_history` tables, the `reconciliation_log` ledger and `quarantine` included) and copies of them in two DuckDB
2.0 files. The Parquet files hold every row; the DuckDB files only copies, plus `lake_partitions`, which is rebuilt
from the rows (one row per old file, as the write path builds it; the missing-codes count of the run that wrote
the file is not recoverable and is 0).

In ONE lake transaction every old file's rows are inserted into its table (in the lake's layout: partitioned,
sorted), and the transaction checks that each table holds exactly the files' rows, row for row, before it commits.
Then the old dataset directories and DuckDB files are moved aside to `TICKLAKE_HOME/migrated-<UTC time>/`, never
deleted. Run twice: the second run finds nothing to migrate and changes nothing. Stopped between the commit and
the move (the commit carries the author `ticklake-migrate`), a re-run verifies the rows and only moves the files.
The target lake is the one TICKLAKE_CATALOG and TICKLAKE_STORAGE_URL name; the old files must be local.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ticklake import settings
from ticklake.dictionary import DATASETS, LAKE_PARTITIONS, Dataset, month_bounds
from ticklake.storage import catalog_from_env
from ticklake.storage.catalog import ALIAS
from ticklake.storage.ddl import cluster_order, literal, quote
from ticklake.storage.lakehouse import Lakehouse, seed_raw_layer
from ticklake.storage.legacy import MIGRATE_COMMAND, old_dataset_dirs, old_storage

AUTHOR = "ticklake-migrate"  # the migration commit's author in ducklake_snapshots


class MigrationError(RuntimeError):
    """The home cannot be migrated as it is; the message says why and what to do. Nothing was changed."""


@dataclass(frozen=True)
class OldFile:
    dataset: Dataset
    values: dict[str, str]  # the partition's lake keys and source, from the path
    path: Path
    rows: int


@dataclass
class Plan:
    home: Path
    files: list[OldFile]
    moves: list[Path]  # what is moved aside, relative layout kept
    by_dataset: dict[str, list[OldFile]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for f in self.files:
            self.by_dataset.setdefault(f.dataset.name, []).append(f)

    def rows(self, dataset: str) -> int:
        return sum(f.rows for f in self.by_dataset.get(dataset, []))

    @property
    def expected(self) -> dict[str, int]:
        """Rows every table must hold after the migration (lake_partitions: one per old file)."""
        counts = {name: self.rows(name) for name in DATASETS if DATASETS[name].in_lake}
        counts[LAKE_PARTITIONS.name] = len(self.files)
        counts["klines_daily_by_source"] = self.rows("klines_daily")  # the raw layer starts as the bars stored
        return counts


def plan(home: Path) -> Plan:
    """What the home holds of the previous release: its Parquet files (checked against the data dictionary) and
    what would be moved aside. Refuses anything it does not recognise: nothing is left behind unread."""
    files, unexpected = [], []
    for folder in old_dataset_dirs(home):
        dataset = DATASETS.get(folder.name)
        if dataset is None or not dataset.in_lake:
            raise MigrationError(f"{folder} is not a dataset of this release's data dictionary: move it out of "
                                 f"{home / 'lake'} (or remove it if it is not yours), then run {MIGRATE_COMMAND} again")
        for path in sorted(folder.rglob("*")):
            if path.is_dir():
                continue
            values = _partition_values(dataset, path.relative_to(folder))
            if values is None:
                unexpected.append(path)
                continue
            files.append(OldFile(dataset, values, path, _check_file(dataset, path)))
    if unexpected:
        shown = "\n  ".join(str(p) for p in unexpected[:10])
        raise MigrationError(f"{len(unexpected)} file(s) under the old lake are not <dataset>/region=XX/[month=YYYY-"
                             f"MM/]<source>.parquet files of the previous release:\n  {shown}\nMove them out of "
                             f"{home / 'lake'} (nothing is migrated while they are there), then run again")
    moves = old_storage(home)
    moves += [p for name in ("warehouse.duckdb", "state/pipeline.duckdb")
              for p in sorted((home / name).parent.glob(f"{Path(name).name}.*"))]  # .wal, writer locks
    return Plan(home, files, list(dict.fromkeys(moves)))


def _partition_values(dataset: Dataset, relative: Path) -> dict[str, str] | None:
    """The lake keys and source a file's path names, or None for a path the previous release did not write."""
    parts = relative.parts
    if len(parts) != len(dataset.lake_keys) + 1 or relative.suffix != ".parquet":
        return None
    values = {}
    for key, part in zip(dataset.lake_keys, parts, strict=False):
        name, _, value = part.partition("=")
        if name != key.name or not value:
            return None
        if key.grain == "month":
            try:
                month_bounds(value)
            except ValueError:
                return None
        values[key.name] = value
    values["source"] = relative.stem
    return values


def _check_file(dataset: Dataset, path: Path) -> int:
    """The file's row count, after checking its columns fit the dataset (extra columns would be lost)."""
    try:
        meta = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise MigrationError(f"{path} is not a readable Parquet file ({exc}); nothing was migrated") from None
    names = meta.schema_arrow.names
    extra = [c for c in names if c not in dataset.columns]
    missing = [c for c in dataset.columns if c not in names and not dataset.field(c).nullable]
    if extra or missing:
        raise MigrationError(f"{path} does not fit {dataset.name} in the data dictionary (columns the dictionary does "
                             f"not know: {extra or 'none'}; required columns absent: {missing or 'none'}); nothing "
                             "was migrated")
    return meta.metadata.num_rows


def _read(old: OldFile) -> pa.Table:
    """The file's rows in the dataset's schema (absent nullable columns null), after checking they belong to the
    partition its path names: a row elsewhere would be replaced by the wrong partition's next write."""
    table = pq.read_table(old.path)
    for name in old.dataset.columns:
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(table.num_rows, old.dataset.field(name).arrow_type))
    table = table.select(old.dataset.columns).cast(old.dataset.arrow_schema)
    checks = {"region": old.values["region"], "source": old.values["source"]}
    for column, value in checks.items():
        if table.num_rows and pc.any(pc.not_equal(table.column(column), value)).as_py():
            raise MigrationError(f"{old.path} holds rows whose {column} is not {value!r}, as its path says; "
                                 "nothing was migrated")
    if "month" in old.values and old.dataset.date_column and table.num_rows:
        first, last = month_bounds(old.values["month"])
        dates = table.column(old.dataset.date_column)
        if pc.min(dates).as_py() < first or pc.max(dates).as_py() > last:
            raise MigrationError(f"{old.path} holds rows outside {old.values['month']}; nothing was migrated")
    return table


def _status(plan_: Plan, run_id: str, now: dt.datetime) -> pa.Table:
    from ticklake.storage.writes import Part, status_table  # the write path's own status rows (store imports storage)

    tables = [status_table(f.dataset, [Part(f.values, _read(f))], run_id=run_id, now=now)  # one file in memory
              for f in plan_.files]
    return pa.concat_tables(tables) if tables else LAKE_PARTITIONS.arrow_schema.empty_table()


def _counts(con) -> dict[str, int]:
    return {name: int(con.execute(f"SELECT count(*) FROM {quote(name)}").fetchone()[0]) for name in
            [*[n for n, d in DATASETS.items() if d.in_lake], LAKE_PARTITIONS.name]}


def _migrated_before(con) -> int | None:
    row = con.execute(f"SELECT max(snapshot_id) FROM ducklake_snapshots({literal(ALIAS)}) WHERE author = ?",
                      [AUTHOR]).fetchone()
    return row[0] if row else None


def _load(lake: Lakehouse, plan_: Plan, run_id: str, now: dt.datetime) -> int:
    """Every old file's rows and the rebuilt lake_partitions in one transaction, verified before COMMIT."""
    status = _status(plan_, run_id, now)
    tables = [*plan_.by_dataset, "klines_daily_by_source", LAKE_PARTITIONS.name]
    with lake.locks.hold(tables), lake.connection() as con:
        con.execute("BEGIN TRANSACTION")
        try:
            for name, files in plan_.by_dataset.items():
                dataset = DATASETS[name]
                present = set().union(*(pq.read_schema(f.path).names for f in files))
                select = ", ".join(quote(c) if c in present else f"NULL::{dataset.field(c).duckdb_type} AS {quote(c)}"
                                   for c in dataset.columns)
                source = _read_parquet([f.path for f in files])
                columns = ", ".join(quote(c) for c in dataset.columns)
                con.execute(f"INSERT INTO {quote(name)} ({columns}) SELECT {select} FROM {source} "
                            f"ORDER BY {cluster_order(dataset)}")
                # row for row: every old row is in the table exactly as often as in the files, and nothing else
                differ = con.execute(f"SELECT (SELECT count(*) FROM (SELECT {select} FROM {source} EXCEPT ALL "
                                     f"SELECT {columns} FROM {quote(name)})) + (SELECT count(*) FROM (SELECT "
                                     f"{columns} FROM {quote(name)} EXCEPT ALL SELECT {select} FROM {source}))"
                                     ).fetchone()[0]
                if differ:
                    raise MigrationError(f"{name}: {differ} row(s) differ between the old files and the lake after "
                                         "loading; rolled back, nothing was migrated")
            seed_raw_layer(con)  # the bars as the raw layer of the source that sent them
            con.register("migrated_status", status)
            columns = ", ".join(quote(c) for c in LAKE_PARTITIONS.columns)
            con.execute(f"INSERT INTO {LAKE_PARTITIONS.name} ({columns}) SELECT {columns} FROM migrated_status "
                        f"ORDER BY {cluster_order(LAKE_PARTITIONS)}")
            con.unregister("migrated_status")
            _verify(con, plan_)
            info = json.dumps({"home": str(plan_.home), "files": len(plan_.files), "rows": plan_.expected})
            con.execute(f"CALL ducklake_set_commit_message({literal(ALIAS)}, {literal(AUTHOR)}, "
                        f"{literal('previous release storage migrated')}, extra_info => {literal(info)})")
            con.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                con.execute("ROLLBACK")
            raise
    return lake.snapshot_id()


def _read_parquet(paths: Sequence[Path]) -> str:
    listed = ", ".join(literal(str(p)) for p in paths)
    return f"read_parquet([{listed}], hive_partitioning = false, union_by_name = true)"


def _verify(con, plan_: Plan) -> None:
    counts = _counts(con)
    wrong = {name: (counts[name], want) for name, want in plan_.expected.items() if counts[name] != want}
    if wrong:
        shown = ", ".join(f"{name} holds {got} rows, the old files {want}" for name, (got, want) in wrong.items())
        raise MigrationError(f"row counts differ after loading ({shown}); nothing was moved aside")


def _move_aside(plan_: Plan, now: dt.datetime, snapshot: int) -> Path:
    """Move the old directories and files under `migrated-<UTC time>/`, keeping their relative paths."""
    target = plan_.home / f"migrated-{now:%Y%m%dT%H%M%SZ}"
    suffix = 1
    while target.exists():
        target = plan_.home / f"migrated-{now:%Y%m%dT%H%M%SZ}-{suffix}"
        suffix += 1
    for path in plan_.moves:
        if not path.exists():
            continue
        destination = target / path.relative_to(plan_.home)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), str(destination))
    (target / "README.txt").write_text(
        f"Moved aside by `{MIGRATE_COMMAND}` at {now:%Y-%m-%d %H:%M:%S} UTC: the previous release's storage.\n"
        f"Every row of these Parquet files is in the lake (snapshot {snapshot}, author {AUTHOR} in "
        "ducklake_snapshots).\nNothing reads these files any more; delete them when you no longer want them.\n")
    return target


def _current(home: Path) -> tuple[dict[str, int], int | None] | None:
    """The lake's row counts and earlier migration snapshot, read-only; None when no lake exists yet."""
    where = catalog_from_env(home)
    if where.kind == "sqlite" and not Path(where.target).exists():
        return None
    con = where.connect()
    try:
        where.attach(con, read_only=True)
        existing = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = ?",
                                               [ALIAS]).fetchall()}
        if not {*DATASETS} <= existing:
            return None  # a lake whose tables were never created holds nothing
        return _counts(con), _migrated_before(con)
    finally:
        con.close()


def migrate(home: Path, *, dry_run: bool = False, now: dt.datetime | None = None, out=print) -> Path | None:
    """Migrate `home` (see the module's docstring); the directory the old files were moved to, or None when there
    was nothing to migrate (or `dry_run`)."""
    home = Path(home).expanduser().resolve()
    now = now or dt.datetime.now(dt.UTC)
    plan_ = plan(home)
    if not plan_.moves:
        out(f"nothing to migrate: {home} holds none of the previous release's storage (lake/<dataset>/region=*, "
            "warehouse.duckdb, state/pipeline.duckdb)")
        return None
    where = catalog_from_env(home)
    current = _current(home)
    counts, earlier = current if current else ({}, None)
    stored = {name: n for name, n in counts.items() if n}
    resume = False
    if stored:
        if earlier is not None and counts == plan_.expected:
            resume = True  # an earlier run committed and stopped before moving the files aside
        else:
            shown = ", ".join(f"{name} {n}" for name, n in sorted(stored.items()))
            raise MigrationError(f"the lake ({where.describe()}, data at {where.data_path}) already holds rows "
                                 f"({shown}) that are not exactly this home's old files: migrating would mix them. "
                                 "Point TICKLAKE_CATALOG/TICKLAKE_STORAGE_URL at an empty lake, or move the lake "
                                 "aside; nothing was changed")
    for name, files in plan_.by_dataset.items():
        out(f"{name:<28}{len(files):>5} file(s) {plan_.rows(name):>12,} rows")
    out(f"{LAKE_PARTITIONS.name:<28}{len(plan_.files):>5} row(s) rebuilt from the rows (one per old file)")
    out(f"into the lake {where.describe()} (data at {where.data_path}) in one commit"
        + (" (already committed by an earlier run: only verified)" if resume else ""))
    target = f"{home}/migrated-{now:%Y%m%dT%H%M%SZ}/"
    out(f"then moved aside to {target}: " + ", ".join(str(p.relative_to(home)) for p in plan_.moves))
    if dry_run:
        out("dry run: nothing was changed")
        return None
    lake = Lakehouse(where, home / "state", check_old_layout=False)
    try:
        if resume:
            with lake.connection() as con:
                _verify(con, plan_)
            snapshot = lake.snapshot_id()
        else:
            snapshot = _load(lake, plan_, f"migration-{now:%Y%m%dT%H%M%SZ}", now)
        with lake.connection() as con:  # a fresh transaction: what every later reader sees
            _verify(con, plan_)
    finally:
        lake.close()
    moved = _move_aside(plan_, now, snapshot)
    out(f"migrated {len(plan_.files)} file(s), {sum(f.rows for f in plan_.files):,} rows, in lake snapshot "
        f"{snapshot}; the old storage is in {moved}")
    return moved


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=MIGRATE_COMMAND, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=None, help="the home to migrate (default: TICKLAKE_HOME, "
                                                                 "or ./data)")
    parser.add_argument("--dry-run", action="store_true", help="print what would be loaded and moved; change nothing")
    args = parser.parse_args(argv)
    try:
        home = args.home if args.home is not None else settings.home()
        if not Path(home).is_dir():
            raise MigrationError(f"{home} is not a directory (--home, TICKLAKE_HOME)")
        migrate(home, dry_run=args.dry_run)
    except (MigrationError, settings.ConfigError) as exc:
        print(f"{MIGRATE_COMMAND}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
