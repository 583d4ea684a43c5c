"""The read API (`ticklake serve`) on a real lake: answers cut from one snapshot with only the granted and requested
fields, every hostile request refused naming its rule (never a stack trace), per-tenant rate limits (shared through
a real Redis across two app instances), the hot-data cache, and every request audited to `api_audit` without the
key ever reaching the audit, a log line or an answer."""

from __future__ import annotations

import datetime as dt
import io
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import duckdb
import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import uvicorn

from tests.services import REDIS_URL, free_port, require, wait_until_serving
from ticklake.api.app import ApiConfig, create_app
from ticklake.dictionary import DATASETS, Dataset
from ticklake.products.tenants import Tenants
from ticklake.storage import Catalog, Lakehouse, connect

pytestmark = pytest.mark.integration

KEYS = {"KEY_RESEARCH": "research-Zq8v2Lk4Pw9sTx1c", "KEY_RISK": "risk-Hn3bV7yUe5Ra0Mdq",
        "KEY_TINY": "tiny-Pd6fG2wQz8Lc4Xks"}
TENANTS = """
[tenants.research]
regions = ["US", "HK"]
prices = "adjusted"
[tenants.research.datasets]
klines_daily = "all"
fx_daily = ["region", "currency", "trade_date", "usd_per_unit"]
[tenants.research.api]
key_env = "KEY_RESEARCH"
requests_per_second = 1000
burst = 1000

[tenants.risk]
regions = ["US", "HK"]
currency = "USD"
format = "csv"
window = { start = 2024-01-01, end = 2024-06-30 }
[tenants.risk.datasets]
klines_daily = ["trade_date", "symbol", "close", "volume"]
[tenants.risk.api]
key_env = "KEY_RISK"
requests_per_second = 1000
burst = 1000

[tenants.tiny]
regions = ["US"]
[tenants.tiny.datasets]
klines_daily = ["trade_date", "close"]
[tenants.tiny.api]
key_env = "KEY_TINY"
requests_per_second = 0.5
burst = 2
"""
JANUARY = [dt.date(2024, 1, d) for d in range(1, 32) if dt.date(2024, 1, d).weekday() < 5]
JULY = [dt.date(2024, 7, 1), dt.date(2024, 7, 2)]
SYMBOLS = {"US": ["AAPL", "MSFT"], "HK": ["700"]}
NOW = dt.datetime(2024, 7, 3, tzinfo=dt.UTC)


def _rows(dataset: Dataset, rows: list[dict]) -> pa.Table:
    """Rows with every field the dictionary declares (lineage filled in), in its Arrow schema."""
    base = {"source": "itick", "ingested_at": NOW, "run_id": "test"}
    return pa.Table.from_pylist([{**{f: base.get(f) for f in dataset.columns}, **r} for r in rows],
                                schema=dataset.arrow_schema)


def _bar(region: str, symbol: str, day: dt.date, close: float, **extra) -> dict:
    return {"region": region, "symbol": symbol, "trade_date": day, "open": close, "high": close + 1,
            "low": close - 1, "close": close, "volume": 1000.0, "turnover": close * 1000, **extra}


def _months(days) -> list[str]:
    return sorted({f"{d:%Y-%m}" for d in days})


def write_lake(lake: Lakehouse, close: float = 10.0, fx: float = 0.125) -> None:
    """klines_daily (golden), klines_daily_adjusted, security_master and fx_daily, one transaction per call."""
    days = JANUARY + JULY
    bars = [_bar(r, s, d, close + i) for r, codes in SYMBOLS.items() for i, s in enumerate(codes) for d in days]
    kd, ka = DATASETS["klines_daily"], DATASETS["klines_daily_adjusted"]
    sm, fxd = DATASETS["security_master"], DATASETS["fx_daily"]
    parts = [{"region": r, "month": m, "source": "itick"} for r in SYMBOLS for m in _months(days)]
    golden = _rows(kd, [{**b, "rule": "single_source", "sources": "itick"} for b in bars])
    adjusted = _rows(ka, [{**b, "close": b["close"] / 2, "open": b["open"] / 2, "high": b["high"] / 2,
                           "low": b["low"] / 2, "adjustment_factor": 0.5} for b in bars])
    master = _rows(sm, [{"region": r, "symbol": s, "valid_from": dt.date(2020, 1, 1), "security_type": "stock",
                         "currency": "HKD" if r == "HK" else "USD", "name": s}
                        for r, codes in SYMBOLS.items() for s in codes])
    rates = _rows(fxd, [{"region": "HK", "currency": "HKD", "trade_date": d, "usd_per_unit": fx, "pair": "USDHKD",
                         "pair_close": 1 / fx} for d in days])
    lake.replace_many([
        (kd, golden, parts, None), (ka, adjusted, parts, None),
        (sm, master, [{"region": r, "source": "itick"} for r in SYMBOLS], None),
        (fxd, rates, [{"region": "HK", "month": m, "source": "itick"} for m in _months(days)], None)])


