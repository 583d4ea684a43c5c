"""The lake on S3-compatible object storage (moto's S3 server on loopback): the write path keeps its guarantees there
(whole objects, the same keys as a local lake, repair of whatever drifted), and a store that stops answering or
refuses changes nothing it had not finished storing and says what to check, never the credentials.

(The lake-level cases both backends share are parametrized in test_storage.py.)
"""

from __future__ import annotations

import datetime as dt
import socket
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest

import ticklake.lake as lake_module
from tests.unit.test_schemas import _bars
from ticklake.dictionary import HISTORY, KLINES_DAILY
from ticklake.dictionary.fundamentals import FUNDAMENTALS_DAILY
from ticklake.dictionary.operations import RECONCILIATION_LOG
from ticklake.ingest import with_lineage
from ticklake.lake import Lake
from ticklake.object_store import ObjectStoreError, request_failed
from ticklake.store import Part, commit, repair, write
from ticklake.warehouse import Warehouse

NOW = dt.datetime(2024, 6, 28, 23, 0, tzinfo=dt.UTC)
FIRST_SESSION = {"2024-01": "2024-01-02", "2024-02": "2024-02-05", "2024-03": "2024-03-04"}
MONTHS = list(FIRST_SESSION)


def _part(month: str, n: int, close: float) -> Part:
    day = pd.Timestamp(FIRST_SESSION[month])
    frame = _bars(n).assign(close=close, trade_date=day.as_unit("ms"),
                            bar_ts=(day + pd.Timedelta(hours=21)).tz_localize("UTC").as_unit("ms"))
    return Part({"region": "US", "month": month, "source": "itick"}, Lake.to_arrow(KLINES_DAILY, frame))


def _warehouse(tmp_path, name: str = "wh") -> Warehouse:
    return Warehouse(tmp_path / name / "pipeline.duckdb", tmp_path / name / "warehouse.duckdb")


def _stored(wh: Warehouse) -> dict[str, tuple[int, float]]:
    """month -> (rows, max close) in the warehouse."""
    with wh.reader() as con:
        rows = con.execute("SELECT strftime(trade_date, '%Y-%m'), count(*), max(close) FROM klines_daily "
                           "GROUP BY 1 ORDER BY 1").fetchall()
    return {month: (n, close) for month, n, close in rows}


def _in_lake(lake: Lake) -> dict[str, tuple[int, float]]:
    """month -> (rows, max close) in the lake's files, each read whole."""
    found = {}
    for (_region, month, _source), path in lake.partitions(KLINES_DAILY).items():
        table = lake.read_file(path, schema=KLINES_DAILY.arrow_schema)
        found[month] = (table.num_rows, max(table.column("close").to_pylist()))
    return found


def _status(wh: Warehouse) -> list[tuple]:
    with wh.reader() as con:
        return con.execute("SELECT dataset, partition, source, path, rows, file_bytes FROM lake_partitions "
                           "ORDER BY ALL").fetchall()


def _commit(lake: Lake, wh: Warehouse, n: int, close: float, run_id: str) -> None:
    commit(lake, wh, KLINES_DAILY, [_part(m, n, close) for m in MONTHS], run_id=run_id, now=NOW)


def _repair(lake: Lake, wh: Warehouse, dataset=KLINES_DAILY):
    return repair(lake, wh, dataset, "US", source="itick", run_id="repair", now=NOW)


def test_commit_on_object_storage_records_what_a_local_lake_records_and_needs_no_repair(s3, tmp_path):
    remote, local = Lake.at(s3.url("prod/lake")), Lake(tmp_path / "lake")
    remote_wh, local_wh = _warehouse(tmp_path, "remote"), _warehouse(tmp_path, "local")
    _commit(remote, remote_wh, 3, 1.0, "run-1")
    _commit(local, local_wh, 3, 1.0, "run-1")
    # the same keys (lake_partitions.path), the same bytes, the same rows, on either backend
    assert _status(remote_wh) == _status(local_wh)
    assert [p for *_, p, _n, _b in _status(remote_wh)] == [
        f"klines_daily/region=US/month={m}/itick.parquet" for m in MONTHS]
    assert _stored(remote_wh) == _stored(local_wh) == _in_lake(remote) == {m: (3, 1.0) for m in MONTHS}
    # what a listing says of each object is what was recorded right after its upload: nothing looks drifted
    result = _repair(remote, remote_wh)
    assert (result.reloaded, result.rewritten, result.temp_files_removed) == ([], [], 0)


