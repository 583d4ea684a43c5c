"""Nightly deliveries (issue 19, item 2): one lake snapshot per delivery, deterministic bytes, a restatement rewrites
only the months it touched and the manifest says so, nothing outside the grant reaches a file, a killed delivery
leaves the previous one intact, and an S3 target takes the same layout."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from tests.products_lake import adjusted, bars, open_lake, put, sessions
from ticklake.dictionary import DATASETS
from ticklake.products import delivery as delivery_module
from ticklake.products.delivery import MANIFEST, DeliveryError, deliver, region_folder
from ticklake.products.query import GrantError
from ticklake.products.tenants import Product, Tenant, Window

TODAY = dt.date(2024, 6, 28)
DAYS = sessions(dt.date(2024, 4, 1), TODAY)  # April, May and June
US, HK = ["AAPL", "MSFT", "NVDA"], ["00700", "09988"]
HKD = 0.128
KLINES = DATASETS["klines_daily"]
ADJUSTED = DATASETS["klines_daily_adjusted"]


def build(home: Path) -> Path:
    lake = open_lake(home)
    put(lake, "klines_daily", bars("US", US, DAYS) + bars("HK", HK, DAYS))
    put(lake, "klines_daily_adjusted", adjusted(bars("US", US, DAYS), 0.5))
    put(lake, "fx_daily", [{"region": "HK", "currency": "HKD", "trade_date": d, "usd_per_unit": HKD,
                            "pair": "USDHKD", "pair_close": 1 / HKD} for d in DAYS])
    put(lake, "security_master", [{"region": r, "symbol": s, "valid_from": dt.date(2020, 1, 1),
                                   "security_type": "stock", "currency": c, "name": f"{s} Inc"}
                                  for r, codes, c in (("US", US, "USD"), ("HK", HK, "HKD")) for s in codes])
    lake.close()
    return home


@pytest.fixture(scope="module")
def lake_home(tmp_path_factory) -> Path:
    """The module's lake, read only (a test that restates builds its own: `fresh_lake`)."""
    return build(tmp_path_factory.mktemp("shared") / "lake")


@pytest.fixture
def fresh_lake(tmp_path) -> Path:
    return build(tmp_path / "lake")


def tenant(target: Path | str, *, fields=("symbol", "trade_date", "close", "volume"), regions=("US", "HK"),
           fmt="parquet", prices="raw", currency="local", window: Window | None = None, datasets=None,
           name="risk") -> Tenant:
    table = ADJUSTED if prices == "adjusted" else KLINES
    products = datasets or {"klines_daily": Product("klines_daily", table, tuple(c for c in table.columns
                                                                                 if c in fields))}
    return Tenant(name, products, regions, window=window or Window(), prices=prices, currency=currency, format=fmt,
                  target=str(target))


def folder(t: Tenant, region: str, dataset: str = "klines_daily") -> Path:
    return Path(region_folder(t, dataset, region))


def manifest(t: Tenant, region: str, dataset: str = "klines_daily") -> dict:
    return json.loads((folder(t, region, dataset) / MANIFEST).read_text())


def read(path: Path, fmt: str) -> pa.Table:
    if fmt == "parquet":
        return pq.read_table(path)
    if fmt == "csv":
        return pacsv.read_csv(path)
    return pa.Table.from_pylist([json.loads(line) for line in path.read_text().splitlines()])


def rows_of(t: Tenant, region: str, dataset: str = "klines_daily") -> list[dict]:
    out = []
    for f in manifest(t, region, dataset)["files"]:
        out += read(folder(t, region, dataset) / f["path"], t.format).to_pylist()
    return out


def restate(home: Path, month_days: list[dt.date], scale: float) -> None:
    """Restate every US bar of the given days' month (one partition)."""
    lake = open_lake(home)
    put(lake, "klines_daily", bars("US", US, month_days, scale=scale))
    lake.close()


def june() -> list[dt.date]:
    return [d for d in DAYS if d.month == 6]


