"""Pure parts of fundamentals: the budget planner, staleness, the P/E band, valuation, and the iTick transforms."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import settings as settings_h
from hypothesis import strategies as st

from ticklake import settings
from ticklake.datasets.fundamentals import (
    pe_band,
    pe_percentiles,
    plan_refresh,
    staleness,
    valuation_frame,
)
from ticklake.dictionary.frames import with_lineage
from ticklake.dictionary.fundamentals import FX_DAILY
from ticklake.dictionary.schemas import validate
from ticklake.sources.itick.fetchers.fundamentals_daily import FundamentalsDailyFetcher, StockInfoPayloadError
from ticklake.sources.itick.fetchers.fx_daily import FxDailyFetcher, pair_for, weekday_chunks
from ticklake.sources.queries import FxQuery, StockInfoQuery

D = dt.date(2024, 7, 1)


def test_plan_takes_never_fetched_first_then_oldest_with_ties_by_code():
    last = {"A": dt.date(2024, 6, 20), "B": dt.date(2024, 6, 10), "C": dt.date(2024, 6, 10), "D": D, "E": None}
    plan = plan_refresh(["E", "D", "C", "B", "A", "F", "F"], last, D, budget=4)
    assert plan.refresh == ("E", "F", "B", "C")  # never fetched (by code), then the oldest, ties by code
    assert plan.skipped == ("A",)
    assert plan.fresh == ("D",)  # refreshed on this as_of already: costs nothing
    assert plan.budget == 4


@pytest.mark.parametrize("budget", [0, 1, 5, 100])
def test_plan_never_exceeds_its_budget_and_loses_no_code(budget):
    codes = [f"C{i:02d}" for i in range(12)]
    last = {c: D - dt.timedelta(days=i % 4) for i, c in enumerate(codes[:8])}
    plan = plan_refresh(codes, last, D, budget)
    assert len(plan.refresh) <= budget
    assert sorted(plan.refresh + plan.skipped + plan.fresh) == codes


def test_plan_refuses_a_negative_budget():
    with pytest.raises(ValueError, match="negative"):
        plan_refresh(["A"], {}, D, -1)


def test_staleness_counts_never_fetched_and_the_oldest_snapshot():
    s = staleness(["A", "B", "C"], {"A": dt.date(2024, 6, 25), "B": dt.date(2024, 6, 29)}, D)
    assert (s.never_fetched, s.oldest_as_of, s.days) == (1, dt.date(2024, 6, 25), 6)
    assert staleness(["A"], {}, D).days is None


def test_budget_default_follows_the_plan_and_the_variable_overrides_it(monkeypatch):
    monkeypatch.delenv("TICKLAKE_FUNDAMENTALS_BUDGET", raising=False)
    assert settings.fundamentals_budget(5) == 5 * settings.FUNDAMENTALS_DEFAULT_MINUTES
    monkeypatch.setenv("TICKLAKE_FUNDAMENTALS_BUDGET", "7")
    assert settings.fundamentals_budget(120) == 7
    monkeypatch.setenv("TICKLAKE_FUNDAMENTALS_BUDGET", "-3")
    with pytest.raises(settings.ConfigError, match="TICKLAKE_FUNDAMENTALS_BUDGET"):
        settings.fundamentals_budget(5)


def test_pe_percentile_is_the_share_of_the_trailing_window_at_or_below():
    dates = pd.Series(pd.to_datetime(["2018-01-01", "2020-01-01", "2022-01-01", "2023-01-01", "2024-01-01"]))
    pe = pd.Series([50.0, 10.0, np.nan, 30.0, 20.0])
    percentile, history = pe_percentiles(dates, pe, years=5, min_history=2)
    # 2024-01-01's window is (2019-01-01, 2024-01-01]: 10, 30, 20 -> two of three are <= 20
    assert percentile[4] == pytest.approx(2 / 3)
    assert history.tolist() == [1, 2, 2, 2, 3]  # the window is (as_of - 5y, as_of]: 2018-01-01 left it by 2023
    assert np.isnan(percentile[0])  # one P/E: below the minimum history
    assert np.isnan(percentile[2])  # a null P/E has no place in its band
    assert percentile[3] == pytest.approx(1.0)  # 30 is the highest of 10, 30


@settings_h(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["A", "B", "C"]), st.integers(0, 4000),
                          st.one_of(st.none(), st.floats(1, 100, allow_nan=False))), min_size=1, max_size=60,
                unique_by=lambda r: (r[0], r[1])),
       st.integers(0, 4000))
def test_the_band_of_many_symbols_at_once_is_each_symbols_own_band(rows, since_day):
    """pe_band keys every symbol's window at once; it must equal the band computed one symbol at a time."""
    frame = pd.DataFrame(rows, columns=["symbol", "day", "pe"])
    frame["as_of"] = pd.Timestamp("2014-01-01") + pd.to_timedelta(frame["day"], unit="D")
    frame["pe"] = frame["pe"].astype("float64")
    since = (pd.Timestamp("2014-01-01") + pd.Timedelta(days=since_day)).date()
    together, history = pe_band(frame["symbol"], frame["as_of"], frame["pe"], min_history=3, since=since)
    for _, rows_of in frame.groupby("symbol"):
        alone, alone_history = pe_percentiles(rows_of["as_of"], rows_of["pe"], min_history=3, since=since)
        np.testing.assert_array_equal(together[rows_of.index], alone)
        np.testing.assert_array_equal(history[rows_of.index], alone_history)
        due = (rows_of["as_of"] >= pd.Timestamp(since)).to_numpy() & ~np.isnan(rows_of["pe"].to_numpy())
        for i in np.flatnonzero(due & (alone_history >= 3)):  # the definition, by brute force
            day = rows_of["as_of"].iloc[i]
            window = rows_of[(rows_of["as_of"] > day - pd.DateOffset(years=5)) & (rows_of["as_of"] <= day)]["pe"]
            window = window.dropna()
            assert alone[i] == pytest.approx((window <= rows_of["pe"].iloc[i]).mean())