@pytest.fixture
def lake_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    lake = Lakehouse(Catalog.from_settings(home), home / "state")
    write_lake(lake)
    lake.close()
    monkeypatch.setenv("TICKLAKE_HOME", str(home))
    for name in ("TICKLAKE_CATALOG", "TICKLAKE_STORAGE_URL", "TICKLAKE_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    return home


def _tenants(tmp_path) -> Tenants:
    path = tmp_path / "tenants.toml"
    path.write_text(textwrap.dedent(TENANTS))
    return Tenants.load(path, environ=KEYS)


class _Served:
    """The app under a real uvicorn server on a loopback port, in a thread; `with` gives an httpx client of it."""

    def __init__(self, app) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning",
                                                    lifespan="on", access_log=False))  # as `ticklake serve`
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> httpx.Client:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert self.thread.is_alive(), "the server stopped"
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.server.config.port}", timeout=60)
        return self.client

    def __exit__(self, *exc) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(60)


def _client(tmp_path, **config) -> _Served:
    return _Served(create_app(ApiConfig(_tenants(tmp_path), **{"snapshot_ms": 0, **config})))


def _auth(tenant: str) -> dict:
    return {"Authorization": f"Bearer {KEYS[f'KEY_{tenant.upper()}']}"}


def _audit(home: Path) -> list[dict]:
    with connect(home) as con:
        cur = con.execute("SELECT * FROM api_audit ORDER BY requested_at, trace_id")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


# ------------------------------------------------------------------------------------------------ answers


def test_json_has_only_the_requested_fields_from_one_snapshot(tmp_path, lake_home):
    with _client(tmp_path) as client:
        r = client.get("/v1/klines_daily", params={"symbols": "AAPL", "fields": "trade_date,close,volume",
                                                   "start": "2024-01-02", "end": "2024-01-05"},
                       headers=_auth("research"))
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/json"
        body = r.json()
        assert body["fields"] == ["trade_date", "close", "volume"]
        assert body["rows"] == 4 == len(body["data"])
        assert body["data"][0] == {"trade_date": "2024-01-02", "close": 5.0, "volume": 1000.0}  # adjusted
        assert body["snapshot"] == int(r.headers["X-Lake-Snapshot"])
        assert body["dataset"] == "klines_daily"
        assert r.headers["X-Cache"] == "miss"
        assert len(r.headers["X-Trace-Id"]) == 32
        again = client.get("/v1/klines_daily", params={"fields": "trade_date,close,volume", "symbols": "AAPL",
                                                       "end": "2024-01-05", "start": "2024-01-02"},
                           headers={**_auth("research"), "X-Trace-Id": "my-trace-0001"})
        assert again.headers["X-Cache"] == "hit"  # the same statement, parameters in another order
        assert again.content == r.content
        assert again.headers["X-Trace-Id"] == "my-trace-0001"
        assert client.get("/v1/klines_daily", params={"symbols": "AAPL"}, headers={
            **_auth("research"), "X-Trace-Id": "bad trace id!"}).headers["X-Trace-Id"] != "bad trace id!"


