"""Analysts read a published snapshot that the writer never locks: real DuckDB files, analysts in other processes.

Each "run" here writes two regions (two write steps) and then publishes, like a Dagster step. A run's rows all
carry the same `close` (its generation), so a snapshot that mixed two runs would show two values.
"""

from __future__ import annotations

import datetime as dt
import errno
import multiprocessing
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

import ticklake.warehouse as warehouse_module
from ticklake.dictionary import KLINES_DAILY
from ticklake.settings import Paths
from ticklake.warehouse import SNAPSHOT_TABLE, Warehouse, WarehouseLayoutError, WarehousePublishError

DAY = dt.date(2024, 1, 2)
ROWS_PER_REGION = 40
REGIONS = ("US", "HK")
LOCK_TIMEOUT_S = 5.0  # a writer that waited for an analyst (who holds on until told) would fail after this long
QUICK_S = 2.5  # a write + publish cycle takes ~0.5 s here alone; the margin is for a loaded 2-core machine
SPAWN = multiprocessing.get_context("spawn")


def _bars(region: str, generation: float, n: int = ROWS_PER_REGION) -> pa.Table:
    """`n` bars of one region on DAY, every price equal to `generation`, in the dictionary's Arrow schema."""
    ts = dt.datetime(2024, 1, 2, 21, tzinfo=dt.UTC)
    columns = {
        "region": [region] * n, "symbol": [f"S{i:03d}" for i in range(n)], "trade_date": [DAY] * n,
        "open": [generation] * n, "high": [generation] * n, "low": [generation] * n, "close": [generation] * n,
        "volume": [100.0] * n, "turnover": [1000.0] * n, "bar_ts": [ts] * n, "source": ["test"] * n,
        "ingested_at": [ts] * n, "run_id": [f"run-{generation:g}"] * n,
    }
    return pa.table(columns, schema=KLINES_DAILY.arrow_schema)


def _warehouse(home: Path, **kwargs) -> Warehouse:
    paths = Paths(home)
    return Warehouse(paths.pipeline_db, paths.warehouse, **{"lock_timeout_s": LOCK_TIMEOUT_S, **kwargs})


def _run(wh: Warehouse, generation: float) -> float:
    """One run: write every region, then publish. Returns its wall time."""
    started = time.perf_counter()
    for region in REGIONS:
        wh.replace_partitions(KLINES_DAILY, _bars(region, generation), [{"region": region, "month": f"{DAY:%Y-%m}"}])
    wh.publish()
    return time.perf_counter() - started


SUMMARY_SQL = "SELECT count(*), list(DISTINCT close ORDER BY close) FROM klines_daily"


def _summary(con: duckdb.DuckDBPyConnection) -> tuple[int, list[float]]:
    rows, closes = con.execute(SUMMARY_SQL).fetchone()
    return rows, closes


def _whole_run(generation: float) -> tuple[int, list[float]]:
    return ROWS_PER_REGION * len(REGIONS), [generation]


def _analyst(path: str, conn) -> None:
    """Holds one read-only connection and answers commands: read (on the open connection), reconnect, close."""
    con = duckdb.connect(path, read_only=True)
    conn.send(_summary(con))
    while (command := conn.recv()) != "close":
        if command == "reconnect":
            con.close()
            con = duckdb.connect(path, read_only=True)
        conn.send(_summary(con))
    con.close()
    conn.send("closed")


def _start(target, *args) -> tuple[multiprocessing.Process, object]:
    ours, theirs = SPAWN.Pipe()
    process = SPAWN.Process(target=target, args=(*args, theirs), daemon=True)
    process.start()
    return process, ours


def _recv(conn, timeout: float = 60.0):
    assert conn.poll(timeout), "the other process did not answer"
    return conn.recv()


def _stop(process: multiprocessing.Process) -> None:
    process.join(30)
    if process.is_alive():  # pragma: no cover - only when the test already failed
        process.kill()
        process.join(30)


