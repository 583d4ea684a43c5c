"""Lake writes are atomic and deterministic; pipeline database writes are transactional and never fail on the lock.

(What analysts see, the published snapshot, is tested in tests/integration/test_analyst_read_path.py.)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import multiprocessing
import threading
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from tests.unit.test_schemas import _bars
from ticklake.dictionary import KLINES_DAILY, SECURITIES
from ticklake.lake import Lake, LakePath, ObjectPath
from ticklake.warehouse import Warehouse, WarehouseBusyError

DAY = dt.date(2024, 1, 2)
MONTH = "2024-01"
JAN_KEY = "klines_daily/region=US/month=2024-01/itick.parquet"


def _table(n: int = 3, close: float = 10.5, source: str = "itick") -> pa.Table:
    return Lake.to_arrow(KLINES_DAILY, _bars(n).assign(close=close, source=source))


@pytest.fixture(params=["local", "s3"])
def make_lake(request, tmp_path) -> Callable[[str], Lake]:
    """Lakes on each backend: directories under tmp_path, or prefixes of moto's S3 server (`s3` fixture)."""
    if request.param == "local":
        return lambda name="lake": Lake(tmp_path / name)
    s3 = request.getfixturevalue("s3")
    return lambda name="lake": Lake.at(s3.url(name))


def _bytes(lake: Lake, path: LakePath) -> bytes:
    if isinstance(path, ObjectPath):
        with lake.filesystem.open_input_stream(path.path) as stream:
            return stream.read()
    return path.read_bytes()


def _every_file(lake: Lake) -> list[str]:
    """Every file or object under the lake's root (temporary ones included), relative to it."""
    base = lake.root.path if isinstance(lake.root, ObjectPath) else str(lake.root)
    infos = lake.filesystem.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    return sorted(i.path[len(base) + 1:] for i in infos if i.type == pafs.FileType.File)


def test_partitions_use_hive_layout_and_round_trip(make_lake, tmp_path):
    lake = make_lake()
    path = lake.write(KLINES_DAILY, _table(), region="US", month=MONTH, source="itick")
    if lake.is_remote:
        assert str(path).startswith("s3://ticklake/")
        assert str(path).endswith("/lake/" + JAN_KEY)
    else:
        assert path == tmp_path / "lake" / "klines_daily" / "region=US" / "month=2024-01" / "itick.parquet"
    assert lake.relative(path) == JAN_KEY  # the lake_partitions.path key is the same on both backends
    assert lake.partition_path(KLINES_DAILY, region="US", month=DAY, source="itick") == path  # a date names its month
    back = lake.read(KLINES_DAILY, region="US", month=MONTH, source="itick")
    assert back["symbol"].tolist() == ["S0", "S1", "S2"]
    assert back["trade_date"].iloc[0].date() == DAY
    assert lake.read_table(KLINES_DAILY, region="US", month="2024-02", source="itick") is None
    assert lake.stat(path)[0] == len(_bytes(lake, path))
    assert lake.row_counts([path]) == [3]
    assert lake.read_file(path, columns=["symbol"]).column_names == ["symbol"]


def test_same_data_gives_the_same_bytes(make_lake, tmp_path):
    a, b = make_lake("a"), make_lake("b")
    pa_, pb = (lake.write(KLINES_DAILY, _table(), region="US", month=MONTH, source="itick") for lake in (a, b))
    assert _bytes(a, pa_) == _bytes(b, pb)
    local = Lake(tmp_path / "local")  # and on either backend
    assert _bytes(a, pa_) == local.write(KLINES_DAILY, _table(), region="US", month=MONTH, source="itick").read_bytes()


def test_listing_finds_every_partition_file_and_nothing_else(make_lake):
    lake = make_lake()
    for month in ("2024-01", "2024-02"):
        for source in ("itick", "vendor"):
            lake.write(KLINES_DAILY, _table(2, source=source), region="US", month=month, source=source)
    lake.write(KLINES_DAILY, Lake.to_arrow(KLINES_DAILY, _bars(1).assign(region="HK")), region="HK", month=MONTH,
               source="itick")
    lake.write(SECURITIES, SECURITIES.arrow_schema.empty_table(), region="US", source="itick")  # one lake key
    stray = lake.dataset_dir(KLINES_DAILY) / "region=US" / "month=2024-01" / "notes.txt"  # not a partition file
    with lake.filesystem.open_output_stream(str(stray).removeprefix("s3://")) as out:
        out.write(b"x")

    assert list(lake.partitions(KLINES_DAILY)) == [
        ("HK", "2024-01", "itick"), ("US", "2024-01", "itick"), ("US", "2024-01", "vendor"),
        ("US", "2024-02", "itick"), ("US", "2024-02", "vendor")]
    assert list(lake.partitions(KLINES_DAILY, region="US", source="vendor")) == [
        ("US", "2024-01", "vendor"), ("US", "2024-02", "vendor")]
    assert list(lake.partitions(KLINES_DAILY, month="2024-02")) == [("US", "2024-02", "itick"),
                                                                     ("US", "2024-02", "vendor")]
    assert lake.partitions(KLINES_DAILY, region="JP") == {}
    assert list(lake.partitions(SECURITIES)) == [("US", "itick")]
    files = lake.partition_files(KLINES_DAILY, region="US")
    assert [lake.relative(f.path) for f in files.values()] == [
        f"klines_daily/region=US/month={m}/{s}.parquet" for m in ("2024-01", "2024-02") for s in ("itick", "vendor")]
    for found in files.values():  # one listing gives what a stat of each file gives
        assert (found.size, found.mtime_ns) == lake.stat(found.path)
        assert lake.exists(found.path)
    assert lake.row_counts(f.path for f in files.values()) == [2, 2, 2, 2]


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


