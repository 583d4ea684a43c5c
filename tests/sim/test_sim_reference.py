"""Reference data agrees with the bars: IPO calendar, fundamentals through splits, late splits, holidays, FX."""

from __future__ import annotations

import datetime as dt
import json
import re
import zoneinfo

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from itick_sim import SimSettings, Simulator
from itick_sim.__main__ import parser, settings_from_args
from itick_sim.markets import FOREX, INDICES, MARKETS

NOW = dt.datetime(2025, 6, 30, 23, 0, tzinfo=dt.UTC)
EARLY = dt.datetime(2019, 6, 28, 23, 0, tzinfo=dt.UTC)  # leaves plenty of IPOs upcoming
REGIONS = tuple(MARKETS)
IPO_KEYS = ["dt", "cn", "sc", "ex", "mc", "pr", "ct", "bs", "es", "ro"]
SPLIT_MOVE = np.log(1.35)  # an ex-date close is the previous close x from/to within a day's normal move


def _sim(now: dt.datetime = NOW, **kw) -> Simulator:
    return Simulator(SimSettings(now=now, regions=REGIONS, **kw))


def _local_date(ms: int, region: str) -> dt.date:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).astimezone(zoneinfo.ZoneInfo(MARKETS[region].tz)).date()


def _evening(day: dt.date, region: str) -> dt.datetime:
    """23:00 exchange-local on `day`: after its session, still the same local day."""
    return dt.datetime.combine(day, dt.time(23), zoneinfo.ZoneInfo(MARKETS[region].tz)).astimezone(dt.UTC)


def _ipo_page(client, kind: str, region: str, **params) -> dict:
    body = client.get("/stock/ipo", params={"type": kind, "region": region, **params}).json()
    assert (body["code"], body["msg"]) == (0, "ok")
    return body["data"]


def _today(sim: Simulator, region: str) -> dt.date:
    return pd.Timestamp(sim.now()).tz_convert(MARKETS[region].tz).date()


# ---------------------------------------------------------------------------------------------------- /stock/ipo
@pytest.mark.parametrize("region", REGIONS)
def test_ipo_items_are_wire_shaped_and_match_the_symbol_list(client_for, region):
    sim = _sim(EARLY)
    client = client_for(sim)
    today = _today(sim, region)
    listed = {x["c"] for x in client.get("/symbol/list", params={"type": "stock", "region": region}).json()["data"]}
    seen = 0
    for kind in ("recent", "upcoming"):
        page = _ipo_page(client, kind, region, size=100)
        assert list(page) == ["content", "page", "size", "totalElements", "totalPages", "last"]
        items = page["content"]
        assert page["totalElements"] == len(items) == len(sim.ipos(region, kind))
        assert [(x["dt"], x["sc"]) for x in items] == sorted((x["dt"], x["sc"]) for x in items)
        for x, truth in zip(items, sim.ipos(region, kind), strict=True):
            assert list(x) == IPO_KEYS
            assert all(isinstance(x[k], int) for k in ("dt", "bs", "es", "ro"))
            assert all(isinstance(x[k], str) for k in ("cn", "sc", "ex", "mc", "pr", "ct"))
            day = _local_date(x["dt"], region)
            assert day == truth.listed
            assert x["dt"] == int(pd.Timestamp(day).tz_localize(MARKETS[region].tz).value // 10**6)  # midnight
            assert x["bs"] < x["es"] < x["ro"] < x["dt"] // 1000  # seconds, in order, before listing
            assert (x["sc"], x["cn"], x["ct"]) == (truth.code, truth.name, MARKETS[region].country_code)
            assert x["ex"] in MARKETS[region].exchanges
            assert re.fullmatch(r"\d{1,3}\.\d[KMBT]", x["mc"]), x["mc"]
            if kind == "recent":
                assert sim.settings.history_start <= day <= today
                assert x["sc"] in listed
                assert x["pr"] == f"{truth.offer_price:.2f}"
            else:
                assert day > today
                assert x["sc"] not in listed  # hidden until its listing date
                lo, hi = (float(p) for p in x["pr"].split("-"))
                assert lo <= truth.offer_price <= hi
            seen += 1
    assert seen >= 1


def test_recent_ipos_first_bar_is_on_the_listing_date_and_opens_above_the_offer():
    sim = _sim()
    found = 0
    for region in REGIONS:
        for ipo in sim.ipos(region, "recent"):
            bars = sim.daily_bars(region, ipo.code)
            assert bars["trade_date"].iloc[0].date() == ipo.listed
            assert ipo.offer_price <= bars["o"].iloc[0] <= ipo.offer_price * 1.26
            assert ipo.market_cap == ipo.offer_price * ipo.shares > 0
            found += 1
    assert found >= 10


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**40), region=st.sampled_from(REGIONS), days=st.integers(0, 4000))
def test_listing_date_is_the_first_bar_for_any_seed_and_clock(seed, region, days):
    now = dt.datetime(2015, 3, 1, 12, tzinfo=dt.UTC) + dt.timedelta(days=days)
    sim = Simulator(SimSettings(seed=seed, now=now, regions=(region,), symbols_per_region=20))
    recent = {i.code: i for i in sim.ipos(region, "recent")}
    for spec in sim.universe(region):
        bars = sim.daily_bars(region, spec.code)
        ipo = recent.pop(spec.code, None)
        if ipo is not None and not bars.empty:  # none yet: listed today, its session not over
            assert bars["trade_date"].iloc[0].date() == spec.listed == ipo.listed
        elif ipo is None and not bars.empty:
            assert spec.listed < sim.settings.history_start <= bars["trade_date"].iloc[0].date()
    assert not recent  # every recent IPO is a listed symbol