def test_an_analyst_holding_the_snapshot_open_never_makes_the_writer_wait(tmp_path):
    wh = _warehouse(tmp_path)
    _run(wh, 1.0)
    analyst, conn = _start(_analyst, str(wh.snapshot_path))
    try:
        assert _recv(conn) == _whole_run(1.0)  # connected and holding DuckDB's lock on the snapshot it opened

        took = _run(wh, 2.0)  # the old design waited LOCK_TIMEOUT_S here, then raised WarehouseBusyError

        assert took < QUICK_S, f"a write + publish cycle took {took:.2f}s while an analyst was connected"
        conn.send("read")
        assert _recv(conn) == _whole_run(1.0)  # the open connection keeps one consistent, older state
        conn.send("reconnect")
        assert _recv(conn) == _whole_run(2.0)  # a reconnect sees the latest run
        conn.send("close")
        assert _recv(conn) == "closed"
    finally:
        _stop(analyst)
    assert analyst.exitcode == 0


def _connect_repeatedly(path: str, times: int, conn) -> None:
    """`times` read-only connects, one query each; reports every summary and every error."""
    summaries, errors = [], []
    for _ in range(times):
        try:
            with duckdb.connect(path, read_only=True) as con:
                summaries.append(_summary(con))
        except duckdb.Error as exc:
            errors.append(str(exc))
    conn.send((summaries, errors))


def test_read_only_connects_during_repeated_publishes_never_fail_and_never_see_half_a_run(tmp_path):
    wh = _warehouse(tmp_path)
    _run(wh, 1.0)
    analyst, conn = _start(_connect_repeatedly, str(wh.snapshot_path), 150)
    generation = 1.0
    try:
        while not conn.poll(0):  # keep publishing for as long as the analyst keeps connecting
            generation += 1
            _run(wh, generation)
        summaries, errors = conn.recv()
    finally:
        _stop(analyst)

    assert errors == []
    assert len(summaries) == 150
    seen = [closes[0] for _, closes in summaries]
    assert all(summary == _whole_run(g) for summary, g in zip(summaries, seen, strict=True))  # never half a run
    assert seen == sorted(seen)  # each connect sees the latest published run, never an older one again
    assert len(set(seen)) >= 3, f"only generations {sorted(set(seen))} seen: the publishes did not overlap"


def _misbehave(path: str, conn) -> None:
    """An analyst who opened the snapshot read-write and changed it, keeping the session open."""
    con = duckdb.connect(path)
    con.execute("CREATE TABLE scratch AS SELECT 42 AS answer")
    con.execute("DELETE FROM klines_daily WHERE region = 'HK'")
    conn.send(os.path.exists(path + ".wal"))
    conn.recv()
    conn.send((_summary(con), con.execute("SELECT answer FROM scratch").fetchall()))
    conn.recv()
    con.close()
    conn.send("closed")


def _tables(path: Path) -> set[str]:
    with duckdb.connect(str(path), read_only=True) as con:
        return {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}


def test_a_read_write_session_on_the_snapshot_blocks_nothing_and_its_changes_are_discarded(tmp_path):
    wh = _warehouse(tmp_path)
    _run(wh, 1.0)
    os.chmod(wh.snapshot_path, 0o644)  # as its owner could (root ignores the 0444 anyway)
    rogue, conn = _start(_misbehave, str(wh.snapshot_path))
    try:
        assert _recv(conn) is True  # their uncheckpointed changes sit in warehouse.duckdb.wal

        took = _run(wh, 2.0)

        assert took < QUICK_S, f"a write + publish cycle took {took:.2f}s while a read-write session was open"
        assert not Path(str(wh.snapshot_path) + ".wal").exists()  # it belonged to the replaced file
        with duckdb.connect(str(wh.snapshot_path), read_only=True) as con:  # other analysts: the new run, clean
            assert _summary(con) == _whole_run(2.0)
        assert "scratch" not in _tables(wh.snapshot_path)
        conn.send("read")
        # the session itself still works on the replaced file and sees its own changes, until it closes
        assert _recv(conn) == ((ROWS_PER_REGION, [1.0]), [(42,)])
        conn.send("close")
        assert _recv(conn) == "closed"
    finally:
        _stop(rogue)
    with duckdb.connect(str(wh.snapshot_path), read_only=True) as con:  # closing it touched nothing published
        assert _summary(con) == _whole_run(2.0)
    assert "scratch" not in _tables(wh.snapshot_path)