def test_usd_tenant_gets_converted_prices_and_its_window_as_csv(tmp_path, lake_home):
    with _client(tmp_path) as client:
        r = client.get("/v1/klines_daily", params={"format": "csv", "regions": "HK"}, headers=_auth("risk"))
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "text/csv; charset=utf-8"
        lines = r.text.strip().splitlines()
        assert lines[0] == '"symbol","trade_date","close","volume"'
        assert len(lines) == 1 + len(JANUARY)  # July is outside risk's window
        assert lines[1] == '"700",2024-01-01,1.25,1000'  # 10 HKD x 0.125 USD/HKD
        p = client.get("/v1/klines_daily", params={"format": "parquet", "symbols": "AAPL,700",
                                                   "fields": "close"}, headers=_auth("risk"))
        assert p.headers["content-type"] == "application/vnd.apache.parquet"
        table = pq.read_table(io.BytesIO(p.content))
        assert table.column_names == ["close"]
        assert sorted(table.column("close").to_pylist()) == [1.25] * len(JANUARY) + [10.0] * len(JANUARY)
        assert "USD" in table.schema.field("close").metadata[b"doc"].decode()


@pytest.mark.parametrize(("tenant", "params", "status", "rule"), [
    ("risk", {"fields": "*"}, 400, "'*' is not one of field names"),
    ("risk", {"symbols": "AAPL' OR 1=1 --"}, 400, "is not one of instrument codes"),
    ("risk", {"symbols": "AAPL;DROP TABLE klines_daily"}, 400, "is not one of instrument codes"),
    ("risk", {"regions": "JP"}, 403, "region JP is outside tenant risk's grant"),
    ("risk", {"start": "2023-12-29"}, 403, "start 2023-12-29 is outside tenant risk's window"),
    ("risk", {"end": "2024-07-01"}, 403, "end 2024-07-01 is outside tenant risk's window"),
    ("risk", {"fields": "open"}, 403, "field 'open' of klines_daily is not in tenant risk's grant"),
    ("risk", {"format": "xlsx"}, 400, "format='xlsx' is not one of json, csv, parquet"),
    ("risk", {"field": "close"}, 400, "unknown parameter 'field'"),
    ("risk", {"start": "yesterday"}, 400, "is not a date"),
    ("tiny", {"fields": "volume"}, 403, "field 'volume' of klines_daily is not in tenant tiny's grant"),
])
def test_hostile_requests_are_refused_naming_the_rule(tmp_path, lake_home, tenant, params, status, rule):
    with _client(tmp_path) as client:
        r = client.get("/v1/klines_daily", params=params, headers=_auth(tenant))
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["status"] == status
    assert rule in error["rule"]
    assert error["trace_id"] == r.headers["X-Trace-Id"]
    assert "Traceback" not in r.text


def test_repeated_parameters_another_dataset_and_unknown_routes(tmp_path, lake_home):
    with _client(tmp_path) as client:
        r = client.get("/v1/klines_daily?symbols=AAPL&symbols=MSFT", headers=_auth("risk"))
        assert (r.status_code, r.json()["error"]["rule"]) == (400, "give symbols once (a comma-separated list)")
        r = client.get("/v1/fx_daily", headers=_auth("risk"))
        assert r.status_code == 403
        assert "dataset 'fx_daily' is not in tenant risk's grant" in r.json()["error"]["rule"]
        r = client.get("/v1/fx_daily", headers=_auth("research"))
        assert r.status_code == 200
        assert r.json()["fields"] == ["region", "currency", "trade_date", "usd_per_unit"]
        r = client.get("/nowhere", headers=_auth("risk"))
        assert r.status_code == 404
        assert "no such route" in r.json()["error"]["rule"]
        assert client.post("/v1/klines_daily", headers=_auth("risk")).status_code == 405


def test_no_key_or_a_wrong_key_is_401_without_saying_whether_a_tenant_exists(tmp_path, lake_home):
    with _client(tmp_path) as client:
        none = client.get("/v1/klines_daily")
        wrong = client.get("/v1/klines_daily", headers={"Authorization": "Bearer risk-not-the-key"})
        basic = client.get("/v1/klines_daily", headers={"Authorization": "Basic cmlzazpyaXNr"})
    for r in (none, wrong, basic):
        assert r.status_code == 401
        assert "WWW-Authenticate" in r.headers
        assert "risk" not in r.json()["error"]["rule"]
        assert "tenant" not in r.json()["error"]["rule"].split("your")[0]
    assert wrong.json()["error"]["rule"] == basic.json()["error"]["rule"]