def test_an_upcoming_ipo_lists_on_its_day_at_a_price_inside_its_range(client_for):
    before = _sim(EARLY)
    region = next(r for r in REGIONS if before.ipos(r, "upcoming"))
    ipo = before.ipos(region, "upcoming")[0]
    after = _sim(_evening(ipo.listed, region))
    recent = {x["sc"]: x for x in _ipo_page(client_for(after), "recent", region, size=100)["content"]}
    assert ipo.price_low <= float(recent[ipo.code]["pr"]) <= ipo.price_high
    assert after.daily_bars(region, ipo.code)["trade_date"].iloc[-1].date() == ipo.listed  # its first bar, today
    day_before = _sim(_evening(ipo.listed - dt.timedelta(days=1), region))
    assert ipo.code not in {x.code for x in day_before.ipos(region, "recent")}
    assert ipo.code in {x.code for x in day_before.ipos(region, "upcoming")}


def test_ipo_paging_and_param_errors(client_for):
    sim = _sim()
    client = client_for(sim)
    whole = _ipo_page(client, "recent", "US", size=100)
    assert whole["totalElements"] >= 2
    assert _ipo_page(client, "recent", "US")["size"] == 20  # the default page size
    p1 = _ipo_page(client, "recent", "US", page=1, size=1)
    assert (p1["page"], p1["size"], p1["totalPages"]) == (1, 1, whole["totalElements"])
    assert p1["content"] == whole["content"][1:2]
    assert p1["last"] is (whole["totalElements"] == 2)
    for params in ({"type": "soon", "region": "US"}, {"region": "US"}, {"type": "recent", "region": "XX"},
                   {"type": "recent", "region": "US", "page": -1}, {"type": "recent", "region": "US", "size": 0}):
        body = client.get("/stock/ipo", params=params).json()
        assert body["code"] == 400
        assert body["data"] is None


# ---------------------------------------------------------------------------------------------------- /stock/info
def _info(client, region: str, code: str) -> dict:
    body = client.get("/stock/info", params={"type": "stock", "region": region, "code": code}).json()
    assert body["code"] == 0, body
    return body["data"]


def _split_cases(sim: Simulator) -> list[tuple[str, str, dt.date]]:
    """(region, code, day): the sessions around some ex-dates, a delisted symbol after its delisting."""
    cases = []
    for region in ("US", "JP", "HK"):
        for sp in sim.splits(region)[:2]:
            cases += [(region, sp.code, sp.ex_date - dt.timedelta(days=1)), (region, sp.code, sp.ex_date)]
        gone = next(s for s in sim.universe(region) if s.delisted is not None)
        cases.append((region, gone.code, gone.delisted + dt.timedelta(days=30)))
    return cases


