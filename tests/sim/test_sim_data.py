"""Data semantics: paging, determinism, ground truth vs wire, invariants, splits, bar_time variants."""

from __future__ import annotations

import datetime as dt
import re
import warnings
import zoneinfo

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from itick_sim import SimSettings, Simulator
from itick_sim.markets import MARKETS

NOW = dt.datetime(2025, 6, 30, 23, 0, tzinfo=dt.UTC)


def kline(client, code, region="US", **params):
    return client.get("/stock/kline", params={"region": region, "code": code, "kType": 8, **params}).json()


@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("inclusive", [True, False])
def test_et_paging_walks_whole_history(client_for, order, inclusive):
    sim = Simulator(SimSettings(now=NOW, sort_order=order, et_inclusive=inclusive, max_limit=400))
    c = client_for(sim)
    code = sim.universe("US")[0].code
    truth = sim.daily_bars("US", code)["t"].tolist()
    seen: list[int] = []
    et = None
    for _ in range(100):
        params = {"limit": 1000} if et is None else {"limit": 1000, "et": et}
        data = kline(c, code, **params)["data"]
        if not data:
            break
        ts = [b["t"] for b in data]
        assert ts == sorted(ts, reverse=order == "desc")
        assert len(data) <= 400
        seen = sorted(ts) + seen
        et = min(ts) - 1 if inclusive else min(ts)
    assert seen == truth  # no gap, no overlap


def test_ground_truth_equals_wire(sim, client_for):
    c = client_for(sim)
    for region in ("US", "JP", "HK"):
        codes = [s.code for s in sim.universe(region)]
        data = c.get("/stock/klines", params={"region": region, "codes": ",".join(codes), "kType": 8,
                                              "limit": 100000}).json()["data"]
        for code in codes:
            gt = sim.daily_bars(region, code).tail(1000)
            wire = pd.DataFrame(data[code], columns=["t", "o", "h", "l", "c", "v", "tu"])
            pd.testing.assert_frame_equal(gt.drop(columns="trade_date").reset_index(drop=True), wire,
                                          check_dtype=False)


def test_the_same_settings_serve_the_same_bars_and_a_later_clock_only_appends():
    a = Simulator(SimSettings(now=NOW))
    b = Simulator(SimSettings(now=NOW))
    big = Simulator(SimSettings(now=NOW, symbols_per_region=45))
    later = Simulator(SimSettings(now=NOW + dt.timedelta(days=200)))
    other_seed = Simulator(SimSettings(now=NOW, seed=7))
    env = {"REQUEST_METHOD": "GET", "PATH_INFO": "/stock/klines", "HTTP_TOKEN": "t"}
    codes = ",".join(s.code for s in a.universe("US"))

    def body(sim):
        out = []
        res = sim({**env, "QUERY_STRING": f"region=US&codes={codes}&kType=8&limit=5000"},
                  lambda *args: out.append(args))
        return b"".join(res)

    assert body(a) == body(b)
    big_specs = {s.code: s for s in big.universe("US")}
    assert all(big_specs[s.code] == s for s in a.universe("US"))
    assert len(big_specs) > len(a.universe("US"))
    assert [s.code for s in other_seed.universe("US")] != [s.code for s in a.universe("US")]
    for spec in a.universe("US"):
        x = a.daily_bars("US", spec.code)
        pd.testing.assert_frame_equal(x, big.daily_bars("US", spec.code))
        y = later.daily_bars("US", spec.code)
        pd.testing.assert_frame_equal(x, y.iloc[: len(x)])  # the clock only appends bars


def test_every_universe_has_ipos_delistings_splits_and_its_markets_currency(sim):
    for region in sim.settings.regions:
        u = sim.universe(region)
        start = sim.settings.history_start
        ipos = [s for s in u if s.listed > start]
        delisted = [s for s in u if s.delisted is not None]
        assert 15 <= len(u) <= 20  # IPOs after `now` are not visible yet
        assert 1 <= len(ipos) <= 4
        assert len(delisted) >= 1
        assert all(s.currency == MARKETS[region].currency for s in u)
        # delisted codes are listed on the wire by default
        assert len(sim.splits(region)) >= 1


