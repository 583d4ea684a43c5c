"""Wire protocol: envelopes, errors, auth, quota, batch rules (over loopback HTTP and in-process)."""

from __future__ import annotations

import datetime as dt
import json
import time

import httpx
import pytest

from itick_sim import RequestCounters, SimSettings, Simulator

NOW = dt.datetime(2025, 6, 30, 23, 0, tzinfo=dt.UTC)
BAR_KEYS = ["tu", "c", "t", "v", "h", "l", "o"]


def first_code(client, region="US"):
    return client.get("/symbol/list", params={"type": "stock", "region": region}).json()["data"][0]["c"]


def test_symbol_list_shape(client):
    r = client.get("/symbol/list", params={"type": "stock", "region": "US"})
    assert r.status_code == 200
    body = r.json()
    assert body["code"] == 0
    assert body["msg"] == "ok"
    assert len(body["data"]) > 10
    item = body["data"][0]
    assert list(item) == ["c", "n", "t", "e", "s", "l"]
    assert item["t"] == "stock"
    assert item["e"] in ("NASDAQ", "NYSE")
    assert item["l"] == item["n"].lower()
    one = client.get("/symbol/list", params={"type": "stock", "region": "US", "code": item["c"]}).json()
    assert [x["c"] for x in one["data"]] == [item["c"]]
    idx = client.get("/symbol/list", params={"type": "indices", "region": "GB"}).json()["data"]
    assert {x["c"] for x in idx} == {"SPX", "DJI", "NDX", "HSI", "SSEC", "N225"}


@pytest.mark.parametrize(("region", "pattern"), [("US", r"[A-Z]{1,5}"), ("HK", r"[1-9]\d{0,3}"),
                                                 ("SH", r"(600|601|603|688)\d{3}"), ("SZ", r"(00[0-3]|30[01])\d{3}"),
                                                 ("JP", r"\d{4}"), ("GB", r"[A-Z]{2,4}")])
def test_each_region_lists_unique_codes_of_its_exchanges_shape(sim, client_for, region, pattern):
    import re

    data = client_for(sim).get("/symbol/list", params={"type": "stock", "region": region}).json()["data"]
    codes = [x["c"] for x in data]
    assert len(codes) == len(set(codes))
    assert all(re.fullmatch(pattern, c) for c in codes), codes


def test_kline_shape(client):
    code = first_code(client)
    body = client.get("/stock/kline", params={"region": "US", "code": code, "kType": 8, "limit": 5}).json()
    assert body["code"] == 0
    assert body["msg"] is None
    assert len(body["data"]) == 5
    for bar in body["data"]:
        assert list(bar) == BAR_KEYS
        assert isinstance(bar["t"], int)
        assert all(isinstance(bar[k], float) for k in ("tu", "c", "v", "h", "l", "o"))


def test_klines_batch_shape_dedupe_null(client):
    code = first_code(client)
    r = client.get("/stock/klines", params={"region": "US", "codes": f"{code},NOPEX,{code}", "kType": 8,
                                            "limit": 3})
    body = r.json()
    assert body["code"] == 0
    assert list(body["data"]) == [code, "NOPEX"]
    assert len(body["data"][code]) == 3
    assert body["data"]["NOPEX"] is None


def test_batch_omit_variant(client_for):
    sim = Simulator(SimSettings(now=NOW, unknown_code_in_batch="omit"))
    c = client_for(sim)
    code = first_code(c)
    data = c.get("/stock/klines", params={"region": "US", "codes": f"{code},NOPEX", "kType": 8,
                                          "limit": 2}).json()["data"]
    assert list(data) == [code]


def test_indices_forex(client):
    body = client.get("/indices/klines", params={"region": "GB", "codes": "SPX,N225", "kType": 8,
                                                 "limit": 2}).json()
    assert set(body["data"]) == {"SPX", "N225"}
    assert body["data"]["SPX"][0]["c"] > 500
    fx = client.get("/forex/kline", params={"region": "GB", "code": "EURUSD", "kType": 8, "limit": 3}).json()
    assert len(fx["data"]) == 3
    assert 0.5 < fx["data"][0]["c"] < 2.5
    bad = client.get("/forex/kline", params={"region": "US", "code": "EURUSD", "kType": 8, "limit": 3}).json()
    assert bad["code"] == 400


def test_info_shape(client):
    code = first_code(client, "HK")
    body = client.get("/stock/info", params={"type": "stock", "region": "HK", "code": code}).json()
    assert body["code"] == 0
    assert body["msg"] == "ok"
    d = body["data"]
    assert list(d) == ["c", "n", "t", "e", "s", "i", "l", "r", "bd", "wu", "mcb", "tso", "pet", "fcc"]
    assert d["r"] == "HK"
    assert d["fcc"] == "HKD"
    assert d["e"] == "HKEX"
    assert d["mcb"] > 0
    # leading zeros are tolerated for HK codes
    padded = client.get("/stock/info", params={"type": "stock", "region": "HK", "code": code.zfill(5)}).json()
    assert padded["data"]["c"] == code