def test_a_tenant_over_its_limit_gets_429_and_others_are_unaffected(tmp_path, lake_home):
    with _client(tmp_path) as client:
        statuses = [client.get("/v1/klines_daily", params={"symbols": "AAPL"}, headers=_auth("tiny")).status_code
                    for _ in range(4)]
        assert statuses[:2] == [200, 200]  # the burst
        refused = client.get("/v1/klines_daily", headers=_auth("tiny"))
        assert refused.status_code == 429
        assert refused.headers["Retry-After"].isdigit()
        assert int(refused.headers["Retry-After"]) >= 1
        assert "over its rate limit of 0.5 requests per second" in refused.json()["error"]["rule"]
        others = [client.get("/v1/klines_daily", params={"symbols": "AAPL"}, headers=_auth("risk")).status_code
                  for _ in range(20)]
        assert others == [200] * 20


def _redis_db() -> tuple[str, str]:
    """The test Redis (a db of its own, 11) and a key prefix no other test uses."""
    require("Redis", "127.0.0.1", 6379)
    return REDIS_URL.rsplit("/", 1)[0] + "/11", f"ticklake-test:{uuid.uuid4().hex[:8]}:"


def test_the_limit_is_shared_across_two_app_instances_through_redis(tmp_path, lake_home):
    url, prefix = _redis_db()
    with _client(tmp_path, redis_url=url, redis_prefix=prefix) as one, \
            _client(tmp_path, redis_url=url, redis_prefix=prefix) as two:
        first = one.get("/v1/klines_daily", params={"symbols": "AAPL"}, headers=_auth("tiny"))
        second = two.get("/v1/klines_daily", params={"symbols": "AAPL"}, headers=_auth("tiny"))
        third = one.get("/v1/klines_daily", params={"symbols": "AAPL"}, headers=_auth("tiny"))
        fourth = two.get("/v1/klines_daily", params={"symbols": "AAPL"}, headers=_auth("tiny"))
        assert [first.status_code, second.status_code, third.status_code, fourth.status_code] == [200, 200, 429, 429]
        assert int(fourth.headers["Retry-After"]) >= 1
        assert second.headers["X-Cache"] == "hit"  # the answer the first instance cached, in Redis
        assert two.get("/v1/klines_daily", params={"symbols": "AAPL"}, headers=_auth("risk")).status_code == 200
        assert one.get("/health").json()["cache"] == "redis"


def test_a_commit_during_requests_never_mixes_two_snapshots(tmp_path, lake_home):
    """A writer commits klines_daily and fx_daily together, each commit HKD closes x and FX 1/x: a USD answer cut
    from one snapshot converts every HKD close to exactly 1 USD; one read across two snapshots would not."""
    lake = Lakehouse(Catalog.from_settings(lake_home), lake_home / "state")
    stop = threading.Event()
    commits = []

    def writer():
        k = 0
        while not stop.is_set() and k < 15:
            k += 1
            x = 2.0 ** (k % 5 + 1)
            write_lake(lake, close=x, fx=1 / x)
            commits.append(k)

    thread = threading.Thread(target=writer)
    seen = set()
    with _client(tmp_path, cache_seconds=0) as client:
        thread.start()
        try:
            while thread.is_alive() or not seen:
                r = client.get("/v1/klines_daily", params={"regions": "HK", "fields": "trade_date,close"},
                               headers=_auth("risk"))
                assert r.status_code == 200, r.text
                body = r.json()
                closes = {row["close"] for row in body["data"]}
                assert closes in ({1.0}, {1.25}), (body["snapshot"], closes)  # 1.25: the lake before the writer
                seen.add(body["snapshot"])
        finally:
            stop.set()
            thread.join(120)
    lake.close()
    assert len(commits) >= 2
    assert len(seen) >= 2


# ------------------------------------------------------------------------------------------------ audit and errors