def test_without_list_delisted_the_symbol_list_omits_delisted_codes(client_for):
    sim = Simulator(SimSettings(now=NOW, list_delisted=False))
    data = client_for(sim).get("/symbol/list", params={"type": "stock", "region": "US"}).json()["data"]
    gone = {s.code for s in sim.universe("US") if s.delisted is not None}
    assert gone
    assert not gone & {x["c"] for x in data}


def check_invariants(sim: Simulator, region: str) -> None:
    sessions = sim.calendar(region)
    session_set = set(sessions)
    now_local = pd.Timestamp(sim.now()).tz_convert(MARKETS[region].tz)
    missing_total = 0
    for spec in sim.universe(region):
        df = sim.daily_bars(region, spec.code)
        if df.empty:
            continue
        assert (df["l"] > 0).all()
        assert (df["l"] <= df[["o", "c"]].min(axis=1)).all()
        assert (df["h"] >= df[["o", "c"]].max(axis=1)).all()
        assert (df["v"] > 0).all()
        assert df["trade_date"].is_monotonic_increasing
        assert df["trade_date"].is_unique
        assert set(df["trade_date"]) <= session_set
        assert df["trade_date"].iloc[0].date() >= max(spec.listed, sim.settings.history_start)
        if spec.delisted is not None:
            assert df["trade_date"].iloc[-1].date() < spec.delisted
        assert df["trade_date"].iloc[-1].date() <= now_local.date()
        lo = max(spec.listed, sim.settings.history_start)
        hi = spec.delisted or (now_local.date() + dt.timedelta(days=1))
        window = sessions[(sessions >= pd.Timestamp(lo)) & (sessions < pd.Timestamp(hi))]
        missing_total += len(window) - len(df)  # suspended days
        lot = 1 if region in ("US", "GB") else 100
        assert (df["v"] % lot == 0).all() or region == "HK"
    assert missing_total > 0


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**40), region=st.sampled_from(["US", "HK", "SH", "SZ", "JP", "GB"]),
       days=st.integers(0, 4000))
def test_bars_keep_their_invariants_for_any_seed_region_and_clock(seed, region, days):
    now = dt.datetime(2015, 3, 1, 12, tzinfo=dt.UTC) + dt.timedelta(days=days)
    sim = Simulator(SimSettings(seed=seed, now=now, regions=(region,), symbols_per_region=10))
    check_invariants(sim, region)


def test_a_session_still_open_has_no_bar():
    # 2025-06-30 is a Monday; at 15:00 New York time the session is still open
    during = dt.datetime(2025, 6, 30, 19, 0, tzinfo=dt.UTC)
    after = dt.datetime(2025, 6, 30, 20, 0, tzinfo=dt.UTC)
    for now, last in ((during, dt.date(2025, 6, 27)), (after, dt.date(2025, 6, 30))):
        sim = Simulator(SimSettings(now=now, regions=("US",), bar_time="open"))
        df = pd.concat([sim.daily_bars("US", s.code) for s in sim.universe("US")])
        assert df["trade_date"].max().date() == last


def test_split_visible_in_raw_closes(sim):
    found = 0
    for region in sim.settings.regions:
        for sp in sim.splits(region):
            df = sim.daily_bars(region, sp.code).set_index("trade_date")
            before = df[df.index < pd.Timestamp(sp.ex_date)]
            after = df[df.index >= pd.Timestamp(sp.ex_date)]
            if before.empty or after.empty:
                continue
            jump = before["c"].iloc[-1] / after["o"].iloc[0]
            expected = sp.ratio_to / sp.ratio_from
            assert abs(np.log(jump / expected)) < 0.15, (sp, jump)
            vol_jump = after["v"].iloc[:20].median() / before["v"].iloc[-20:].median()
            assert abs(np.log(vol_jump / expected)) < 1.2
            found += 1
    assert found >= 3