def test_repair_rebuilds_a_vanished_object_and_reloads_a_replaced_one(s3, tmp_path):
    lake, wh = Lake.at(s3.url("prod/lake")), _warehouse(tmp_path)
    _commit(lake, wh, 3, 1.0, "run-1")
    february = lake.partition_path(KLINES_DAILY, region="US", month="2024-02", source="itick")
    lake.filesystem.delete_file(february.path)  # someone deleted an object
    lake.write(KLINES_DAILY, _part("2024-03", 5, 7.0).table, region="US", month="2024-03", source="itick")
    assert not lake.exists(february)

    result = _repair(lake, wh)
    assert result.rewritten == ["2024-02/itick"]  # rebuilt from the warehouse
    assert result.reloaded == ["2024-03/itick"]  # the warehouse takes the lake's newer version
    assert _in_lake(lake) == _stored(wh) == {"2024-01": (3, 1.0), "2024-02": (3, 1.0), "2024-03": (5, 7.0)}
    again = _repair(lake, wh)
    assert (again.reloaded, again.rewritten) == ([], [])


def _secrets(s3) -> list[str]:
    return [s3.env["AWS_SECRET_ACCESS_KEY"], s3.env["AWS_ACCESS_KEY_ID"]]


def test_a_store_that_stops_answering_mid_write_leaves_every_object_whole_and_repair_catches_up(
        s3, tmp_path, monkeypatch):
    lake, wh = Lake.at(s3.url("prod/lake")), _warehouse(tmp_path)
    _commit(lake, wh, 3, 1.0, "run-1")

    # upload one object at a time, and stop the server once the first of the next write's three is stored
    monkeypatch.setattr(lake_module, "_io_pool", lambda: ThreadPoolExecutor(max_workers=1))
    real_put, uploads = Lake._put, []

    def server_dies_after_the_first_upload(self, target, data):
        uploads.append(target)
        if len(uploads) == 2:
            s3.stop()
        return real_put(self, target, data)

    monkeypatch.setattr(Lake, "_put", server_dies_after_the_first_upload)
    with pytest.raises(ObjectStoreError) as failed:
        _commit(lake, wh, 5, 2.0, "run-2")
    message = str(failed.value)
    assert "could not write s3://ticklake/prod/lake/klines_daily/region=US/month=2024-02/itick.parquet" in message
    assert f"AWS_ENDPOINT_URL={s3.endpoint}" in message
    assert "did not answer" in message
    for secret in _secrets(s3):
        assert secret not in message
        assert secret not in str(failed.value.__cause__)

    s3.restart()
    monkeypatch.setattr(Lake, "_put", real_put)
    # January's upload completed (new version), the others never did (old version): each reads back whole
    assert _in_lake(lake) == {"2024-01": (5, 2.0), "2024-02": (3, 1.0), "2024-03": (3, 1.0)}
    assert _stored(wh) == {m: (3, 1.0) for m in MONTHS}  # the failed commit loaded nothing
    result = _repair(lake, wh)
    assert (result.reloaded, result.rewritten) == (["2024-01/itick"], [])
    assert _stored(wh) == _in_lake(lake)


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again: nothing listens there


def test_an_unreachable_store_fails_clearly_and_names_no_credentials(s3, monkeypatch):
    lake = Lake.at(s3.url("prod/lake"))
    lake.write(KLINES_DAILY, _part("2024-01", 3, 1.0).table, region="US", month="2024-01", source="itick")
    endpoint = f"http://127.0.0.1:{_dead_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    dead = Lake.at(s3.url("prod/lake"))  # the filesystem reads the endpoint when it is built
    with pytest.raises(ObjectStoreError) as writing:
        dead.write(KLINES_DAILY, _part("2024-01", 5, 9.0).table, region="US", month="2024-01", source="itick")
    with pytest.raises(ObjectStoreError, match=r"could not list s3://ticklake/prod/lake/klines_daily/region=US"):
        dead.partitions(KLINES_DAILY, region="US")
    with pytest.raises(ObjectStoreError, match=r"could not look up s3://ticklake/prod/lake/klines_daily/"):
        dead.read_table(KLINES_DAILY, region="US", month="2024-01", source="itick")
    message = str(writing.value)
    assert message.startswith("could not write s3://ticklake/prod/lake/klines_daily/region=US/month=2024-01/"
                              "itick.parquet: the store did not answer after 3 attempt(s): check that "
                              f"AWS_ENDPOINT_URL={endpoint} is the right endpoint")
    for secret in _secrets(s3):
        assert secret not in message
    assert _in_lake(lake) == {"2024-01": (3, 1.0)}  # the stored object is untouched