def test_every_request_is_audited_and_the_key_appears_nowhere(tmp_path, lake_home, caplog):
    caplog.set_level(logging.DEBUG)
    key = KEYS["KEY_RISK"]
    with _client(tmp_path, audit_flush_ms=100) as client:
        assert client.get("/v1/klines_daily", params={"symbols": "AAPL"}, headers=_auth("risk")).status_code == 200
        assert client.get("/v1/klines_daily", params={"symbols": key}, headers=_auth("risk")).json()["rows"] == 0
        assert client.get("/v1/klines_daily", params={"fields": key}, headers=_auth("risk")).status_code == 400
        assert client.get(f"/v1/{key}", headers=_auth("risk")).status_code == 403
        assert client.get("/v1/klines_daily", params={key: "1"}, headers=_auth("risk")).status_code == 400
        assert client.get("/v1/klines_daily", headers={"Authorization": f"Bearer {key}x"}).status_code == 401
        assert client.get("/v1/klines_daily").status_code == 401
        assert client.get(f"/{key}", headers=_auth("risk")).status_code == 404
        answers = client.get("/v1/klines_daily", params={"regions": key}, headers=_auth("risk")).text
        answers += client.get("/v1/klines_daily", params={"format": key}, headers=_auth("risk")).text
    assert key not in answers
    assert "<key>" in answers
    rows = _audit(lake_home)
    assert sorted(r["status"] for r in rows) == [200, 200, 400, 400, 400, 400, 401, 401, 403, 404]
    [ok] = [r for r in rows if r["symbols"] == "AAPL"]
    assert (ok["tenant"], ok["dataset"], ok["fields"], ok["regions"], ok["format"], ok["rows"], ok["cache"]) == (
        "risk", "klines_daily", "symbol,trade_date,close,volume", "US,HK", "json", len(JANUARY), "miss")
    assert (ok["start"], ok["end"]) == (dt.date(2024, 1, 1), dt.date(2024, 6, 30))
    assert ok["key_id"] == _tenants(tmp_path).get("risk").api.key_id
    assert ok["snapshot"] is not None
    assert ok["bytes"] > 0
    assert ok["latency_ms"] > 0
    unauthenticated = [r for r in rows if r["status"] == 401]
    assert [(r["tenant"], r["key_id"]) for r in unauthenticated] == [(None, None), (None, None)]
    assert {r["rule"][:9] for r in unauthenticated} == {"send your", "the API k"}
    assert [r["symbols"] for r in rows if r["status"] == 200 and r["rows"] == 0] == ["<key>"]  # scrubbed too
    assert all(r["source"] == "api" and r["trace_id"] for r in rows)
    for row in rows:
        for value in row.values():
            assert key not in str(value), row
    server_side = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]  # not the client's
    assert server_side  # the server's loggers were captured (filelock's, at least)
    assert not [r for r in server_side if key in r.getMessage()]


def test_an_unreadable_lake_is_503_naming_the_setting_never_a_password(tmp_path, lake_home, monkeypatch):
    monkeypatch.setenv("TICKLAKE_HOME", str(tmp_path / "no-lake-here"))
    with _client(tmp_path, audit=False) as client:
        r = client.get("/v1/klines_daily", headers=_auth("risk"))
        assert r.status_code == 503, r.text
        assert "no lake at" in r.json()["error"]["rule"] or "no tables yet" in r.json()["error"]["rule"]
        assert client.get("/health").status_code == 503
        assert client.get("/v1/klines_daily", params={"fields": "open"}, headers=_auth("risk")).status_code == 403
    monkeypatch.setenv("TICKLAKE_CATALOG", "postgres:host=127.0.0.1 port=1 dbname=x user=u password=Sekr1tPw")
    with _client(tmp_path, audit=False) as client:
        r = client.get("/v1/klines_daily", headers=_auth("risk"))
    assert r.status_code == 503, r.text
    assert "TICKLAKE_CATALOG" in r.json()["error"]["rule"]
    assert "Sekr1tPw" not in r.text


def test_an_internal_error_is_500_with_the_trace_id_only(tmp_path, lake_home):
    app = create_app(ApiConfig(_tenants(tmp_path), audit=False))

    def boom(*_args):
        raise RuntimeError("a detail no client should see")

    app.state.api.reader.answer = boom
    with _Served(app) as client:
        r = client.get("/v1/klines_daily", headers=_auth("risk"))
    assert r.status_code == 500
    assert "detail no client" not in r.text
    assert "Traceback" not in r.text
    assert r.headers["X-Trace-Id"] in r.json()["error"]["rule"]


