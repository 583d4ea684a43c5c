"""Lake writes are atomic and deterministic; pipeline database writes are transactional and never fail on the lock.

(What analysts see, the published snapshot, is tested in tests/integration/test_analyst_read_path.py.)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import multiprocessing
import threading
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.unit.test_schemas import _bars
from ticklake.dictionary import KLINES_DAILY
from ticklake.lake import Lake
from ticklake.warehouse import Warehouse, WarehouseBusyError

DAY = dt.date(2024, 1, 2)
MONTH = "2024-01"


def _table(n: int = 3, close: float = 10.5) -> pa.Table:
    return Lake.to_arrow(KLINES_DAILY, _bars(n).assign(close=close))


def test_partitions_use_hive_layout_and_round_trip(tmp_path):
    lake = Lake(tmp_path)
    path = lake.write(KLINES_DAILY, _table(), region="US", month=MONTH, source="itick")
    assert path == tmp_path / "klines_daily" / "region=US" / "month=2024-01" / "itick.parquet"
    assert lake.partition_path(KLINES_DAILY, region="US", month=DAY, source="itick") == path  # a date names its month
    back = lake.read(KLINES_DAILY, region="US", month=MONTH, source="itick")
    assert back["symbol"].tolist() == ["S0", "S1", "S2"]
    assert back["trade_date"].iloc[0].date() == DAY


def test_same_data_gives_the_same_bytes(tmp_path):
    a, b = Lake(tmp_path / "a"), Lake(tmp_path / "b")
    pa_, pb = (lake.write(KLINES_DAILY, _table(), region="US", month=MONTH, source="itick") for lake in (a, b))
    assert pa_.read_bytes() == pb.read_bytes()


def test_a_failed_write_leaves_the_previous_partition_intact(tmp_path, monkeypatch):
    lake = Lake(tmp_path)
    path = lake.write(KLINES_DAILY, _table(close=10.5), region="US", month=MONTH, source="itick")
    before = path.read_bytes()

    def explode(table, where, **kwargs):
        Path(where).write_bytes(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", explode)
    with pytest.raises(OSError, match="disk full"):
        lake.write(KLINES_DAILY, _table(close=99.0), region="US", month=MONTH, source="itick")
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["itick.parquet"]  # no temp file left behind


def test_a_failure_while_staging_many_partitions_replaces_none_of_them(tmp_path, monkeypatch):
    lake = Lake(tmp_path)
    months = ["2024-01", "2024-02", "2024-03"]
    paths = [lake.write(KLINES_DAILY, _table(close=1.0), region="US", month=m, source="itick") for m in months]
    before = [p.read_bytes() for p in paths]
    real = pq.write_table
    calls = []

    def third_fails(table, where, **kwargs):
        calls.append(where)
        if len(calls) == 3:
            raise OSError("disk full")
        real(table, where, **kwargs)

    monkeypatch.setattr(pq, "write_table", third_fails)
    with pytest.raises(OSError, match="disk full"):
        lake.write_many(KLINES_DAILY, [({"region": "US", "month": m, "source": "itick"}, _table(close=2.0))
                                       for m in months])
    assert [p.read_bytes() for p in paths] == before
    assert sorted(p.name for p in (tmp_path / "klines_daily").rglob("*")) == sorted(
        ["region=US", *[f"month={m}" for m in months], *["itick.parquet"] * 3])


def test_partition_values_cannot_escape_the_lake(tmp_path):
    with pytest.raises(ValueError, match="invalid partition value"):
        Lake(tmp_path).partition_path(KLINES_DAILY, region="../etc", month=MONTH, source="itick")
    with pytest.raises(ValueError, match="not a month"):
        Lake(tmp_path).partition_path(KLINES_DAILY, region="US", month="../2024", source="itick")
    with pytest.raises(ValueError, match="partitions the lake by"):
        Lake(tmp_path).partition_path(KLINES_DAILY, region="US", trade_date=DAY)
    with pytest.raises(ValueError, match="invalid source name"):
        Lake(tmp_path).partition_path(KLINES_DAILY, region="US", month=MONTH, source="../x")
    with pytest.raises(ValueError, match="invalid source name"):
        Lake(tmp_path).partition_path(KLINES_DAILY, region="US", month=MONTH, source="data")
    with pytest.raises(TypeError, match="schema"):
        Lake(tmp_path).write(KLINES_DAILY, pa.table({"x": [1]}), region="US", month=MONTH, source="itick")


def _warehouse(home: Path, **kwargs) -> Warehouse:
    return Warehouse(home / "state" / "pipeline.duckdb", home / "warehouse.duckdb", **kwargs)


def _rows(path) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute("SELECT symbol, close FROM klines_daily ORDER BY symbol").fetchall()


US_JAN = [{"region": "US", "month": MONTH, "source": "itick"}]


def test_replace_is_delete_then_insert_of_exactly_those_partitions(tmp_path):
    wh = _warehouse(tmp_path)
    wh.replace_partitions(KLINES_DAILY, _table(3, 1.0), US_JAN)
    wh.replace_partitions(KLINES_DAILY, _table(2, 2.0), US_JAN)
    assert _rows(wh.pipeline_path) == [("S0", 2.0), ("S1", 2.0)]
    empty = KLINES_DAILY.arrow_schema.empty_table()
    wh.replace_partitions(KLINES_DAILY, empty, [{"region": "HK", "month": MONTH, "source": "itick"}])
    wh.replace_partitions(KLINES_DAILY, empty, [{"region": "US", "month": "2024-02", "source": "itick"}])
    assert len(_rows(wh.pipeline_path)) == 2  # another region's or month's replace leaves US January alone


def test_one_source_never_replaces_another_sources_rows(tmp_path):
    """A second source of the same market has its own lake file and its own warehouse rows in each partition."""
    lake, wh = Lake(tmp_path / "lake"), _warehouse(tmp_path)
    other = Lake.to_arrow(KLINES_DAILY, _bars(2).assign(close=3.0, source="vendor"))
    mine_path = lake.write(KLINES_DAILY, _table(3, 1.0), region="US", month=MONTH, source="itick")
    other_path = lake.write(KLINES_DAILY, other, region="US", month=MONTH, source="vendor")
    wh.replace_partitions(KLINES_DAILY, other, [{"region": "US", "month": MONTH, "source": "vendor"}])
    wh.replace_partitions(KLINES_DAILY, _table(3, 1.0), US_JAN)
    wh.replace_partitions(KLINES_DAILY, _table(1, 2.0), US_JAN)  # itick re-run: only its own rows change
    assert sorted(_rows(wh.pipeline_path)) == [("S0", 2.0), ("S0", 3.0), ("S1", 3.0)]
    assert mine_path != other_path
    assert other_path.exists()
    with pytest.raises(ValueError, match="cannot be written to the file of source 'itick'"):
        lake.write(KLINES_DAILY, other, region="US", month=MONTH, source="itick")


def test_a_failing_load_rolls_back(tmp_path):
    wh = _warehouse(tmp_path)
    wh.replace_partitions(KLINES_DAILY, _table(3, 1.0), US_JAN)
    broken = _table(3, 5.0).set_column(0, "region", pa.array([None, None, None], pa.string()))
    with pytest.raises(duckdb.ConstraintException):
        wh.replace_partitions(KLINES_DAILY, broken, US_JAN)
    assert _rows(wh.pipeline_path) == [("S0", 1.0), ("S1", 1.0), ("S2", 1.0)]


def _writer(home, region, n):
    wh = _warehouse(home)
    for i in range(n):
        table = _table(3, float(i)).set_column(0, "region", pa.array([region] * 3, pa.string()))
        wh.replace_partitions(KLINES_DAILY, table, [{"region": region, "month": MONTH, "source": "itick"}])


def test_parallel_writer_processes_queue_instead_of_failing(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(tmp_path, region, 15)) for region in ("US", "HK", "SH", "JP")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    with duckdb.connect(str(_warehouse(tmp_path).pipeline_path), read_only=True) as con:
        assert con.execute("SELECT region, count(*), max(close) FROM klines_daily GROUP BY 1 ORDER BY 1").fetchall() \
            == [("HK", 3, 14.0), ("JP", 3, 14.0), ("SH", 3, 14.0), ("US", 3, 14.0)]


def _hold_read_write_lock(path, seconds, ready):
    con = duckdb.connect(str(path))
    ready.set()
    time.sleep(seconds)
    con.close()


@contextlib.contextmanager
def _foreign_lock(home: Path, seconds: float):
    """Another process holding DuckDB's read-write lock on the pipeline's own file (someone who opened the wrong
    file: analysts open the snapshot, which never blocks the writer)."""
    path = _warehouse(home).pipeline_path
    _warehouse(home).replace_partitions(KLINES_DAILY, _table(), US_JAN)
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    holder = ctx.Process(target=_hold_read_write_lock, args=(path, seconds, ready))
    holder.start()
    assert ready.wait(30)
    try:
        yield holder
    finally:
        holder.kill()
        holder.join(30)


def test_writer_waits_for_a_foreign_lock_holder_then_succeeds(tmp_path):
    with _foreign_lock(tmp_path, 1.5):
        started = time.monotonic()
        _warehouse(tmp_path).replace_partitions(KLINES_DAILY, _table(2), US_JAN)
        assert time.monotonic() - started >= 0.5  # it really waited for the other process
    assert len(_rows(_warehouse(tmp_path).pipeline_path)) == 2


def test_writer_gives_up_with_a_clear_error_when_the_lock_never_frees(tmp_path):
    with _foreign_lock(tmp_path, 5), pytest.raises(WarehouseBusyError, match="Only ticklake opens it"):
        _warehouse(tmp_path, lock_timeout_s=0.5).replace_partitions(KLINES_DAILY, _table(), US_JAN)
    assert len(_rows(_warehouse(tmp_path).pipeline_path)) == 3  # the refused write changed nothing


def test_threads_in_one_process_share_the_writer_safely(tmp_path):
    errors = []

    def work(region):
        try:
            _writer(tmp_path, region, 5)
        except BaseException as exc:  # pragma: no cover - asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(r,)) for r in ("US", "HK")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