def test_split_page(client, sim):
    body = client.get("/stock/split", params={"region": "US"}).json()
    assert body["code"] == 0
    assert body["msg"] == "ok"
    page = body["data"]
    assert set(page) == {"content", "page", "size", "totalElements", "totalPages", "last"}
    assert page["totalElements"] == len(sim.splits("US")) > 0
    item = page["content"][0]
    assert list(item) == ["d", "r", "n", "c", "v"]
    fr, to = (int(x) for x in item["v"].split(":"))
    gt = sim.splits("US")[0]
    assert (fr, to, item["c"]) == (gt.ratio_from, gt.ratio_to, gt.code)
    local = dt.datetime.fromtimestamp(item["d"] / 1000, dt.UTC).astimezone(__import__("zoneinfo").ZoneInfo(
        "America/New_York"))
    assert local.date() == gt.ex_date
    assert (local.hour, local.minute) == (0, 0)
    p1 = client.get("/stock/split", params={"region": "US", "page": 1, "size": 1}).json()["data"]
    assert p1["size"] == 1
    assert p1["page"] == 1
    assert p1["totalPages"] == page["totalElements"]


def test_every_region_publishes_holidays_and_none_is_a_session(client, sim):
    body = client.get("/symbol/v2/holidays", params={"code": "US"}).json()
    assert body["msg"] == "ok"
    rows = body["data"]
    assert [r["ey"] for r in rows] == [str(y) for y in range(2014, 2027)]
    r24 = next(r for r in rows if r["ey"] == "2024")
    assert (r24["c"], r24["r"], r24["tz"], r24["et"], r24["vr"]) == ("US", "United States", -5, "09:30 - 16:00",
                                                                       None)
    days = json.loads(r24["v"])
    assert "2024-12-25" in days
    assert "2024-07-04" in days
    sessions = {d.date().isoformat() for d in sim.calendar("US")}
    assert not sessions & set(days)
    allm = client.get("/symbol/v2/holidays").json()["data"]
    assert {r["c"] for r in allm} == set(sim.settings.regions)


def test_a_missing_or_unknown_token_is_refused_as_auth_failed(sim, client_for):
    for c in (client_for(sim, token=None), client_for(sim, token="")):
        body = c.get("/stock/kline", params={"region": "US", "code": "X", "kType": 8, "limit": 1}).json()
        assert body == {"code": "E002", "msg": "auth failed", "data": None}
    strict = Simulator(SimSettings(now=NOW, tokens=frozenset({"good"}), error_http_status=True,
                                   error_code_style="msg"))
    r = client_for(strict, token="bad").get("/symbol/list", params={"type": "stock", "region": "US"})
    assert r.status_code == 401
    assert r.json() == {"code": 1, "msg": "E002: auth failed", "data": None}
    assert client_for(strict, token="good").get("/symbol/list", params={"type": "stock",
                                                                        "region": "US"}).status_code == 200


@pytest.mark.parametrize(("style", "http", "expected", "status"), [
    ("string", False, {"code": "E001", "msg": "not found this produce", "data": None}, 200),
    ("msg", False, {"code": 1, "msg": "E001: not found this produce", "data": None}, 200),
    ("string", True, {"code": "E001", "msg": "not found this produce", "data": None}, 404),
])
def test_an_unknown_code_is_e001_in_each_configured_error_style(client_for, style, http, expected, status):
    sim = Simulator(SimSettings(now=NOW, error_code_style=style, error_http_status=http))
    c = client_for(sim)
    for path, params in [("/stock/kline", {"region": "US", "code": "NOPEX", "kType": 8, "limit": 1}),
                         ("/stock/info", {"type": "stock", "region": "US", "code": "NOPEX"})]:
        r = c.get(path, params=params)
        assert r.status_code == status
        assert r.json() == expected


@pytest.mark.parametrize(("params", "needle"), [
    ({"kType": 3, "limit": 5}, "kType 3 is not supported"),
    ({"kType": 42, "limit": 5}, "kType"),
    ({"kType": "x", "limit": 5}, "kType"),
    ({"kType": 8}, "limit"),
    ({"kType": 8, "limit": "abc"}, "limit"),
    ({"kType": 8, "limit": 0}, "limit"),
    ({"kType": 8, "limit": 5, "et": "soon"}, "et"),
    ({"limit": 5}, "kType"),
])
def test_param_errors(sim, client_for, params, needle):
    code = sim.universe("US")[0].code
    body = client_for(sim).get("/stock/kline", params={"region": "US", "code": code, **params}).json()
    assert body["code"] == 400
    assert needle in body["msg"]
    assert body["data"] is None


def test_param_error_http_status_and_region(client_for):
    sim = Simulator(SimSettings(now=NOW, error_http_status=True))
    c = client_for(sim)
    r = c.get("/stock/kline", params={"region": "XX", "code": "A", "kType": 8, "limit": 5})
    assert r.status_code == 400
    assert r.json()["code"] == 400
    assert "region" in r.json()["msg"]
    r = c.get("/nope")
    assert r.status_code == 404
    assert r.json()["code"] == 404
    assert c.post("/stock/kline").status_code == 404


