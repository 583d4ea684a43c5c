"""Reference data agrees with the bars: holidays, FX."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest

from itick_sim import SimSettings, Simulator
from itick_sim.markets import FOREX, INDICES, MARKETS

NOW = dt.datetime(2025, 6, 30, 23, 0, tzinfo=dt.UTC)
REGIONS = tuple(MARKETS)


def _sim(now: dt.datetime = NOW, **kw) -> Simulator:
    return Simulator(SimSettings(now=now, regions=REGIONS, **kw))


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
