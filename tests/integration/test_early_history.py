"""History before 2000 end to end: the simulator serves it, the calendar knows it, the source fetches all of it."""

from __future__ import annotations

import datetime as dt
import warnings

import exchange_calendars as xcals
import pandas as pd

from tests.conftest import TOKEN
from ticklake import markets
from ticklake.itick.config import ITickConfig
from ticklake.itick.source import open_source


def test_1999_bars_land_exactly_on_the_252_nyse_sessions(make_server, home):
    server = make_server(regions=("US",), history_start=dt.date(1998, 6, 1))
    with warnings.catch_warnings():  # exchange_calendars' own pandas deprecation noise
        warnings.simplefilter("ignore", DeprecationWarning)
        xnys = [ts.date() for ts in xcals.get_calendar("XNYS", start="1999-01-01", end="1999-12-31").sessions]
    sessions = markets.sessions("US", dt.date(1999, 1, 1), dt.date(1999, 12, 31))
    assert sessions == xnys
    assert len(sessions) == 252
    config = ITickConfig(base_url=server.url, token=TOKEN, plan="100000", home=str(home), fetch_processes=1)
    codes = sorted(s.code for s in server.simulator.universe("US"))
    pages = list(open_source(config).daily_bars("US", codes, sessions))
    got = pd.concat([p.bars for p in pages], ignore_index=True).sort_values(["symbol", "trade_date"])
    assert sorted({d.date() for d in got["trade_date"]}) == xnys  # every session has bars, and only sessions
    truth = pd.concat([server.simulator.daily_bars("US", c).assign(symbol=c) for c in codes], ignore_index=True)
    truth = truth[truth["trade_date"].dt.year == 1999].sort_values(["symbol", "trade_date"])
    assert len(got) == len(truth)
    assert (got["trade_date"].to_numpy() == truth["trade_date"].to_numpy()).all()
    assert (got["close"].to_numpy() == truth["c"].to_numpy()).all()
    assert all(p.answered == set(codes) and not p.missing for p in pages)
