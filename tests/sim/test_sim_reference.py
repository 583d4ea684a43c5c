"""Reference data agrees with the bars: fundamentals through splits, late splits, holidays, FX."""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo

import numpy as np
import pandas as pd
import pytest

from itick_sim import SimSettings, Simulator
from itick_sim.__main__ import parser, settings_from_args
from itick_sim.markets import FOREX, INDICES, MARKETS

NOW = dt.datetime(2025, 6, 30, 23, 0, tzinfo=dt.UTC)
REGIONS = tuple(MARKETS)
SPLIT_MOVE = np.log(1.35)  # an ex-date close is the previous close x from/to within a day's normal move


def _sim(now: dt.datetime = NOW, **kw) -> Simulator:
    return Simulator(SimSettings(now=now, regions=REGIONS, **kw))


def _local_date(ms: int, region: str) -> dt.date:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).astimezone(zoneinfo.ZoneInfo(MARKETS[region].tz)).date()


def _evening(day: dt.date, region: str) -> dt.datetime:
    """23:00 exchange-local on `day`: after its session, still the same local day."""
    return dt.datetime.combine(day, dt.time(23), zoneinfo.ZoneInfo(MARKETS[region].tz)).astimezone(dt.UTC)


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
