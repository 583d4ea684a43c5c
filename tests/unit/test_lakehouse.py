"""The lake's write contract: a commit replaces exactly its partitions, atomically, and writers on several
processes lose no update; nothing is downloaded; the catalog's settings are checked and its password never shown."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import threading

import duckdb
import pandas as pd
import pyarrow as pa
import pytest

from tests.unit.test_schemas import _bars
from ticklake.dictionary.market_data import KLINES_DAILY_BY_SOURCE as KLINES_DAILY  # per-source partitions
from ticklake.storage import Catalog, CatalogError, Lakehouse, connect, extensions
from ticklake.storage.frames import to_arrow

MONTH = "2024-01"
US_JAN = [{"region": "US", "month": MONTH, "source": "itick"}]


def _lake(home, **kwargs) -> Lakehouse:
    return Lakehouse(Catalog.from_settings(home), home / "state", **kwargs)


def _table(n: int = 3, close: float = 10.5, source: str = "itick", region: str = "US") -> pa.Table:
    raw = _bars(n).drop(columns=["rule", "sources", "max_rel_diff"]).assign(
        split_ratio=float("nan"), dividend=float("nan"), file=pd.array([None] * n, dtype="string"),
        received_at=pd.Series([pd.Timestamp("2024-01-03", tz="UTC")] * n).astype("datetime64[ms, UTC]"))
    return to_arrow(KLINES_DAILY, raw.assign(close=close, source=source, region=region))


def _rows(lake: Lakehouse, region: str | None = None) -> list[tuple]:
    where = f"WHERE region = '{region}'" if region else ""
    with lake.connection() as con:
        return con.execute(f"SELECT symbol, close FROM klines_daily_by_source {where} ORDER BY ALL").fetchall()


def test_replace_is_delete_then_insert_of_exactly_those_partitions(tmp_path):
    lake = _lake(tmp_path)
    lake.replace_partitions(KLINES_DAILY, _table(3, 1.0), US_JAN)
    lake.replace_partitions(KLINES_DAILY, _table(2, 2.0), US_JAN)
    assert _rows(lake) == [("S0", 2.0), ("S1", 2.0)]
    empty = KLINES_DAILY.arrow_schema.empty_table()
    lake.replace_partitions(KLINES_DAILY, empty, [{"region": "HK", "month": MONTH, "source": "itick"}])
    lake.replace_partitions(KLINES_DAILY, empty, [{"region": "US", "month": "2024-02", "source": "itick"}])
    assert len(_rows(lake)) == 2  # another region's or month's replace leaves US January alone


def test_one_source_never_replaces_another_sources_rows(tmp_path):
    lake = _lake(tmp_path)
    lake.replace_partitions(KLINES_DAILY, _table(2, 3.0, source="vendor"),
                            [{"region": "US", "month": MONTH, "source": "vendor"}])
    lake.replace_partitions(KLINES_DAILY, _table(3, 1.0), US_JAN)
    lake.replace_partitions(KLINES_DAILY, _table(1, 2.0), US_JAN)  # itick re-run: only its own rows change
    assert _rows(lake) == [("S0", 2.0), ("S0", 3.0), ("S1", 3.0)]


def test_a_failing_commit_rolls_back_and_the_last_snapshot_stays(tmp_path):
    lake = _lake(tmp_path)
    lake.replace_partitions(KLINES_DAILY, _table(3, 1.0), US_JAN)
    before = lake.snapshot_id()
    good = _table(3, 5.0)  # a null where the dictionary says NOT NULL: the lake refuses it inside the transaction
    broken = pa.Table.from_arrays([pa.nulls(3, pa.string()), *good.columns[1:]], schema=good.schema)
    with pytest.raises(duckdb.ConstraintException):
        lake.replace_partitions(KLINES_DAILY, broken, US_JAN)
    assert _rows(lake) == [("S0", 1.0), ("S1", 1.0), ("S2", 1.0)]
    assert lake.snapshot_id() == before  # nothing of the failed commit became a snapshot



def test_only_a_commit_after_a_killed_one_looks_for_its_leftover_files(tmp_path):
    """A commit leaves a marker per table while it runs; a marker the next commit finds means its writer died
    mid-commit, and only then are that table's unreferenced files deleted (listing them costs what the lake
    holds). A commit that ends, committed or failed, leaves no marker."""
    lake = _lake(tmp_path)
    lake.replace_partitions(KLINES_DAILY, _table(3, 1.0), US_JAN)
    folder = tmp_path / "lake" / "main" / KLINES_DAILY.name / "region=US"
    folder.mkdir(parents=True, exist_ok=True)
    leftover = folder / "ducklake-killed-commit.parquet"
    leftover.write_bytes(b"PAR1")
    markers = tmp_path / "state" / "commits"
    assert not list(markers.glob("*.pending"))
    lake.replace_partitions(KLINES_DAILY, _table(3, 2.0), US_JAN)
    assert leftover.exists()  # no writer died: nothing is looked for
    (markers / f"{KLINES_DAILY.name}.pending").touch()  # what a writer killed mid-commit leaves
    lake.replace_partitions(KLINES_DAILY, _table(3, 3.0), US_JAN)
    assert not leftover.exists()
    assert not list(markers.glob("*.pending"))
    assert _rows(lake) == [("S0", 3.0), ("S1", 3.0), ("S2", 3.0)]

def test_a_table_that_does_not_match_the_dictionary_is_refused(tmp_path):
    with pytest.raises(TypeError, match="does not match the data dictionary"):
        _lake(tmp_path).replace_partitions(KLINES_DAILY, _table().drop_columns(["close"]), US_JAN)


def _writer(home, region: str, n: int) -> None:
    lake = _lake(home)
    for i in range(n):
        lake.replace_partitions(KLINES_DAILY, _table(3, float(i), region=region),
                                [{"region": region, "month": MONTH, "source": "itick"}])


@pytest.mark.slow
def test_writer_processes_of_different_regions_on_one_table_lose_no_update(tmp_path):
    """Two DELETE+INSERT transactions on one table conflict in DuckLake even on different partitions, and it does
    not retry that: the per-table commit lock serialises the commits (only them)."""
    _lake(tmp_path).snapshot_id()  # the schema exists before the writers race
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(tmp_path, region, 12)) for region in ("US", "HK", "SH", "JP")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=180)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    with _lake(tmp_path).connection() as con:
        assert con.execute("SELECT region, count(*), max(close) FROM klines_daily_by_source GROUP BY 1 ORDER BY 1"
                           ).fetchall() \
            == [("HK", 3, 11.0), ("JP", 3, 11.0), ("SH", 3, 11.0), ("US", 3, 11.0)]


def test_threads_of_one_process_commit_safely(tmp_path):
    lake, errors = _lake(tmp_path), []

    def work(region):
        try:
            for i in range(5):
                lake.replace_partitions(KLINES_DAILY, _table(2, float(i), region=region),
                                        [{"region": region, "month": MONTH, "source": "itick"}])
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(r,)) for r in ("US", "HK", "SH")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(_rows(lake)) == 6


def test_a_commit_waits_for_the_tables_lock_and_gives_up_clearly(tmp_path):
    lake = _lake(tmp_path, lock_timeout_s=0.3)
    lake.snapshot_id()
    other = _lake(tmp_path, lock_timeout_s=0.3)
    held = threading.Event()
    release = threading.Event()

    def hold():
        with other.locks.hold(["klines_daily_by_source"]):
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(10)
    try:
        with pytest.raises(TimeoutError, match="commit lock of klines_daily_by_source"):
            lake.replace_partitions(KLINES_DAILY, _table(), US_JAN)
    finally:
        release.set()
        holder.join()
    lake.replace_partitions(KLINES_DAILY, _table(), US_JAN)  # free again: it commits
    assert len(_rows(lake)) == 3


def test_extensions_come_from_the_installed_wheels_and_nothing_is_downloaded(tmp_path):
    lake = _lake(tmp_path)
    with lake.connection() as con:
        settings = dict(con.execute("SELECT name, value FROM duckdb_settings() WHERE name IN "
                                    "('autoinstall_known_extensions', 'autoload_known_extensions')").fetchall())
        loaded = dict(con.execute("SELECT extension_name, install_mode FROM duckdb_extensions() WHERE loaded")
                      .fetchall())
    assert settings == {"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"}
    assert {"ducklake", "sqlite_scanner"} <= set(loaded)


def _tampered(tmp_path, name: str = "httpfs"):
    """A copy of an extension's wheel file with one byte changed: its signature no longer matches."""
    data = bytearray(extensions.extension_file(name).read_bytes())
    data[len(data) // 2] ^= 0xFF
    path = tmp_path / f"{name}.duckdb_extension"
    path.write_bytes(bytes(data))
    return path


def test_the_wheels_files_load_unchecked_and_nothing_unsigned_loads_afterwards(tmp_path):
    """The wheels' own files are loaded without DuckDB's per-LOAD signature check (ticklake.storage.extensions
    says why); the connection handed out then refuses any unsigned extension, and cannot be switched back."""
    _lake(tmp_path).replace_partitions(KLINES_DAILY, _table(2, 1.0), US_JAN)
    tampered = _tampered(tmp_path)
    with connect(tmp_path) as con:
        assert con.execute("SELECT current_setting('allow_unsigned_extensions')").fetchone()[0] is False
        with pytest.raises(duckdb.Error, match="signature"):
            con.execute(f"LOAD '{tampered}'")
        with pytest.raises(duckdb.Error, match="while database is running"):
            con.execute("SET allow_unsigned_extensions = true")
        with pytest.raises(duckdb.Error, match="signature"):
            con.cursor().execute(f"LOAD '{tampered}'")
        loaded = {r[0] for r in con.execute("SELECT extension_name FROM duckdb_extensions() WHERE loaded").fetchall()}
    assert {"ducklake", "sqlite_scanner"} <= loaded


def test_only_the_installed_wheels_files_skip_the_signature_check(tmp_path, monkeypatch):
    """A file that is not the one the wheel's RECORD lists (another path, another size) gets DuckDB's check."""
    tampered = _tampered(tmp_path)
    real = extensions.extension_file
    monkeypatch.setattr(extensions, "extension_file", lambda name: tampered if name == "httpfs" else real(name))
    extensions.wheel_file.cache_clear()
    try:
        assert extensions.wheel_file("httpfs") is None
        assert extensions.wheel_file("ducklake") == real("ducklake")
        with pytest.raises(duckdb.Error, match="signature"):
            extensions.connect(preload=["ducklake", "httpfs"])
    finally:
        extensions.wheel_file.cache_clear()


def test_an_analyst_connection_is_read_only_and_has_the_macros(tmp_path):
    lake = _lake(tmp_path)
    lake.replace_partitions(KLINES_DAILY, _table(2, 1.0), US_JAN)
    with connect(tmp_path) as con:
        assert con.execute("SELECT count(*) FROM klines_daily_by_source").fetchone()[0] == 2
        ts = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
        assert con.execute("SELECT count(*) FROM klines_daily_by_source_as_of(?)", [ts]).fetchone()[0] == 2
        with pytest.raises(duckdb.Error, match=r"read-only|read only"):
            con.execute("DELETE FROM klines_daily_by_source")


def test_no_lake_yet_is_a_clear_error_for_analysts(tmp_path):
    with pytest.raises(CatalogError, match=r"no lake at .* yet"):
        connect(tmp_path / "nowhere")


def test_a_catalog_whose_tables_are_not_committed_yet_is_not_an_empty_lake(tmp_path):
    """Between the first run's ATTACH (which creates DuckLake's metadata) and its schema commit, an analyst who
    connects gets an answer that says so, not "Table klines_daily does not exist" on the first query."""
    first_run = extensions.connect()
    Catalog.from_settings(tmp_path, None, None).attach(first_run)
    with pytest.raises(CatalogError, match=r"no tables yet"):
        connect(tmp_path)
    first_run.close()
    _lake(tmp_path).replace_partitions(KLINES_DAILY, _table(2, 1.0), US_JAN)
    with connect(tmp_path) as con:
        assert con.execute("SELECT count(*) FROM klines_daily_by_source").fetchone()[0] == 2


@pytest.mark.parametrize(("value", "kind"), [
    (None, "sqlite"), ("sqlite:/x/c.sqlite", "sqlite"),
    ("postgres:host=db dbname=lake user=tl password=s3cr3t", "postgres"),
    ("postgres:postgresql://tl:s3cr3t@db/lake", "postgres"),
])
def test_catalog_settings_and_the_password_is_never_shown(tmp_path, value, kind):
    catalog = Catalog.from_settings(tmp_path, value, None)
    assert catalog.kind == kind
    assert "s3cr3t" not in catalog.describe()
    assert "s3cr3t" not in catalog.scrub(f"could not connect with {value}")
    assert catalog.data_path == f"{tmp_path / 'lake'}/"
    assert Catalog.from_settings(tmp_path, value, "s3://bucket/pre").data_path == "s3://bucket/pre/lake/"


@pytest.mark.parametrize("value", ["duckdb:/x/c.duckdb", "/x/c.ducklake", "mysql:host=x", "postgres:"])
def test_an_unsupported_catalog_is_refused_by_name(tmp_path, value):
    with pytest.raises(CatalogError, match="TICKLAKE_CATALOG"):
        Catalog.from_settings(tmp_path, value, None)


def test_an_unreachable_postgres_catalog_is_named_without_its_password(tmp_path):
    catalog = Catalog.from_settings(tmp_path, "postgres:host=127.0.0.1 port=1 dbname=x user=u password=hunter22 "
                                              "connect_timeout=2", None)
    with pytest.raises(CatalogError) as failure:
        Lakehouse(catalog, tmp_path / "state").snapshot_id()
    assert "TICKLAKE_CATALOG=postgres:" in str(failure.value)
    assert "hunter22" not in str(failure.value)


def _files(lake: Lakehouse) -> list[tuple]:
    with lake.connection() as con:
        return con.execute("SELECT data_file, delete_file FROM ducklake_list_files('lake', 'klines_daily_by_source')"
                           ).fetchall()


def test_a_replace_touches_only_the_rows_that_differ(tmp_path):
    """A night that adds a session to a month appends it (no delete file on the compacted file that holds the
    month's stored rows), and the month's own files (the previous nights') are rewritten with it into one: a month
    holds its compacted rows plus one file, whatever the night. A restated bar deletes that bar only. The rows are
    what a delete-then-insert of the whole partition gives."""
    lake = _lake(tmp_path)
    two = _table(2, 1.0)
    lake.replace_partitions(KLINES_DAILY, _table(1, 3.0, source="vendor"),
                            [{"region": "US", "month": MONTH, "source": "vendor"}])
    lake.replace_partitions(KLINES_DAILY, two, US_JAN)
    with lake.connection() as con:  # what the weekly maintenance does: one file of both sources' rows
        con.execute("CALL ducklake_merge_adjacent_files('lake', 'klines_daily_by_source')").fetchall()
    [(compacted, delete)] = _files(lake)
    assert delete is None
    three = pa.concat_tables([two, _table(3, 1.0).slice(2)])  # S2 is new; S0 and S1 unchanged
    lake.replace_partitions(KLINES_DAILY, three, US_JAN)
    files = _files(lake)
    assert len(files) == 2
    assert (compacted, None) in files  # the stored rows' file untouched, no delete file
    [night] = [f for f, _ in files if f != compacted]
    four = pa.concat_tables([three, _table(4, 1.0).slice(3)])  # the next night: S3
    lake.replace_partitions(KLINES_DAILY, four, US_JAN)
    files = _files(lake)
    assert len(files) == 2  # the previous night's file went whole, its rows are in the new one
    assert (compacted, None) in files
    assert night not in {f for f, _ in files}
    at = four.schema.get_field_index("close")
    restated = four.set_column(at, four.schema.field(at), pa.array([1.0, 9.0, 1.0, 1.0]))
    lake.replace_partitions(KLINES_DAILY, restated, US_JAN)
    assert _rows(lake) == [("S0", 1.0), ("S0", 3.0), ("S1", 9.0), ("S2", 1.0), ("S3", 1.0)]
    assert [delete is not None for f, delete in _files(lake) if f == compacted] == [True]  # it lost one row
    unchanged = _files(lake)
    lake.replace_partitions(KLINES_DAILY, restated, US_JAN)  # a re-run with the same rows rewrites nothing
    assert _files(lake) == unchanged


def test_append_adds_rows_in_one_commit_and_replaces_nothing(tmp_path):
    from ticklake.dictionary.operations import API_AUDIT

    lake = _lake(tmp_path)
    row = {"requested_at": pd.Timestamp("2024-06-28 12:00", tz="UTC"), "trace_id": "t1", "method": "GET",
           "path": "/v1/x",
           "status": 200, "latency_ms": 1.5, "source": "api"}
    before = lake.snapshot_id()
    assert lake.append(API_AUDIT, pa.Table.from_pylist([row, {**row, "trace_id": "t2"}],
                                                       schema=API_AUDIT.arrow_schema)) == 2
    assert lake.append(API_AUDIT, pa.Table.from_pylist([{**row, "trace_id": "t1"}],
                                                       schema=API_AUDIT.arrow_schema)) == 1
    assert lake.snapshot_id() == before + 2  # a commit per append
    with lake.connection() as con:
        assert con.execute("SELECT trace_id, tenant FROM api_audit ORDER BY ALL").fetchall() == [
            ("t1", None), ("t1", None), ("t2", None)]
    with pytest.raises(TypeError, match="does not match the data dictionary"):
        lake.append(API_AUDIT, _table())