def _crash_after_writing(path: str) -> None:
    """A read-write session that commits and dies before DuckDB folds its WAL into the file."""
    code = ("import duckdb, os, sys; con = duckdb.connect(sys.argv[1]); "
            "con.execute('CREATE TABLE scratch AS SELECT 1 AS x'); os._exit(0)")
    subprocess.run([sys.executable, "-c", code, path], check=True, timeout=60)


def test_a_stale_wal_next_to_the_snapshot_is_removed_by_the_next_publish(tmp_path):
    wh = _warehouse(tmp_path)
    _run(wh, 1.0)
    _crash_after_writing(str(wh.snapshot_path))
    wal = Path(str(wh.snapshot_path) + ".wal")
    assert wal.exists()

    _run(wh, 2.0)

    assert not wal.exists()  # left there, DuckDB would replay it onto the new snapshot or refuse to open it
    with duckdb.connect(str(wh.snapshot_path), read_only=True) as con:
        assert _summary(con) == _whole_run(2.0)
    assert "scratch" not in _tables(wh.snapshot_path)


def test_a_snapshot_is_read_only_marked_and_alone_in_its_folder(tmp_path):
    wh = _warehouse(tmp_path)
    (tmp_path / "warehouse.duckdb.publishing-0123abcd").write_bytes(b"left by a publish that was killed")
    _run(wh, 1.0)
    published = wh.publish()

    assert sorted(p.name for p in tmp_path.iterdir()) == ["state", "warehouse.duckdb"]
    assert stat.S_IMODE(wh.snapshot_path.stat().st_mode) == 0o444
    assert published.path == wh.snapshot_path
    assert published.size_bytes == wh.snapshot_path.stat().st_size
    assert published.method in {"reflink", "copy_file_range", "copy"}
    assert published.seconds > 0
    with duckdb.connect(str(wh.snapshot_path), read_only=True) as con:
        (published_at,) = con.execute(f"SELECT published_at FROM {SNAPSHOT_TABLE}").fetchone()
    assert abs(published_at - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)
    assert SNAPSHOT_TABLE not in _tables(wh.pipeline_path)  # the marker tells the two files apart