def test_period_and_end_are_aliases_of_ktype_and_et(sim, client_for):
    c = client_for(sim)
    code = sim.universe("US")[0].code
    a = c.get("/stock/kline", params={"region": "US", "code": code, "kType": 8, "limit": 5,
                                      "et": 1700000000000}).content
    b = c.get("/stock/kline", params={"region": "US", "code": code, "period": 8, "limit": 5,
                                      "end": 1700000000000}).content
    assert a == b


def test_a_batch_over_the_code_cap_is_refused_and_a_repeated_code_counts_once(client_for):
    sim = Simulator(SimSettings(now=NOW, max_codes_per_call=3))
    c = client_for(sim)
    codes = [s.code for s in sim.universe("US")[:4]]
    body = c.get("/stock/klines", params={"region": "US", "codes": ",".join(codes), "kType": 8,
                                          "limit": 1}).json()
    assert body["code"] == 400
    assert "3" in body["msg"]
    assert "codes" in body["msg"]
    ok = c.get("/stock/klines", params={"region": "US", "codes": ",".join(codes[:3] + codes[:1]), "kType": 8,
                                        "limit": 1}).json()
    assert ok["code"] == 0


def test_a_limit_above_the_maximum_is_clamped_to_it(client_for):
    sim = Simulator(SimSettings(now=NOW, max_limit=50))
    code = sim.universe("US")[0].code
    data = client_for(sim).get("/stock/kline", params={"region": "US", "code": code, "kType": 8,
                                                       "limit": 1000}).json()["data"]
    assert len(data) == 50


def test_quota_429_and_recovery(client_for):
    sim = Simulator(SimSettings(now=NOW, calls_per_window=5, window_seconds=1.0))
    c = client_for(sim)
    params = {"type": "stock", "region": "US"}
    start = time.monotonic()
    statuses = [c.get("/symbol/list", params=params).status_code for _ in range(7)]
    assert time.monotonic() - start < 0.9, "test machine too slow for the 1 s window"
    assert statuses == [200] * 5 + [429, 429]
    r = c.get("/symbol/list", params=params)
    assert r.status_code == 429
    assert r.json() == {"code": 429, "msg": "your request is too much", "data": None}
    assert "retry-after" not in r.headers
    other = client_for(sim, token="other")  # quota is per token
    assert other.get("/symbol/list", params=params).status_code == 200
    time.sleep(1.05)
    assert c.get("/symbol/list", params=params).status_code == 200
    snap = sim.counters.snapshot()
    assert snap["rate_limited"] == 3
    assert snap["by_status"] == {200: 7, 429: 3}
    assert sim.counters.count("/symbol/list") == 10
    sim.counters.reset()
    assert sim.counters.total == 0


def test_counters_lose_no_count_across_threads():
    import threading

    c = RequestCounters()

    def work():
        for _ in range(1000):
            c.record("/x", 200)

    ts = [threading.Thread(target=work) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert c.total == 4000
    assert c.count("/x") == 4000


def test_loopback_concurrency_and_latency():
    from itick_sim import serve

    sim = Simulator(SimSettings(now=NOW, latency_ms=200))
    with serve(sim) as srv:
        assert srv.url.startswith("http://127.0.0.1:")
        import concurrent.futures as cf

        def call(_):
            return httpx.get(f"{srv.url}/symbol/list", params={"type": "stock", "region": "US"},
                             headers={"token": "t"}).status_code

        sim.universe("US")  # builds the calendar and universe first: the timing below is about concurrency only
        start = time.monotonic()
        with cf.ThreadPoolExecutor(8) as ex:
            assert list(ex.map(call, range(8))) == [200] * 8
        assert time.monotonic() - start < 1.2  # served concurrently, not 8 x 200 ms
    assert sim.counters.total == 8


def test_cli_refuses_remote_host():
    from itick_sim.__main__ import main

    with pytest.raises(SystemExit):
        main(["--host", "0.0.0.0", "--port", "0"])


def test_cli_history_start_reaches_the_settings_and_refuses_dates_before_the_calendars():
    from itick_sim.__main__ import main, parser, settings_from_args

    def parse(argv: list[str]) -> SimSettings:
        return settings_from_args(parser().parse_args(argv))

    settings = parse(["--port", "0", "--history-start", "1998-01-02", "--symbols", "5", "--regions", "us"])
    assert settings.history_start == dt.date(1998, 1, 2)
    assert settings.regions == ("US",)
    assert settings.symbols_per_region == 5
    assert parse(["--port", "0"]).history_start == SimSettings.history_start
    with pytest.raises(SystemExit):  # XSHG is known from 1990-12-03 only
        main(["--port", "0", "--regions", "SH", "--history-start", "1989-01-03"])
