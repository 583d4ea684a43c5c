"""History before 2000 end to end: the simulator serves it, the calendar knows it, the source fetches all of it."""

from __future__ import annotations

import datetime as dt
import warnings

import exchange_calendars as xcals
import pandas as pd
import pytest

import ticklake
from tests.conftest import TOKEN
from ticklake import markets
from ticklake.sources.itick.config import ITickConfig
from ticklake.sources.itick.source import open_source


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


@pytest.mark.slow
def test_1999_is_stored_through_the_cli_on_the_real_calendar(make_server, tmp_path):
    """The user's path: `dagster asset materialize` over 1999 with TICKLAKE_START_DATE=1999-01-01 stores every
    XNYS session of 1999 (it used to store the year as holidays, zero rows, green)."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path


    root = Path(__file__).resolve().parents[2]
    server = make_server(regions=("US",), history_start=dt.date(1998, 6, 1))
    (tmp_path / "dagster").mkdir()
    shutil.copyfile(root / "instance" / "dagster.yaml", tmp_path / "dagster" / "dagster.yaml")
    env = {**os.environ, "ITICK_BASE_URL": server.url, "ITICK_TOKEN": TOKEN, "ITICK_PLAN": "100000",
           "TICKLAKE_HOME": str(tmp_path / "home"), "DAGSTER_HOME": str(tmp_path / "dagster"),
           "TICKLAKE_REGIONS": "US", "TICKLAKE_START_DATE": "1999-01-01"}
    dagster = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "definitions"]
    for args in (["--select", "securities", "--partition", "US"],
                 ["--select", "klines_daily", "--partition-range", "1999-01|US...1999-12|US"]):
        out = subprocess.run([*dagster, *args], cwd=root, env=env, capture_output=True, text=True, timeout=240,
                             check=False)
        assert out.returncode == 0, out.stderr[-3000:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        xnys = [ts.date() for ts in xcals.get_calendar("XNYS", start="1999-01-01", end="1999-12-31").sessions]
    with ticklake.connect(tmp_path / "home") as con:
        days = [r[0] for r in con.execute("SELECT DISTINCT trade_date FROM klines_daily ORDER BY 1").fetchall()]
        rows = con.execute("SELECT count(*) FROM klines_daily").fetchall()[0][0]
        status = con.execute("SELECT sum(sessions), bool_and(complete), count(*) FROM lake_partitions "
                             "WHERE dataset = 'klines_daily'").fetchall()[0]
    assert days == xnys
    truth = sum(int((server.simulator.daily_bars("US", s.code)["trade_date"].dt.year == 1999).sum())
                for s in server.simulator.universe("US"))
    assert rows == truth > 0
    assert status == (252, True, 12)
