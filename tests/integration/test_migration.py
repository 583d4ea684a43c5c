"""Migration of a home the previous release built (tests/fixtures/previous_release_home.tar.gz, made by
tests/fixtures/make_previous_release_home.py with that release's code): every row of every table arrives, the as-of
macros answer as they do over the old files, the old storage is moved aside, and a home not yet migrated is refused
with a message naming the command."""

from __future__ import annotations

import datetime as dt
import tarfile
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow.parquet as pq
import pytest

from definitions import build_definitions
from resources.itick import ITickResource
from resources.storage import StorageResource
from ticklake.dictionary import DATASETS, LAKE_PARTITIONS, MACROS
from ticklake.storage import Lakehouse, OldLayoutError, catalog_from_env, connect, open_lakehouse
from ticklake.storage import migrate as migration
from ticklake.storage.ddl import quote
from ticklake.storage.lakehouse import seed_raw_layer

pytestmark = pytest.mark.integration
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "previous_release_home.tar.gz"
COMMAND = "python -m ticklake.storage.migrate"
LAKE_DATASETS = [name for name, d in DATASETS.items() if d.in_lake]


@pytest.fixture
def old_home(tmp_path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    with tarfile.open(FIXTURE) as archive:
        archive.extractall(home, filter="data")
    return home


def _old_files(home: Path, name: str) -> list[str]:
    return sorted(str(p) for p in (home / "lake" / name).rglob("*.parquet"))


def _old_database(home: Path) -> duckdb.DuckDBPyConnection:
    """The old files as tables of a plain DuckDB, with this release's macros over them: the answers to expect."""
    con = duckdb.connect()
    for name, dataset in DATASETS.items():
        files = _old_files(home, name) if dataset.in_lake else []
        columns = ", ".join(f"{quote(f.name)} {f.duckdb_type}" for f in dataset.fields)
        if files:
            listed = ", ".join(f"'{f}'" for f in files)
            present = set().union(*(pq.read_schema(f).names for f in files))
            select = ", ".join(quote(c) if c in present else f"NULL::{dataset.field(c).duckdb_type} AS {quote(c)}"
                               for c in dataset.columns)  # fields added since: null, as the migration loads them
            con.execute(f"CREATE TABLE {quote(name)} AS SELECT {select} "
                        f"FROM read_parquet([{listed}], hive_partitioning = false, union_by_name = true)")
        else:
            con.execute(f"CREATE TABLE {quote(name)} ({columns})")
    seed_raw_layer(con)  # the bars stored become the raw layer of the source that sent them
    for macro in MACROS.values():
        con.execute(macro.create_sql)
    return con


def _table(con, name: str) -> list[tuple]:
    columns = ", ".join(quote(c) for c in DATASETS[name].columns)
    return con.execute(f"SELECT {columns} FROM {quote(name)} ORDER BY ALL").fetchall()


def _instants(old) -> list[dt.datetime]:
    """Every instant a version started or stopped being the known one, and a millisecond either side."""
    stamps = set()
    for name, dataset in DATASETS.items():
        for column in ("ingested_at", "superseded_at"):
            if column in dataset.columns:
                stamps |= {r[0] for r in old.execute(f"SELECT DISTINCT {column} FROM {quote(name)}").fetchall()}
    ms = dt.timedelta(milliseconds=1)
    return sorted({t + d for t in stamps for d in (-ms, dt.timedelta(0), ms)})


def _as_of_answers(con, instants: list[dt.datetime], region: str = "US") -> dict:
    answers = {}
    for ts in instants:
        for macro in ("klines_daily_as_of", "security_master_as_of", "fundamentals_daily_as_of"):
            answers[macro, ts] = con.execute(f"SELECT * FROM {macro}(?) ORDER BY ALL", [ts]).fetchall()
        day = ts.date()
        answers["universe_as_of", ts] = con.execute("SELECT * FROM universe_as_of(?, ?, ?) ORDER BY ALL",
                                                    [region, day, ts]).fetchall()
    return answers


@pytest.mark.slow
def test_every_row_and_every_as_of_answer_survives_the_migration(old_home):
    old = _old_database(old_home)
    expected = {name: _table(old, name) for name in LAKE_DATASETS}
    files = {name: _old_files(old_home, name) for name in LAKE_DATASETS}
    instants = _instants(old)
    before = _as_of_answers(old, instants)
    assert expected["klines_daily_history"], "the fixture holds a restatement"
    assert expected["reconciliation_log"]
    assert expected["quarantine"]
    assert any(before[k] != before[next(iter(before))] for k in before)  # the instants tell versions apart

    moved = migration.migrate(old_home, out=lambda *_: None)

    assert moved is not None
    assert moved.name.startswith("migrated-")
    with connect(old_home) as con:
        for name in LAKE_DATASETS:
            assert _table(con, name) == expected[name], name
        assert _as_of_answers(con, instants) == before
        status = con.execute("SELECT dataset, path, rows FROM lake_partitions ORDER BY ALL").fetchall()
        [(author, info)] = con.execute("SELECT author, commit_extra_info FROM ducklake_snapshots('lake') "
                                       "WHERE author IS NOT NULL").fetchall()
    assert author == migration.AUTHOR
    assert '"klines_daily_history": 1' in info
    # lake_partitions rebuilt: one row per old file, with its row count
    assert len(status) == sum(len(f) for f in files.values())
    assert {(d, r) for d, _, r in status} >= {("klines_daily_history", 1), ("reconciliation_log", 3)}
    # the old storage moved aside whole, nothing deleted
    assert [p.name for p in (old_home / "lake").iterdir()] == ["main"]
    assert not (old_home / "warehouse.duckdb").exists()
    assert not (old_home / "state" / "pipeline.duckdb").exists()
    assert (moved / "warehouse.duckdb").stat().st_size > 0
    assert (moved / "state" / "pipeline.duckdb").stat().st_size > 0
    for name, paths in files.items():
        assert _old_files(moved, name) == [p.replace(str(old_home), str(moved)) for p in paths]
    # the pipeline now opens the home
    lake = open_lakehouse(old_home)
    try:
        snapshot = lake.snapshot_id()
    finally:
        lake.close()

    assert migration.migrate(old_home, out=lambda *_: None) is None  # a second run: nothing to migrate
    lake = open_lakehouse(old_home)
    try:
        assert lake.snapshot_id() == snapshot
    finally:
        lake.close()
    assert len(list(old_home.glob("migrated-*"))) == 1


def test_opening_a_home_not_yet_migrated_is_refused_with_the_command(old_home):
    lake = open_lakehouse(old_home)
    with pytest.raises(OldLayoutError, match=COMMAND) as refused, lake.connection():
        pass
    assert "lake/klines_daily/" in str(refused.value)
    assert "warehouse.duckdb" in str(refused.value)
    with pytest.raises(OldLayoutError, match=COMMAND):
        connect(old_home)
    # a Dagster run fails at resource initialisation, before any step
    defs = build_definitions(itick=ITickResource(base_url="http://127.0.0.1:9", token="unused", home=str(old_home)),
                             storage=StorageResource(home=str(old_home)))
    result = defs.resolve_job_def("lake_maintenance").execute_in_process(instance=dg.DagsterInstance.ephemeral(),
                                                                         raise_on_error=False)
    assert not result.success
    failures = [e for e in result.all_events if e.is_failure]
    assert any(COMMAND in str(e.event_specific_data.error.cause or e.event_specific_data.error) for e in failures
               if e.event_specific_data is not None and getattr(e.event_specific_data, "error", None))
    assert not (old_home / "catalog.sqlite").exists()  # nothing was created beside the old rows


def test_only_the_warehouse_file_left_is_refused_too(tmp_path):
    home = tmp_path / "home"
    (home / "lake" / "main").mkdir(parents=True)  # DuckLake's own data directory is not the old layout
    lake = open_lakehouse(home)
    try:
        lake.snapshot_id()
    finally:
        lake.close()
    (home / "warehouse.duckdb").write_bytes(b"")
    with pytest.raises(OldLayoutError, match=COMMAND):
        open_lakehouse(home).snapshot_id()


def test_a_dry_run_changes_nothing(old_home, capsys):
    before = sorted(p.relative_to(old_home) for p in old_home.rglob("*"))
    assert migration.main(["--home", str(old_home), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "klines_daily_history" in out
    assert "dry run: nothing was changed" in out
    assert sorted(p.relative_to(old_home) for p in old_home.rglob("*")) == before


def test_a_run_stopped_before_moving_the_files_aside_completes_without_duplicating(old_home, monkeypatch):
    def crash(*_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(migration, "_move_aside", crash)
    with pytest.raises(KeyboardInterrupt):
        migration.migrate(old_home, out=lambda *_: None)
    monkeypatch.undo()
    assert (old_home / "lake" / "klines_daily").exists()
    assert migration.migrate(old_home, out=lambda *_: None) is not None
    with connect(old_home) as con:
        [(rows,)] = con.execute("SELECT count(*) FROM klines_daily").fetchall()
        [(commits,)] = con.execute("SELECT count(*) FROM ducklake_snapshots('lake') WHERE author = ?",
                                   [migration.AUTHOR]).fetchall()
        [(status,)] = con.execute(f"SELECT count(*) FROM {LAKE_PARTITIONS.name}").fetchall()
    assert rows == 225
    assert commits == 1
    assert status == 13


def test_unrecognised_files_or_a_lake_holding_other_rows_are_refused_unchanged(old_home, capsys):
    stray = old_home / "lake" / "klines_daily" / "region=US" / "month=2024-06" / "itick.parquet.tmp"
    stray.write_bytes(b"half a file")
    assert migration.main(["--home", str(old_home)]) == 2
    assert "itick.parquet.tmp" in capsys.readouterr().err
    assert not (old_home / "catalog.sqlite").exists()
    stray.unlink()

    # a lake that already holds rows of its own (here: one table's): mixing the old files into it is refused
    lake = Lakehouse(catalog_from_env(old_home), old_home / "state", check_old_layout=False)
    try:
        with lake.connection() as con:
            con.execute(f"INSERT INTO quarantine SELECT * FROM read_parquet('{_old_files(old_home, 'quarantine')[0]}')")
    finally:
        lake.close()
    assert migration.main(["--home", str(old_home)]) == 2
    assert "already holds rows (quarantine 1)" in capsys.readouterr().err
    assert (old_home / "lake" / "klines_daily" / "region=US").exists()
    assert (old_home / "warehouse.duckdb").exists()