def test_a_failure_mid_copy_keeps_the_previous_snapshot_and_says_so(tmp_path, monkeypatch):
    wh = _warehouse(tmp_path)
    _run(wh, 1.0)
    before = wh.snapshot_path.read_bytes()

    def disk_full(source: Path, target: Path) -> str:
        target.write_bytes(source.read_bytes()[: len(before) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(warehouse_module, "_copy", disk_full)
    with pytest.raises(WarehousePublishError, match=r"No space left.*previous snapshot is unchanged"):
        _run(wh, 2.0)

    assert wh.snapshot_path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state", "warehouse.duckdb"]  # no half copy left
    with duckdb.connect(str(wh.snapshot_path), read_only=True) as con:
        assert _summary(con) == _whole_run(1.0)
    monkeypatch.undo()
    wh.publish()  # the run's rows were safe in the pipeline's file all along
    with duckdb.connect(str(wh.snapshot_path), read_only=True) as con:
        assert _summary(con) == _whole_run(2.0)


@pytest.mark.parametrize("method", ["copy_file_range", "copy"])
def test_every_copy_fallback_gives_the_same_bytes(tmp_path, monkeypatch, method):
    source = tmp_path / "source"
    source.write_bytes(os.urandom(3 << 20) + b"tail")
    monkeypatch.setattr(warehouse_module, "_reflink", lambda src, dst: None)  # as on ext4
    if method == "copy":
        monkeypatch.delattr(os, "copy_file_range", raising=False)

    assert warehouse_module._copy(source, tmp_path / "target") == method
    assert (tmp_path / "target").read_bytes() == source.read_bytes()


def test_publish_inside_a_writer_block_is_refused(tmp_path):
    wh = _warehouse(tmp_path)
    with wh.writer(), pytest.raises(RuntimeError, match="inside writer"):
        wh.publish()


# --- migration from the layout of older versions, where the pipeline wrote warehouse.duckdb itself ---

def _legacy_home(home: Path, *, uncheckpointed: bool) -> Path:
    """A home as older versions left it: the pipeline's data in warehouse.duckdb (optionally with committed
    rows still in its WAL, as after a crash), nothing under state/."""
    legacy = home / "warehouse.duckdb"
    with duckdb.connect(str(legacy)) as con:
        Warehouse._ensure_schema(con)
        con.register("bars", pa.concat_tables([_bars("US", 1.0), _bars("HK", 1.0)]))
        con.execute("INSERT INTO klines_daily SELECT * FROM bars")
    if uncheckpointed:
        code = ("import duckdb, os, sys; con = duckdb.connect(sys.argv[1]); "
                "con.execute(\"UPDATE klines_daily SET close = 7.0 WHERE symbol = 'S001'\"); os._exit(0)")
        subprocess.run([sys.executable, "-c", code, str(legacy)], check=True, timeout=60)
        assert Path(str(legacy) + ".wal").exists()
    return legacy


def _all_rows(path: Path) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute("SELECT * FROM klines_daily ORDER BY ALL").fetchall()


@pytest.mark.parametrize("uncheckpointed", [False, True], ids=["checkpointed", "rows-in-wal"])
def test_an_old_layout_becomes_pipeline_file_plus_snapshot_without_losing_a_row(tmp_path, uncheckpointed):
    legacy = _legacy_home(tmp_path, uncheckpointed=uncheckpointed)
    expected = _all_rows(legacy)  # read-only: DuckDB replays the WAL in memory, as an analyst would see it
    assert len(expected) == ROWS_PER_REGION * len(REGIONS)
    assert any(row[6] == 7.0 for row in expected) == uncheckpointed
    wh = _warehouse(tmp_path)

    with wh.reader() as con:  # the first use of any kind migrates
        assert con.execute("SELECT * FROM klines_daily ORDER BY ALL").fetchall() == expected

    assert _all_rows(wh.pipeline_path) == expected
    assert _all_rows(wh.snapshot_path) == expected
    assert SNAPSHOT_TABLE in _tables(wh.snapshot_path)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("warehouse.duckdb")) == \
        ["warehouse.duckdb", "warehouse.duckdb.writer.lock"]  # no WAL left behind; the old writers' lock file
    assert not Path(str(wh.pipeline_path) + ".wal").exists()
    _run(wh, 2.0)  # and the pipeline carries on from there
    assert _summary_of(wh.snapshot_path) == _whole_run(2.0)


def _summary_of(path: Path) -> tuple[int, list[float]]:
    with duckdb.connect(str(path), read_only=True) as con:
        return _summary(con)


def test_a_missing_pipeline_file_next_to_a_snapshot_is_an_error_that_changes_nothing(tmp_path):
    wh = _warehouse(tmp_path)
    _run(wh, 1.0)
    wh.pipeline_path.unlink()  # e.g. someone cleared state/
    before = wh.snapshot_path.read_bytes()

    with pytest.raises(WarehouseLayoutError, match=r"pipeline.duckdb is missing.*cp .*warehouse.duckdb"):
        wh.replace_partitions(KLINES_DAILY, _bars("US", 2.0), [{"region": "US", "month": f"{DAY:%Y-%m}"}])

    assert wh.snapshot_path.read_bytes() == before
    assert not wh.pipeline_path.exists()


def test_a_warehouse_file_ticklake_did_not_publish_is_never_overwritten(tmp_path):
    wh = _warehouse(tmp_path)
    _run(wh, 1.0)
    wh.snapshot_path.unlink()
    with duckdb.connect(str(wh.snapshot_path)) as con:  # e.g. an older version wrote here after the migration
        con.execute("CREATE TABLE mine AS SELECT 1 AS x")
    before = wh.snapshot_path.read_bytes()

    with pytest.raises(WarehouseLayoutError, match=r"not a snapshot ticklake published.*Move it aside"):
        wh.publish()

    assert wh.snapshot_path.read_bytes() == before