def test_a_missing_bucket_is_named(s3):
    lake = Lake.at("s3://no-such-bucket/lake")
    assert lake.partitions(KLINES_DAILY) == {}  # nothing to list is not an error
    with pytest.raises(ObjectStoreError, match="bucket 'no-such-bucket' does not exist at AWS_ENDPOINT_URL="):
        lake.write(KLINES_DAILY, _part("2024-01", 1, 1.0).table, region="US", month="2024-01", source="itick")


def test_error_messages_never_carry_credentials(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEKEYID")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://user:hunter2@minio.internal:9000")
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    exc = OSError("When uploading part for key 'lake/x' in bucket 'b': AWS Error ACCESS_DENIED during UploadPart "
                  "operation: Access Denied (Credential=AKIAEXAMPLEKEYID/20240101/us-east-1/s3/aws4_request, "
                  "Signature=0123abcd; key wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY; via user:hunter2@minio)")
    error = request_failed(exc, "s3://b/lake/x", "write")
    text = f"{error} {exc}"
    assert "could not write s3://b/lake/x: the store refused the credentials" in text
    assert "AWS_ENDPOINT_URL=https://minio.internal:9000" in text
    for secret in ("AKIAEXAMPLEKEYID", "wJalrXUtnFEMI", "0123abcd", "hunter2"):
        assert secret not in text


def test_versioned_writes_keep_their_history_and_ledger_on_object_storage(s3, tmp_path):
    from tests.integration.test_point_in_time import VALUES, _snapshot

    lake, wh = Lake.at(s3.url("prod/lake")), _warehouse(tmp_path)
    for run_id, cap, at in (("run-1", 100.0, NOW), ("run-2", 101.0, NOW + dt.timedelta(days=1))):
        repair(lake, wh, FUNDAMENTALS_DAILY, "US", source="itick", run_id=run_id, now=at)
        write(lake, wh, FUNDAMENTALS_DAILY, VALUES, with_lineage(_snapshot({"AAA": cap}), "itick", run_id, at),
              run_id=run_id, now=at)
    history = lake.read_table(HISTORY["fundamentals_daily"], **VALUES)
    assert history.column("market_cap").to_pylist() == [100.0]  # the superseded version, in the lake
    assert lake.read_table(RECONCILIATION_LOG, region="US", source="itick").num_rows == 1  # the change applied
    with wh.reader() as con:
        assert con.execute("SELECT market_cap FROM fundamentals_daily").fetchall() == [(101.0,)]
        assert sorted(con.execute("SELECT DISTINCT dataset FROM lake_partitions").fetchall()) == [
            ("fundamentals_daily",), ("fundamentals_daily_history",), ("reconciliation_log",)]
    result = repair(lake, wh, FUNDAMENTALS_DAILY, "US", source="itick", run_id="run-3", now=NOW)
    assert (result.reloaded, result.rewritten) == ([], [])


def test_former_layout_files_on_object_storage_are_refused_not_skipped(s3, tmp_path):
    lake, wh = Lake.at(s3.url("prod/lake")), _warehouse(tmp_path)
    legacy = lake.dataset_dir(KLINES_DAILY) / "region=US" / "date=2024-01-02" / "data.parquet"
    stream = lake.filesystem.open_output_stream(legacy.path)
    stream.write(b"PAR1")
    stream.close()
    with pytest.raises(RuntimeError, match=r"1 file\(s\) of a former lake layout on object storage, e.g. s3://"):
        _repair(lake, wh)


def test_the_lake_matches_warehouse_check_reads_object_storage(s3, tmp_path):
    from checks.asset_checks import _lake_matches_warehouse

    lake, wh = Lake.at(s3.url("prod/lake")), _warehouse(tmp_path)
    _commit(lake, wh, 3, 1.0, "run-1")
    with wh.reader() as con:
        assert _lake_matches_warehouse(con, lake).passed
    lake.write(KLINES_DAILY, _part("2024-02", 4, 1.0).table, region="US", month="2024-02", source="itick")
    with wh.reader() as con:
        result = _lake_matches_warehouse(con, lake)
    assert not result.passed
    assert "klines_daily/region=US/month=2024-02/itick.parquet: lake 4 rows vs warehouse 3" in \
        result.metadata["details"].value