def test_a_failure_while_staging_many_partitions_replaces_none_of_them(make_lake, monkeypatch):
    """Locally a failure before the renames; on object storage one while encoding, before any upload."""
    lake = make_lake()
    months = ["2024-01", "2024-02", "2024-03"]
    paths = [lake.write(KLINES_DAILY, _table(close=1.0), region="US", month=m, source="itick") for m in months]
    before = [_bytes(lake, p) for p in paths]
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
    assert [_bytes(lake, p) for p in paths] == before
    assert _every_file(lake) == [f"klines_daily/region=US/month={m}/itick.parquet" for m in months]  # no temp file


@pytest.mark.parametrize("root", ["local", "s3://bucket/prefix/lake"])
def test_partition_values_cannot_escape_the_lake(root, tmp_path):
    lake = Lake(tmp_path) if root == "local" else Lake(root)  # no request is made: these fail before any I/O
    with pytest.raises(ValueError, match="invalid partition value"):
        lake.partition_path(KLINES_DAILY, region="../etc", month=MONTH, source="itick")
    with pytest.raises(ValueError, match="not a month"):
        lake.partition_path(KLINES_DAILY, region="US", month="../2024", source="itick")
    with pytest.raises(ValueError, match="partitions the lake by"):
        lake.partition_path(KLINES_DAILY, region="US", trade_date=DAY)
    with pytest.raises(ValueError, match="invalid source name"):
        lake.partition_path(KLINES_DAILY, region="US", month=MONTH, source="../x")
    with pytest.raises(ValueError, match="invalid source name"):
        lake.partition_path(KLINES_DAILY, region="US", month=MONTH, source="data")
    with pytest.raises(TypeError, match="schema"):
        lake.write(KLINES_DAILY, pa.table({"x": [1]}), region="US", month=MONTH, source="itick")
    with pytest.raises(ValueError, match="is not in the"):  # a local lake: pathlib says so
        lake.relative(Path("/elsewhere/x.parquet") if root == "local" else ObjectPath("bucket/elsewhere/x.parquet"))


def test_lake_roots_and_paths():
    s3 = Lake.at("s3://bucket/prefix/lake/")
    assert s3.is_remote
    assert s3.root == ObjectPath("bucket/prefix/lake")
    assert repr(s3) == "Lake('s3://bucket/prefix/lake')"
    path = s3.partition_path(KLINES_DAILY, region="US", month=MONTH, source="itick")
    assert str(path) == "s3://bucket/prefix/lake/" + JAN_KEY
    assert path.name == "itick.parquet"
    assert path.parent == s3.root / "klines_daily" / "region=US" / "month=2024-01"
    assert s3.glob(KLINES_DAILY) == "s3://bucket/prefix/lake/klines_daily/*/*/*.parquet"
    assert Lake("s3://bucket/prefix/lake").root == s3.root  # a str URL works in the constructor too
    local = Lake.at("file:///srv/lake")
    assert not local.is_remote
    assert local.root == Path("/srv/lake")
    assert Lake("data/lake").root == Path("data/lake")  # a plain path string stays a (relative) Path


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


def test_one_source_never_replaces_another_sources_rows(make_lake, tmp_path):
    """A second source of the same market has its own lake file and its own warehouse rows in each partition."""
    lake, wh = make_lake(), _warehouse(tmp_path)
    other = Lake.to_arrow(KLINES_DAILY, _bars(2).assign(close=3.0, source="vendor"))
    mine_path = lake.write(KLINES_DAILY, _table(3, 1.0), region="US", month=MONTH, source="itick")
    other_path = lake.write(KLINES_DAILY, other, region="US", month=MONTH, source="vendor")
    wh.replace_partitions(KLINES_DAILY, other, [{"region": "US", "month": MONTH, "source": "vendor"}])
    wh.replace_partitions(KLINES_DAILY, _table(3, 1.0), US_JAN)
    wh.replace_partitions(KLINES_DAILY, _table(1, 2.0), US_JAN)  # itick re-run: only its own rows change
    assert sorted(_rows(wh.pipeline_path)) == [("S0", 2.0), ("S0", 3.0), ("S1", 3.0)]
    assert mine_path != other_path
    assert lake.exists(other_path)
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