def test_info_equals_the_fundamentals_ground_truth(client_for):
    sim = _sim()
    for region, code, day in _split_cases(sim):
        truth = sim.fundamentals(region, code, day)
        data = _info(client_for(_sim(_evening(day, region))), region, code)
        assert (data["mcb"], data["tso"], data["pet"], data["fcc"]) == (
            truth["market_cap"], truth["shares_outstanding"], truth["pe"], truth["currency"])
        bars = sim.daily_bars(region, code)
        last = bars[bars["trade_date"] <= pd.Timestamp(day)].iloc[-1]
        assert truth["close"] == last["c"]
        assert truth["as_of"] == last["trade_date"].date()
        assert data["mcb"] == pytest.approx(last["c"] * data["tso"])


def test_info_keeps_a_delisted_symbols_last_values(client_for):
    sim = _sim()
    spec = next(s for s in sim.universe("US") if s.delisted is not None)
    last = sim.daily_bars("US", spec.code).iloc[-1]
    data = _info(client_for(sim), "US", spec.code)
    assert data["mcb"] == pytest.approx(last["c"] * data["tso"])
    assert data == _info(client_for(_sim(NOW + dt.timedelta(days=400))), "US", spec.code)


def test_shares_follow_splits_so_market_cap_and_pe_do_not_jump():
    sim = _sim()
    checked = 0
    for region in REGIONS:
        for sp in sim.splits(region):
            bars = sim.daily_bars(region, sp.code).set_index("trade_date")
            prev_day = bars.index[bars.index < pd.Timestamp(sp.ex_date)][-1].date()
            a, b = sim.fundamentals(region, sp.code, prev_day), sim.fundamentals(region, sp.code, sp.ex_date)
            ratio = sp.ratio_to / sp.ratio_from
            assert b["as_of"] == sp.ex_date  # an ex-date always trades
            assert b["shares_outstanding"] == pytest.approx(a["shares_outstanding"] * ratio, abs=1)
            assert abs(np.log(b["market_cap"] / a["market_cap"])) < SPLIT_MOVE
            assert abs(np.log(b["pe"] / a["pe"])) < SPLIT_MOVE + 0.02  # + an EPS quarter step
            checked += 1
    assert checked >= 5


def test_pe_moves_with_the_price_and_eps_moves_slowly():
    sim = _sim()
    for region in ("US", "JP"):
        for spec in sim.universe(region)[:5]:
            days = [d.date() for d in sim.daily_bars(region, spec.code)["trade_date"].iloc[::60]]
            rows = [sim.fundamentals(region, spec.code, d) for d in days]
            for r in rows:
                assert r["pe"] == round(r["close"] / r["eps"], 2)
            adjusted_eps = [r["eps"] * r["shares_outstanding"] for r in rows]  # the split factors cancel out
            steps = np.abs(np.diff(np.log(adjusted_eps)))
            assert steps.max() < 0.1  # no more than a couple of quarterly steps between samples
            assert len({r["pe"] for r in rows}) > len(rows) // 2


def test_fundamentals_refuses_a_symbol_not_yet_listed():
    sim = _sim(EARLY)
    ipo = next(i for r in REGIONS for i in sim.ipos(r, "upcoming"))
    with pytest.raises(KeyError):
        sim.fundamentals(ipo.region, ipo.code, ipo.listed - dt.timedelta(days=1))
    assert sim.fundamentals(ipo.region, ipo.code, ipo.listed)["as_of"] == ipo.listed


# ---------------------------------------------------------------------------------------------------- /stock/split
def _split_wire(client, region: str) -> list[dict]:
    return client.get("/stock/split", params={"region": region, "size": 1000}).json()["data"]["content"]


def test_every_published_split_shows_in_the_raw_closes(client_for):
    sim = _sim()
    client = client_for(sim)
    checked = 0
    for region in REGIONS:
        for item in _split_wire(client, region):
            fr, to = (int(x) for x in item["v"].split(":"))
            bars = sim.daily_bars(region, item["c"]).set_index("trade_date")
            ex = pd.Timestamp(_local_date(item["d"], region))
            prev = bars["c"][bars.index < ex].iloc[-1]
            assert abs(np.log(bars.loc[ex, "c"] / (prev * fr / to))) < SPLIT_MOVE, item
            checked += 1
    assert checked >= 10


def _a_recent_split(sim: Simulator, region: str = "US"):
    return sim.splits(region)[-1]