def test_the_openapi_document_lists_every_dataset_parameter_and_error(tmp_path, lake_home):
    with _client(tmp_path) as client:
        doc = client.get("/openapi.json").json()
        assert client.get("/health").json()["status"] == "ok"
    assert set(doc["paths"]) == {"/v1/klines_daily", "/v1/fx_daily", "/health"}
    get = doc["paths"]["/v1/klines_daily"]["get"]
    assert [p["name"] for p in get["parameters"]] == ["fields", "symbols", "start", "end", "regions", "format"]
    assert {"200", "400", "401", "403", "429", "503"} <= set(get["responses"])
    assert "Retry-After" in get["responses"]["429"]["headers"]
    row = get["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["data"]["items"]
    assert "adjustment_factor" in row["properties"]  # research's adjusted grant


# ------------------------------------------------------------------------------------------------ the command


def _serve(env: dict, port: int) -> subprocess.Popen:
    command = [str(Path(sys.executable).parent / "ticklake"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_ticklake_serve_answers_over_loopback_and_flushes_the_audit_on_shutdown(tmp_path, lake_home):
    tenants = tmp_path / "tenants.toml"
    tenants.write_text(textwrap.dedent(TENANTS))
    env = {**os.environ, **KEYS, "TICKLAKE_HOME": str(lake_home), "TICKLAKE_TENANTS": str(tenants),
           "TICKLAKE_API_AUDIT_FLUSH_MS": "60000"}
    port = free_port()
    proc = _serve(env, port)
    try:
        wait_until_serving(proc, port)
        r = httpx.get(f"http://127.0.0.1:{port}/v1/klines_daily", params={"symbols": "700", "fields": "close"},
                      headers=_auth("risk"), timeout=10)
        assert r.status_code == 200
        assert r.json()["data"][0] == {"close": 1.25}
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, -signal.SIGTERM), err  # uvicorn re-raises the signal once it has shut down
    assert [r["status"] for r in _audit(lake_home)] == [200]  # flushed on shutdown, not by the timer
    assert KEYS["KEY_RISK"] not in out + err
    bad = tmp_path / "bad.toml"
    bad.write_text(textwrap.dedent(TENANTS).replace('klines_daily = ["trade_date", "close"]',
                                                    'klines_daily = ["trade_date", "secret"]'))
    refused = subprocess.run([str(Path(sys.executable).parent / "ticklake"), "serve", "--port", str(port)],
                             env={**env, "TICKLAKE_TENANTS": str(bad)}, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2
    assert "tenants.tiny.datasets.klines_daily" in refused.stderr
    assert "unknown field 'secret'" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def test_a_cursor_per_thread_reads_the_same_lake(lake_home):
    """The API's connection model: one read-only connection, a cursor per thread with the lake selected."""
    con = connect(lake_home)
    cursor = con.cursor()
    cursor.execute("USE lake")
    assert cursor.execute("SELECT count(*) FROM klines_daily").fetchone()[0] == 3 * len(JANUARY + JULY)
    with pytest.raises(duckdb.Error):
        cursor.execute("DELETE FROM klines_daily")  # read-only: the API can never write the lake's data
    con.close()


def test_an_audit_commit_keeps_the_cache_and_a_data_commit_is_never_hidden(tmp_path, lake_home):
    app = create_app(ApiConfig(_tenants(tmp_path), snapshot_ms=0))
    ask = {"params": {"symbols": "AAPL", "fields": "close"}, "headers": _auth("research")}
    with _Served(app) as client:
        first = client.get("/v1/klines_daily", **ask)
        assert first.headers["X-Cache"] == "miss"
        assert app.state.api.audit.flush() == 1  # a lake commit of api_audit only
        client.get("/health")  # a snapshot check, after the audit's commit
        again = client.get("/v1/klines_daily", **ask)
        assert (again.headers["X-Cache"], again.headers["X-Lake-Snapshot"]) == ("hit", first.headers["X-Lake-Snapshot"])
        lake = Lakehouse(Catalog.from_settings(lake_home), lake_home / "state")
        write_lake(lake, close=20.0)
        lake.close()
        client.get("/health")
        after = client.get("/v1/klines_daily", **ask)
        assert after.headers["X-Cache"] == "miss"
        assert int(after.headers["X-Lake-Snapshot"]) > int(first.headers["X-Lake-Snapshot"])
        assert after.json()["data"][0] == {"close": 10.0}  # adjusted: 20 / 2