@pytest.mark.parametrize("bar_time", ["close", "open", "local_midnight", "utc_midnight"])
@pytest.mark.parametrize("region", ["US", "HK", "JP", "GB"])
def test_bar_time_maps_back_to_session(client_for, bar_time, region):
    sim = Simulator(SimSettings(now=NOW, bar_time=bar_time, regions=(region,)))
    c = client_for(sim)
    zone = "UTC" if bar_time == "utc_midnight" else MARKETS[region].tz
    spec = sim.universe(region)[0]
    data = kline(c, spec.code, region=region, limit=300)["data"]
    dates = [dt.datetime.fromtimestamp(b["t"] / 1000, dt.UTC).astimezone(zoneinfo.ZoneInfo(zone)).date()
             for b in data]
    gt = sim.daily_bars(region, spec.code).tail(300)
    assert dates == [d.date() for d in gt["trade_date"]]
    if bar_time.endswith("midnight"):
        local = [dt.datetime.fromtimestamp(b["t"] / 1000, dt.UTC).astimezone(zoneinfo.ZoneInfo(zone)) for b in data]
        assert all((x.hour, x.minute) == (0, 0) for x in local)


def test_index_and_forex_ground_truth(sim, client_for):
    c = client_for(sim)
    for asset, code in (("indices", "HSI"), ("forex", "USDJPY")):
        gt = sim.daily_bars("GB", code, asset=asset)
        wire = c.get(f"/{asset}/kline", params={"region": "GB", "code": code, "kType": 8,
                                                  "limit": 1000}).json()["data"]
        assert [b["t"] for b in wire] == gt["t"].tail(1000).tolist()
        assert [b["c"] for b in wire] == gt["c"].tail(1000).tolist()
    fx = sim.daily_bars("GB", "EURUSD", asset="forex")
    assert (fx["trade_date"].dt.day_of_week < 5).all()


@pytest.mark.parametrize("ktype", [9, 10])
def test_weekly_and_monthly_bars_aggregate_the_daily_bars(sim, client_for, ktype):
    c = client_for(sim)
    code = sim.universe("US")[0].code
    daily = sim.daily_bars("US", code)
    data = c.get("/stock/kline", params={"region": "US", "code": code, "kType": ktype,
                                         "limit": 12}).json()["data"]
    assert len(data) == 12
    freq = "W-SUN" if ktype == 9 else "M"
    grp = daily.groupby(daily["trade_date"].dt.to_period(freq))
    agg = pd.DataFrame({"h": grp["h"].max(), "l": grp["l"].min(), "c": grp["c"].last(), "o": grp["o"].first(),
                        "v": grp["v"].sum()}).tail(12)
    assert [b["h"] for b in data] == agg["h"].tolist()
    assert [b["l"] for b in data] == agg["l"].tolist()
    assert [b["c"] for b in data] == agg["c"].tolist()
    assert [b["o"] for b in data] == agg["o"].tolist()
    assert [b["v"] for b in data] == agg["v"].tolist()


def test_history_before_2000_follows_exchange_calendars_and_stays_deterministic():
    import exchange_calendars as xcals

    early = dt.date(1998, 1, 2)
    sim = Simulator(SimSettings(now=NOW, regions=("US",), history_start=early))
    sessions = sim.calendar("US")
    in_1999 = sessions[(sessions >= "1999-01-01") & (sessions <= "1999-12-31")]
    with warnings.catch_warnings():  # exchange_calendars' own pandas deprecation noise
        warnings.simplefilter("ignore", DeprecationWarning)
        xnys = xcals.get_calendar("XNYS", start="1999-01-01", end="1999-12-31")
    assert list(in_1999) == list(xnys.sessions)
    assert sessions[0] == pd.Timestamp(early)
    check_invariants(sim, "US")
    # a symbol's bars depend on neither the clock nor the universe size
    bigger = Simulator(SimSettings(now=NOW + dt.timedelta(days=90), regions=("US",), history_start=early,
                                   symbols_per_region=35))
    for spec in sim.universe("US"):
        bars = sim.daily_bars("US", spec.code)
        pd.testing.assert_frame_equal(bars, bigger.daily_bars("US", spec.code).iloc[: len(bars)])


@pytest.mark.parametrize(
    ("start", "regions", "needle"),
    [(dt.date(1996, 1, 2), ("US", "JP"), "before the first XTKS (JP) session the simulator knows, 1997-01-06"),
     (dt.date(1969, 12, 31), ("US",), "history_start must be >= 1970-01-01")],
)
def test_history_before_a_calendar_is_refused(start, regions, needle):
    with pytest.raises(ValueError, match=re.escape(needle)):
        Simulator(SimSettings(now=NOW, regions=regions, history_start=start))