# -- deterministic bytes and the manifest ----------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_delivering_twice_gives_the_same_bytes_and_rewrites_nothing(tmp_path, lake_home, fmt):
    t = tenant(tmp_path / "out", fmt=fmt)
    first = deliver(t, "klines_daily", "US", today=TODAY, home=lake_home)
    assert [n.split(".")[0] for n in first.written] == ["month=2024-04", "month=2024-05", "month=2024-06"]
    assert first.rows == len(US) * len(DAYS)
    assert first.manifest_written
    assert first.months_changed == ("2024-04", "2024-05", "2024-06")
    files = {p.name: p.read_bytes() for p in folder(t, "US").iterdir()}
    mtimes = {p.name: p.stat().st_mtime_ns for p in folder(t, "US").iterdir()}
    time.sleep(0.01)
    again = deliver(t, "klines_daily", "US", today=TODAY, home=lake_home)
    assert again.written == ()
    assert again.removed == ()
    assert not again.manifest_written
    assert again.unchanged == first.written
    assert again.months_changed == ()
    assert {p.name: p.read_bytes() for p in folder(t, "US").iterdir()} == files
    assert {p.name: p.stat().st_mtime_ns for p in folder(t, "US").iterdir()} == mtimes  # not even rewritten
    # another target, another day's run: the same names and bytes (no time of delivery anywhere in them)
    other = tenant(tmp_path / "elsewhere", fmt=fmt)
    deliver(other, "klines_daily", "US", today=TODAY, home=lake_home, now=dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
    assert {p.name: p.read_bytes() for p in folder(other, "US").iterdir()} == files

    doc = manifest(t, "US")
    assert (doc["tenant"], doc["dataset"], doc["region"], doc["table"], doc["format"]) == \
        ("risk", "klines_daily", "US", "klines_daily", fmt)
    assert doc["snapshot"]["id"] == first.snapshot_id
    assert doc["snapshot"]["time"]
    assert [c["name"] for c in doc["schema"]] == ["symbol", "trade_date", "close", "volume"]
    assert doc["schema"][2]["description"] == KLINES.field("close").description
    assert doc["schema"][2]["unit"] == "listing currency"
    for f in doc["files"]:
        data = (folder(t, "US") / f["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == f["sha256"]
        assert len(data) == f["bytes"]
        assert f["path"] == f"month={f['month']}.{f['sha256'][:12]}.{fmt}"
        assert read(folder(t, "US") / f["path"], fmt).num_rows == f["rows"]
    assert sum(f["rows"] for f in doc["files"]) == doc["rows"] == first.rows
    assert doc["changes"] == {"previous_snapshot": None, "added": ["2024-04", "2024-05", "2024-06"], "changed": [],
                              "removed": [], "superseded": []}
    assert "delivered" not in json.dumps(doc)
    assert "key" not in json.dumps(doc)


def test_parquet_is_written_with_fixed_settings_and_a_stable_created_by(tmp_path, lake_home):
    t = tenant(tmp_path / "out")
    deliver(t, "klines_daily", "US", today=TODAY, home=lake_home)
    path = folder(t, "US") / manifest(t, "US")["files"][0]["path"]
    meta = pq.ParquetFile(path).metadata
    assert meta.created_by == f"parquet-cpp-arrow version {pa.__version__}"
    assert meta.row_group(0).column(0).compression == "ZSTD"
    schema = pq.read_schema(path)
    assert schema.field("close").metadata[b"doc"].decode() == KLINES.field("close").doc
    assert schema.field("trade_date").type == pa.date32()


def test_rows_come_in_the_plans_order_with_the_lakes_values(tmp_path, lake_home):
    for fmt in ("parquet", "csv", "jsonl"):
        t = tenant(tmp_path / fmt, fmt=fmt)
        deliver(t, "klines_daily", "US", today=TODAY, home=lake_home)
        rows = rows_of(t, "US")
        expected = sorted(bars("US", US, DAYS),  # a file per month, each in the plan's order
                          key=lambda r: (r["trade_date"].month, r["symbol"], r["trade_date"]))
        assert [(r["symbol"], str(r["trade_date"]), r["close"], r["volume"]) for r in rows] == \
            [(r["symbol"], str(r["trade_date"]), r["close"], r["volume"]) for r in expected], fmt


# -- restatements -----------------------------------------------------------------------------------------------
def test_a_restatement_rewrites_only_the_month_it_touched_and_the_manifest_says_so(tmp_path, fresh_lake):
    t = tenant(tmp_path / "out")
    first = deliver(t, "klines_daily", "US", today=TODAY, home=fresh_lake)
    before = manifest(t, "US")
    old_june = next(f["path"] for f in before["files"] if f["month"] == "2024-06")
    restate(fresh_lake, june(), 1.5)
    second = deliver(t, "klines_daily", "US", today=TODAY, home=fresh_lake)
    assert [n.split(".")[0] for n in second.written] == ["month=2024-06"]
    assert len(second.unchanged) == 2
    assert second.changed == ("2024-06",)
    assert second.months_changed == ("2024-06",)
    doc = manifest(t, "US")
    assert doc["snapshot"]["id"] == second.snapshot_id > first.snapshot_id
    assert doc["changes"] == {"previous_snapshot": before["snapshot"], "added": [], "changed": ["2024-06"],
                              "removed": [], "superseded": [old_june]}
    assert (folder(t, "US") / old_june).exists()  # the previous generation stays for readers in flight
    assert [f["path"] for f in doc["files"] if f["month"] != "2024-06"] == \
        [f["path"] for f in before["files"] if f["month"] != "2024-06"]
    june_rows = [r for r in rows_of(t, "US") if r["trade_date"].month == 6]
    assert june_rows[0]["close"] == pytest.approx(10.0 * 1.5)

    restate(fresh_lake, june(), 2.0)  # the next change retires the generation before the previous one
    third = deliver(t, "klines_daily", "US", today=TODAY, home=fresh_lake)
    assert third.removed == (old_june,)
    assert not (folder(t, "US") / old_june).exists()
    assert manifest(t, "US")["changes"]["superseded"] == [second.written[0]]
    assert (folder(t, "US") / second.written[0]).exists()


def test_a_month_that_leaves_the_rolling_window_is_removed_and_said_so(tmp_path, lake_home):
    t = tenant(tmp_path / "out", window=Window(last_days=40))
    deliver(t, "klines_daily", "US", today=TODAY, home=lake_home)
    assert [f["month"] for f in manifest(t, "US")["files"]] == ["2024-05", "2024-06"]
    later = deliver(t, "klines_daily", "US", today=dt.date(2024, 7, 20), home=lake_home)
    doc = manifest(t, "US")
    assert [f["month"] for f in doc["files"]] == ["2024-06"]
    assert later.dropped == ("2024-05",)
    assert doc["changes"]["removed"] == ["2024-05"]
    assert doc["window"] == {"rule": "the last 40 days", "start": "2024-06-10", "end": "2024-07-20"}
    assert min(r["trade_date"] for r in rows_of(t, "US")) >= dt.date(2024, 6, 10)


# -- prices, currency and datasets ------------------------------------------------------------------------------
def test_a_usd_tenant_gets_converted_values_and_says_so(tmp_path, lake_home):
    t = tenant(tmp_path / "out", currency="USD", fmt="csv")
    deliver(t, "klines_daily", "HK", today=TODAY, home=lake_home)
    rows = rows_of(t, "HK")
    local = {(r["symbol"], r["trade_date"]): r["close"] for r in bars("HK", HK, DAYS)}
    assert rows
    assert all(r["close"] == pytest.approx(local[(str(r["symbol"]).zfill(5), r["trade_date"])] * HKD)
                        for r in rows)
    doc = manifest(t, "HK")
    assert doc["currency"] == "USD"
    close = next(c for c in doc["schema"] if c["name"] == "close")
    assert close["unit"] == "USD"
    assert "converted to USD" in close["description"]
    volume = next(c for c in doc["schema"] if c["name"] == "volume")
    assert volume["unit"] == "shares"  # not money: not converted
    deliver(t, "klines_daily", "US", today=TODAY, home=lake_home)  # USD listings: a rate of 1
    assert [r["close"] for r in rows_of(t, "US")][:2] == pytest.approx([10.0, 10.1])


def test_an_adjusted_tenant_reads_the_adjusted_table(tmp_path, lake_home):
    t = tenant(tmp_path / "out", prices="adjusted", fields=("symbol", "trade_date", "close", "adjustment_factor"),
               fmt="jsonl")
    result = deliver(t, "klines_daily", "US", today=TODAY, home=lake_home)
    assert result.table == "klines_daily_adjusted"
    assert manifest(t, "US")["table"] == "klines_daily_adjusted"
    rows = rows_of(t, "US")
    assert rows[0] == {"symbol": "AAPL", "trade_date": "2024-04-01", "close": 5.0, "adjustment_factor": 0.5}
    assert manifest(t, "US")["prices"] == "adjusted"


def test_a_dataset_without_a_month_key_is_one_file(tmp_path, lake_home):
    master = DATASETS["security_master"]
    t = tenant(tmp_path / "out", datasets={"security_master": Product("security_master", master,
                                                                      ("symbol", "name", "currency"))})
    result = deliver(t, "security_master", "HK", today=TODAY, home=lake_home)
    [name] = result.written
    assert name.startswith("all.")
    assert name.endswith(".parquet")
    doc = manifest(t, "HK", "security_master")
    assert doc["files"][0]["month"] is None
    assert doc["changes"]["added"] == ["all"]
    assert rows_of(t, "HK", "security_master") == [{"symbol": s, "name": f"{s} Inc", "currency": "HKD"} for s in HK]


def test_a_region_without_rows_gets_a_manifest_and_no_file(tmp_path, lake_home):
    t = tenant(tmp_path / "out", regions=("US", "JP"))
    result = deliver(t, "klines_daily", "JP", today=TODAY, home=lake_home)
    assert result.rows == 0
    assert result.written == ()
    assert manifest(t, "JP")["files"] == []


# -- grants -----------------------------------------------------------------------------------------------------
def test_nothing_outside_the_grant_ever_reaches_a_file(tmp_path, lake_home):
    window = Window(start=dt.date(2024, 5, 6), end=dt.date(2024, 6, 14))
    t = tenant(tmp_path / "out", fields=("trade_date", "close"), regions=("US",), window=window, fmt="jsonl")
    deliver(t, "klines_daily", "US", today=TODAY, home=lake_home)
    rows = rows_of(t, "US")
    assert rows
    assert all(set(r) == {"trade_date", "close"} for r in rows)
    assert min(r["trade_date"] for r in rows) == "2024-05-06"
    assert max(r["trade_date"] for r in rows) == "2024-06-14"
    assert [c["name"] for c in manifest(t, "US")["schema"]] == ["trade_date", "close"]
    hk_closes = {r["close"] for r in bars("HK", HK, DAYS)} - {r["close"] for r in bars("US", US, DAYS)}
    assert not hk_closes & {r["close"] for r in rows}
    with pytest.raises(GrantError, match="region HK is outside tenant risk's grant"):
        deliver(t, "klines_daily", "HK", today=TODAY, home=lake_home)
    with pytest.raises(GrantError, match="dataset 'fx_daily' is not in tenant risk's grant"):
        deliver(t, "fx_daily", "US", today=TODAY, home=lake_home)
    assert not folder(t, "HK").exists()
    assert not folder(t, "US", "fx_daily").exists()
    for path in folder(t, "US").iterdir():  # the raw bytes too: no field name outside the grant anywhere
        text = path.read_text()
        for word in ("volume", "symbol", "AAPL", "ingested_at", "itick", "HK"):
            assert word not in text, (path.name, word)


def test_a_field_only_another_tenant_may_see_never_reaches_this_one(tmp_path, lake_home):
    other = tenant(tmp_path / "research", name="research", fields=tuple(KLINES.columns))
    mine = tenant(tmp_path / "risk", name="risk", fields=("symbol", "close"))
    deliver(other, "klines_daily", "US", today=TODAY, home=lake_home)
    deliver(mine, "klines_daily", "US", today=TODAY, home=lake_home)
    assert {k for r in rows_of(mine, "US") for k in r} == {"symbol", "close"}
    assert "turnover" in rows_of(other, "US")[0]


# -- a killed delivery ------------------------------------------------------------------------------------------
def _intact(t: Tenant, region: str, doc: dict) -> None:
    """The manifest is `doc`, every file it lists has its bytes, and no file under a final name is half-written."""
    assert manifest(t, region) == doc
    for f in doc["files"]:
        assert hashlib.sha256((folder(t, region) / f["path"]).read_bytes()).hexdigest() == f["sha256"]
    for path in folder(t, region).iterdir():
        if path.name != MANIFEST and not path.name.startswith("."):
            assert hashlib.sha256(path.read_bytes()).hexdigest()[:12] == path.name.split(".")[1], path.name


def test_a_delivery_failing_between_files_leaves_the_previous_one_intact(tmp_path, fresh_lake, monkeypatch):
    t = tenant(tmp_path / "out")
    deliver(t, "klines_daily", "US", today=TODAY, home=fresh_lake)
    before = manifest(t, "US")
    restate(fresh_lake, [d for d in DAYS if d.month == 5], 3.0)
    restate(fresh_lake, june(), 3.0)
    real_put = delivery_module._Folder.put
    calls = []

    def put_then_die(self, name, data):
        if calls:
            raise OSError("disk full (simulated)")
        calls.append(name)
        real_put(self, name, data)

    monkeypatch.setattr(delivery_module._Folder, "put", put_then_die)
    with pytest.raises(OSError, match="simulated"):
        deliver(t, "klines_daily", "US", today=TODAY, home=fresh_lake)
    _intact(t, "US", before)
    assert calls
    assert calls[0].startswith("month=2024-05")
    monkeypatch.setattr(delivery_module._Folder, "put", real_put)
    after = deliver(t, "klines_daily", "US", today=TODAY, home=fresh_lake)
    assert after.changed == ("2024-05", "2024-06")
    _intact(t, "US", manifest(t, "US"))


KILLED = textwrap.dedent("""
    import datetime as dt, sys, time
    from pathlib import Path
    from ticklake.products import delivery
    from tests.unit.test_delivery import tenant, TODAY

    real_put = delivery._Folder.put
    def slow_put(self, name, data):
        if name == delivery.MANIFEST:
            raise SystemExit("the manifest was reached: the kill came too late")
        half = len(data) // 2  # a temp file half-written, then the process is killed
        temp = self.path / f".{name}.tmp-0123456789ab"
        temp.write_bytes(data[:half])
        print("WRITING", name, flush=True)
        time.sleep(60)
    delivery._Folder.put = slow_put
    delivery.deliver(tenant(Path(sys.argv[1])), "klines_daily", "US", today=TODAY, home=sys.argv[2])
""")


def test_a_delivery_killed_mid_file_leaves_the_previous_one_intact(tmp_path, fresh_lake):
    t = tenant(tmp_path / "out")
    deliver(t, "klines_daily", "US", today=TODAY, home=fresh_lake)
    before = manifest(t, "US")
    restate(fresh_lake, june(), 4.0)
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-c", KILLED, str(tmp_path / "out"), str(fresh_lake)], cwd=root,
                            env={**os.environ, "PYTHONPATH": str(root)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("WRITING month=2024-06"), (line, proc.stderr.read() if proc.poll() else "")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    _intact(t, "US", before)
    assert any(p.name.startswith(".month=2024-06") for p in folder(t, "US").iterdir())  # the killed run's temp
    after = deliver(t, "klines_daily", "US", today=TODAY, home=fresh_lake)
    assert after.changed == ("2024-06",)
    assert any(n.startswith(".month=2024-06") for n in after.removed)
    _intact(t, "US", manifest(t, "US"))
    assert not any(p.name.startswith(".") for p in folder(t, "US").iterdir())


# -- S3 ---------------------------------------------------------------------------------------------------------
def test_an_s3_target_takes_the_same_layout_manifest_last(s3, fresh_lake):
    import boto3

    client = boto3.client("s3", endpoint_url=s3.endpoint, region_name="us-east-1")
    t = tenant(s3.url("deliveries/risk"), fmt="csv", currency="USD")
    first = deliver(t, "klines_daily", "HK", today=TODAY, home=fresh_lake)
    assert first.directory == "s3://ticklake/deliveries/risk/klines_daily/region=HK"
    prefix = "deliveries/risk/klines_daily/region=HK/"

    def objects() -> dict[str, bytes]:
        listed = client.list_objects_v2(Bucket=s3.bucket, Prefix=prefix).get("Contents", [])
        return {o["Key"][len(prefix):]: client.get_object(Bucket=s3.bucket, Key=o["Key"])["Body"].read()
                for o in listed}

    stored = objects()
    doc = json.loads(stored[MANIFEST])
    assert sorted(stored) == sorted([MANIFEST, *(f["path"] for f in doc["files"])])
    for f in doc["files"]:
        assert hashlib.sha256(stored[f["path"]]).hexdigest() == f["sha256"]
    table = pacsv.read_csv(io.BytesIO(stored[doc["files"][0]["path"]]))
    assert table.column_names == ["symbol", "trade_date", "close", "volume"]
    again = deliver(t, "klines_daily", "HK", today=TODAY, home=fresh_lake)
    assert again.written == ()
    assert not again.manifest_written
    assert objects() == stored

    lake = open_lake(fresh_lake)
    put(lake, "klines_daily", bars("HK", HK, june(), scale=2.0))
    lake.close()
    third = deliver(t, "klines_daily", "HK", today=TODAY, home=fresh_lake)
    assert third.changed == ("2024-06",)
    assert len(third.written) == 1
    doc = json.loads(objects()[MANIFEST])
    assert doc["changes"]["changed"] == ["2024-06"]
    assert doc["changes"]["superseded"][0] in objects()


def test_a_folder_holding_another_tenants_delivery_is_refused(tmp_path, lake_home):
    deliver(tenant(tmp_path / "shared", name="research"), "klines_daily", "US", today=TODAY, home=lake_home)
    before = (tmp_path / "shared" / "klines_daily" / "region=US" / MANIFEST).read_bytes()
    with pytest.raises(DeliveryError, match="is tenant research's delivery of klines_daily for region US, not "
                                            "tenant risk's"):
        deliver(tenant(tmp_path / "shared", name="risk"), "klines_daily", "US", today=TODAY, home=lake_home)
    assert (tmp_path / "shared" / "klines_daily" / "region=US" / MANIFEST).read_bytes() == before


def test_json_lines_are_built_column_wise_and_read_back_as_the_values():
    table = pa.table({
        "name": pa.array(['quote " and \\ backslash', None, "é\n\u0001 control", "plain"]),
        "close": pa.array([1045.0, None, 1.3055999999999999, float("nan")]),
        "day": pa.array([dt.date(2024, 1, 2)] * 4, pa.date32()),
        "at": pa.array([dt.datetime(2024, 6, 29, 1, 0, 0, 123000, tzinfo=dt.UTC)] * 3 + [None],
                       pa.timestamp("ms", tz="UTC")),
        "flag": pa.array([True, False, None, True]),
        "count": pa.array([1, None, 3, -4], pa.int64()),
    })
    lines = delivery_module.encode(table, "jsonl").decode().splitlines()
    assert lines[0] == ('{"name":"quote \\" and \\\\ backslash","close":1045.0,"day":"2024-01-02",'
                        '"at":"2024-06-29T01:00:00.123Z","flag":true,"count":1}')
    assert [json.loads(line) for line in lines] == [
        {"name": 'quote " and \\ backslash', "close": 1045.0, "day": "2024-01-02", "at": "2024-06-29T01:00:00.123Z",
         "flag": True, "count": 1},
        {"name": None, "close": None, "day": "2024-01-02", "at": "2024-06-29T01:00:00.123Z", "flag": False,
         "count": None},
        {"name": "é\n\u0001 control", "close": 1.3055999999999999, "day": "2024-01-02",
         "at": "2024-06-29T01:00:00.123Z", "flag": None, "count": 3},
        {"name": "plain", "close": None, "day": "2024-01-02", "at": None, "flag": True, "count": -4},  # NaN: null
    ]
    assert delivery_module.encode(table.slice(1, 2), "jsonl").decode().splitlines() == lines[1:3]
    assert delivery_module.encode(table.slice(0, 0), "jsonl") == b""