@pytest.mark.parametrize("late_codes", ["all", "this", "other"])
def test_a_late_split_is_published_after_the_delay(client_for, late_codes):
    sp = _a_recent_split(_sim())
    codes = {"all": frozenset(), "this": frozenset({sp.code}), "other": frozenset({"ZZZZ"})}[late_codes]
    delayed = late_codes != "other"

    def published(days_after: int) -> bool:
        sim = _sim(_evening(sp.ex_date + dt.timedelta(days=days_after), "US"), split_publish_delay_days=10,
                   late_split_codes=codes)
        on_wire = {(x["c"], _local_date(x["d"], "US")) for x in _split_wire(client_for(sim), "US")}
        assert sp in sim.splits("US")  # the bars split on the ex-date regardless
        assert ((sp.code, sp.ex_date) in on_wire) == (sp in sim.splits("US", published=True))
        return (sp.code, sp.ex_date) in on_wire

    assert published(3) is not delayed
    assert published(9) is not delayed
    assert published(10)


@pytest.mark.parametrize(
    ("kw", "error"),
    [({"split_publish_delay_days": -1}, ValueError), ({"split_publish_delay_days": True}, TypeError),
     ({"split_publish_delay_days": 1.5}, TypeError), ({"late_split_codes": "AAPL"}, TypeError),
     ({"late_split_codes": ("",)}, TypeError)],
)
def test_bad_split_delay_settings_are_refused(kw, error):
    with pytest.raises(error):
        SimSettings(**kw)


def test_cli_exposes_the_split_delay():
    settings = settings_from_args(parser().parse_args(["--split-publish-delay-days", "5",
                                                       "--late-split-codes", "AAA,BBB"]))
    assert settings.split_publish_delay_days == 5
    assert settings.late_split_codes == frozenset({"AAA", "BBB"})
    assert settings_from_args(parser().parse_args([])).split_publish_delay_days == 0


# ---------------------------------------------------------------------------------------------------- holidays
@pytest.mark.parametrize("history_start", [dt.date(2014, 1, 2), dt.date(1998, 1, 2)])
def test_holidays_rebuild_the_calendar_of_every_region(client_for, history_start):
    sim = Simulator(SimSettings(now=NOW, regions=REGIONS, history_start=history_start, symbols_per_region=8))
    rows = client_for(sim).get("/symbol/v2/holidays").json()["data"]
    index_of = {i.calendar: i.code for i in INDICES.values()}
    for region in REGIONS:
        mine = [r for r in rows if r["c"] == region]
        assert [r["ey"] for r in mine] == [str(y) for y in range(history_start.year, NOW.year + 2)]
        closed = {d for r in mine for d in json.loads(r["v"])}
        sessions = sim.calendar(region)
        weekdays = pd.bdate_range(history_start, sessions[-1])
        rebuilt = weekdays[~weekdays.strftime("%Y-%m-%d").isin(closed)]
        assert list(rebuilt) == list(sessions), region
        bar_days = set().union(*(set(sim.daily_bars(region, s.code)["trade_date"]) for s in sim.universe(region)))
        assert bar_days <= set(sessions)
        code = index_of.get(MARKETS[region].calendar)
        if code is not None:  # an index trades every session of its calendar
            index_days = list(sim.daily_bars("GB", code, asset="indices")["trade_date"])
            assert index_days == list(sessions[: len(index_days)])
            assert len(sessions) - len(index_days) <= 1  # today's session, while it is not over


# ---------------------------------------------------------------------------------------------------- FX
def test_every_stock_currency_has_a_usd_pair_served(client_for):
    sim = _sim()
    pairs = set()
    for region, market in MARKETS.items():
        cur = market.currency
        if cur == "USD":
            continue
        pair = next((p for p in (f"USD{cur}", f"{cur}USD") if p in FOREX), None)
        assert pair is not None, f"{region} trades in {cur}: no USD pair"
        pairs.add(pair)
    data = client_for(sim).get("/forex/klines", params={"region": "GB", "codes": ",".join(sorted(pairs)),
                                                        "kType": 8, "limit": 5}).json()["data"]
    assert set(data) == pairs
    assert all(len(bars) == 5 for bars in data.values())
    assert ("USDSGD" in FOREX) == ("SG" in MARKETS)
