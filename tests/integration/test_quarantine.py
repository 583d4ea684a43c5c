"""Graded rules: a row that breaks a hard rule goes to the quarantine table (rule, reason, raw values) while the rest
of the page is written, and what is stored for that code and date stays; too many broken rows fail the step with
nothing of that page written. Genuine large moves and zero-volume days are not broken rows."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest

from ticklake.datasets.context import RunContext
from ticklake.datasets.klines import ingest_daily_bars, universe
from ticklake.datasets.security_master import refresh_securities
from ticklake.dictionary.schemas import DataValidationError

pytestmark = pytest.mark.integration
NOW = dt.datetime(2024, 6, 28, 23, 0, tzinfo=dt.UTC)
JUNE = [dt.date(2024, 6, d) for d in range(1, 29)]
DAY = dt.date(2024, 6, 27)


class BreakingSource:
    """The real iTick source over loopback, with some bars of each page made impossible (low above high), as a
    misbehaving backend would send them."""

    def __init__(self, source, broken: set[str]):
        self._source, self.broken = source, broken
        self.name = source.name

    def __getattr__(self, name):
        return getattr(self._source, name)

    def fetcher(self, dataset):
        inner, broken = self._source.fetcher(dataset), self.broken

        class Breaking:
            def extract(self, query):
                for page in inner.extract(query):
                    bars = page.bars.copy()
                    hit = bars["symbol"].astype(str).isin(broken) & (bars["trade_date"] == DAY.isoformat())
                    bars.loc[hit, "low"] = bars.loc[hit, "high"] * 2
                    yield dataclasses.replace(page, bars=bars)

            transform = inner.transform

        return Breaking() if dataset == "klines_daily" else inner


def _setup(make_server, resources_for):
    server = make_server()
    resources = resources_for(server)
    source, storage = resources["itick"].source(), resources["storage"]
    lake = storage.lakehouse()
    refresh_securities(RunContext(lake, "ref", NOW, source), "US")
    ingest_daily_bars(RunContext(lake, "good", NOW, source), "US", dates=JUNE, codes=universe(lake, "US"))
    return source, lake


def _rows(lake, sql: str, params=None) -> list[tuple]:
    with lake.reader() as con:
        return con.execute(sql, params or []).fetchall()


def test_a_broken_row_is_quarantined_and_the_rest_written(make_server, resources_for):
    source, lake = _setup(make_server, resources_for)
    codes = universe(lake, "US")
    victim = codes[0]
    before = _rows(lake, "SELECT * FROM klines_daily WHERE symbol = ? AND trade_date = ?", [victim, DAY])
    assert before
    day_rows = _rows(lake, "SELECT count(*) FROM klines_daily WHERE trade_date = ?", [DAY])
    later = NOW + dt.timedelta(hours=1)
    result = ingest_daily_bars(RunContext(lake, "breaking", later, BreakingSource(source, {victim})),
                               "US", dates=JUNE, codes=codes)
    assert result.rejected_rows == 1
    [(rule, reason, raw, run)] = _rows(lake, "SELECT rule, reason, raw, run_id FROM quarantine")
    assert rule == "low <= min(open, close)"
    assert reason.startswith("low <= min(open, close): low=")
    assert json.loads(raw)["symbol"] == victim
    assert run == "breaking"
    # what was stored for the victim on that date stays, as it was; every other row of the page was written
    assert _rows(lake, "SELECT * FROM klines_daily WHERE symbol = ? AND trade_date = ?", [victim, DAY]) == before
    assert _rows(lake, "SELECT count(*) FROM klines_daily WHERE trade_date = ?", [DAY]) == day_rows
    # the same broken row sent again is recorded once
    ingest_daily_bars(RunContext(lake, "breaking-again", later, BreakingSource(source, {victim})),
                      "US", dates=JUNE, codes=codes)
    assert _rows(lake, "SELECT count(*) FROM quarantine") == [(1,)]


def test_too_many_broken_rows_fail_the_step_and_keep_what_is_stored(make_server, resources_for, monkeypatch):
    source, lake = _setup(make_server, resources_for)
    monkeypatch.setenv("TICKLAKE_MAX_REJECTED_SHARE", "0.02")  # 6 of the page's ~220 rows broken: above it
    codes = universe(lake, "US")
    with lake.reader() as con:
        before = con.execute("SELECT * FROM klines_daily ORDER BY ALL").fetchall()
    broken = RunContext(lake, "broken", NOW + dt.timedelta(hours=1), BreakingSource(source, set(codes[:6])))
    with pytest.raises(DataValidationError, match="low <= min"):
        ingest_daily_bars(broken, "US", dates=JUNE, codes=codes)
    with lake.reader() as con:
        assert con.execute("SELECT * FROM klines_daily ORDER BY ALL").fetchall() == before