def _fundamentals(rows):
    return pd.DataFrame(rows, columns=["region", "symbol", "as_of", "currency", "market_cap", "pe"]).assign(
        as_of=lambda f: pd.to_datetime(f["as_of"]))


def test_valuation_uses_the_last_fx_close_on_or_before_as_of_and_one_for_usd():
    fundamentals = _fundamentals([("HK", "700", "2024-06-29", "HKD", 1000.0, 12.0),
                                  ("HK", "9988", "2024-06-28", None, 500.0, None),
                                  ("HK", "ADR", "2024-06-28", "USD", 80.0, 5.0)])
    fx = pd.DataFrame({"currency": ["HKD", "HKD"], "trade_date": pd.to_datetime(["2024-06-27", "2024-06-28"]),
                       "usd_per_unit": [0.128, 0.125]})
    out = valuation_frame(fundamentals, fx, "HK").set_index("symbol")
    assert out.loc["700", "market_cap_usd"] == pytest.approx(125.0)  # Saturday: Friday's close
    assert out.loc["700", "fx_date"] == pd.Timestamp("2024-06-28")
    assert out.loc["9988", "currency"] == "HKD"  # no currency: the market's
    assert out.loc["9988", "market_cap_usd"] == pytest.approx(62.5)
    assert out.loc["ADR", "usd_per_unit"] == 1.0
    assert pd.isna(out.loc["ADR", "fx_date"])
    assert pd.isna(out.loc["9988", "pe_percentile"])


def test_valuation_without_any_fx_close_leaves_usd_null():
    out = valuation_frame(_fundamentals([("JP", "7203", "2024-06-28", "JPY", 1e9, 9.0)]),
                          pd.DataFrame(columns=["currency", "trade_date", "usd_per_unit"]), "JP")
    assert pd.isna(out["market_cap_usd"].iloc[0])


def test_stock_info_transform_reads_the_wire_fields():
    raw = {"700": {"c": "700", "n": "Tencent", "e": "HKEX", "s": "Tech", "i": "Internet", "mcb": 3.5e12,
                   "tso": 9.4e9, "pet": None, "fcc": "hkd"}, "GONE": None}
    frame = FundamentalsDailyFetcher(None).transform(StockInfoQuery("HK", ("700", "GONE"), D), raw)
    assert frame.drop(columns="pe").to_dict("records") == [{
        "region": "HK", "symbol": "700", "as_of": pd.Timestamp(D), "market_cap": 3.5e12,
        "shares_outstanding": 9.4e9, "currency": "HKD",
        "name": "Tencent", "exchange": "HKEX", "sector": "Tech", "industry": "Internet"}]
    assert np.isnan(frame["pe"].iloc[0])  # no P/E (e.g. losses): null, not zero


@pytest.mark.parametrize(("info", "message"), [({"tso": 1.0}, "no `mcb`"),
                                               ({"mcb": "n/a", "tso": 1.0}, "not a number")])
def test_stock_info_transform_refuses_an_unusable_answer(info, message):
    with pytest.raises(StockInfoPayloadError, match=message):
        FundamentalsDailyFetcher(None).transform(StockInfoQuery("HK", ("700",), D), {"700": info})


def test_each_currency_reads_its_usd_pair_the_right_way_round():
    assert pair_for("JPY") == ("USDJPY", True)
    assert pair_for("EUR") == ("EURUSD", False)
    with pytest.raises(ValueError, match="USD"):
        pair_for("USD")
    t = int(pd.Timestamp("2024-06-28 22:00", tz="UTC").value // 1_000_000)
    bar = {"t": t, "o": 1.0, "h": 1.0, "l": 1.0, "v": 0.0, "tu": 0.0}
    raw = [{"USDJPY": [{**bar, "c": 160.0}], "EURUSD": [{**bar, "c": 1.07}]}]
    frame = FxDailyFetcher(None).transform(FxQuery("JP", ("EUR", "JPY"), dt.date(2024, 6, 1), D), raw)
    rates = frame.set_index("currency")["usd_per_unit"]
    assert rates["JPY"] == pytest.approx(1 / 160.0)
    assert rates["EUR"] == pytest.approx(1.07)
    validate(with_lineage(frame, "itick", "r", dt.datetime(2024, 7, 1, tzinfo=dt.UTC)), FX_DAILY)


def test_fx_calls_cover_the_window_in_chunks_of_1000_weekdays():
    chunks = weekday_chunks(dt.date(2016, 1, 1), dt.date(2024, 6, 28))
    assert sum(n for _, n in chunks) == len(pd.bdate_range("2016-01-01", "2024-06-28"))
    assert all(n <= 1000 for _, n in chunks)
    assert chunks[0][0] == dt.date(2024, 6, 28)
