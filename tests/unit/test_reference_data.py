"""Reference data, pure part: the holidays and IPO parsers, the trading calendar frame, the point-in-time security
master's observations, and the securities list that keeps the codes which left it."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticklake.datasets.security_master import latest, merge_security_master, observation
from ticklake.datasets.trading_calendar import disagreements
from ticklake.dictionary.reference_data import SECURITY_MASTER
from ticklake.sources.calendars import calendar_frame
from ticklake.sources.itick.fetchers.listings import IpoPayloadError, ipo_listing_dates
from ticklake.sources.itick.fetchers.trading_calendar import HolidayPayloadError, parse_holidays
from ticklake.sources.queries import CalendarQuery
from ticklake.storage.write_modes import merge_intervals


def _entry(region: str, year: int, dates: list[str] | str) -> dict:
    v = dates if isinstance(dates, str) else json.dumps(dates)
    return {"c": region, "r": "x", "tz": 0, "et": "09:30 - 16:00", "v": v, "ey": str(year), "vr": None}


@given(st.lists(st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2030, 12, 31)), max_size=30))
def test_holidays_round_trip(dates):
    raw = [_entry("US", 2024, [d.isoformat() for d in dates]), _entry("HK", 2024, ["2024-01-02"])]
    assert parse_holidays(raw, "US") == {2024: set(dates)}


@pytest.mark.parametrize(("v", "said"), [
    ("not json", "not a JSON list"), ('{"a": 1}', "not a JSON list"), ('["2024-13-01"]', "'2024-13-01'"),
    ('["2024/01/01"]', "'2024/01/01'"), ("[20240101]", "20240101"), ('["2024-1-1"]', "'2024-1-1'"),
])
def test_a_malformed_holiday_is_a_clear_error(v, said):
    with pytest.raises(HolidayPayloadError, match="US year '2024'") as err:
        parse_holidays([_entry("US", 2024, v)], "US")
    assert said in str(err.value)


def test_a_year_that_is_not_a_year_and_an_answer_that_is_not_a_list_are_refused():
    with pytest.raises(HolidayPayloadError, match="`ey` is not a year"):
        parse_holidays([{**_entry("US", 2024, []), "ey": "twenty"}], "US")
    with pytest.raises(HolidayPayloadError, match="expected a list"):
        parse_holidays({"c": "US"}, "US")


def test_the_calendar_frame_has_every_day_and_the_sources_view_only_for_published_years():
    query = CalendarQuery("US", dt.date(2024, 12, 30), dt.date(2025, 1, 3))
    frame = calendar_frame(query, {2024: {dt.date(2024, 12, 25)}})  # 2025 not published
    assert [d.date() for d in frame["date"]] == [dt.date(2024, 12, 30) + dt.timedelta(days=i) for i in range(5)]
    assert frame["is_session"].tolist() == [True, True, False, True, True]  # New Year's Day
    assert frame["source_is_session"].tolist()[:2] == [True, True]
    assert frame["source_is_session"].isna().tolist() == [False, False, True, True, True]
    assert disagreements(frame).empty  # silence is not a disagreement
    wrong = calendar_frame(query, {2024: {dt.date(2024, 12, 31)}, 2025: set()})
    assert [d.date() for d in disagreements(wrong)["date"]] == [dt.date(2024, 12, 31), dt.date(2025, 1, 1)]


def test_weekends_are_never_sessions_for_the_source():
    frame = calendar_frame(CalendarQuery("JP", dt.date(2024, 6, 1), dt.date(2024, 6, 2)), {2024: set()})
    assert frame["source_is_session"].tolist() == [False, False]
    assert frame["is_session"].tolist() == [False, False]


def test_ipo_dates_are_exchange_local():
    tokyo_midnight = int(pd.Timestamp("2024-01-18", tz="Asia/Tokyo").timestamp() * 1000)  # 2024-01-17 15:00 UTC
    frame = ipo_listing_dates([{"dt": tokyo_midnight, "sc": "5822", "cn": "x"},
                               {"dt": tokyo_midnight + 86_400_000, "sc": "5822"}], "JP")
    assert frame["symbol"].tolist() == ["5822"]
    assert frame["listing_date"].tolist() == [pd.Timestamp("2024-01-18")]  # a repeat keeps the earliest


@pytest.mark.parametrize(("item", "said"), [({"sc": "A"}, "`dt` is not epoch ms"), ({"dt": 1}, "no code"),
                                            ({"dt": "x", "sc": "A"}, "`dt` is not epoch ms"),
                                            ({"dt": 1, "sc": "A B"}, "item 0"), ("x", "not an object")])
def test_a_malformed_ipo_item_is_a_clear_error(item, said):
    with pytest.raises(IpoPayloadError, match="/stock/ipo US") as err:
        ipo_listing_dates([item], "US")
    assert said in str(err.value)


def _listed(symbols: dict[str, str | None]) -> pd.DataFrame:
    return pd.DataFrame({
        "region": pd.array(["US"] * len(symbols), dtype="string"),
        "symbol": pd.array(list(symbols), dtype="string"),
        "name": pd.array([s.lower() for s in symbols], dtype="string"),
        "security_type": pd.array(["stock"] * len(symbols), dtype="string"),
        "exchange": pd.array(["NYSE"] * len(symbols), dtype="string"),
        "listing_date": pd.to_datetime(list(symbols.values())).astype("datetime64[ms]"),
    })


def _fold(stored, listed, day):
    obs = observation(listed, stored, day)
    obs = obs.assign(source="itick", ingested_at=pd.Timestamp(day, tz="UTC").as_unit("ms"), run_id=str(day))
    return merge_intervals(stored, obs, day, SECURITY_MASTER)[0]


def test_observations_carry_listing_dates_and_mark_vanished_symbols_delisted_once():
    d1, d2, d3, d4 = (dt.date(2024, 6, d) for d in (3, 4, 5, 6))
    master = _fold(None, _listed({"A": "2020-01-02", "B": None}), d1)
    master = _fold(master, _listed({"A": None, "B": None}), d2)  # the IPO list forgot A: its date is kept
    assert len(master) == 2
    master = _fold(master, _listed({"A": None}), d3)  # B vanished
    again = _fold(master, _listed({"A": None}), d3)  # the same day again: nothing changes
    pd.testing.assert_frame_equal(again, master)
    master = _fold(master, _listed({"A": None}), d4)  # still gone: still delisted on d3
    now = latest(master).set_index("symbol")
    assert now.loc["A", "listing_date"] == pd.Timestamp("2020-01-02")
    assert now.loc["B", "delisting_date"] == pd.Timestamp(d3)
    b = master[master["symbol"] == "B"].sort_values("valid_from")
    assert b["valid_to"].tolist()[0] == pd.Timestamp(d3)
    assert len(b) == 2
    master = _fold(master, _listed({"A": None, "B": None}), dt.date(2024, 6, 7))  # B back: listed again
    assert pd.isna(latest(master).set_index("symbol").loc["B", "delisting_date"])


def _listing(*codes: str) -> pd.DataFrame:
    return pd.DataFrame({
        "region": pd.array(["US"] * len(codes), dtype="string"),
        "symbol": pd.array(list(codes), dtype="string"),
        "name": pd.array([c.lower() for c in codes], dtype="string"),
        "security_type": pd.array(["stock"] * len(codes), dtype="string"),
        "exchange": pd.array(["NASDAQ"] * len(codes), dtype="string"),
    })


def test_the_securities_list_keeps_the_codes_that_left_it_and_when_each_was_seen():
    day1, day2 = dt.date(2024, 1, 2), dt.date(2024, 1, 3)
    first = merge_security_master(None, _listing("A", "B"), day1)
    second = merge_security_master(first, _listing("B", "C"), day2).set_index("symbol")
    assert set(second.index) == {"A", "B", "C"}
    assert not second.loc["A", "in_latest_list"]
    assert second.loc["A", "last_seen"] == pd.Timestamp(day1)
    assert second.loc["B", "first_seen"] == pd.Timestamp(day1)
    assert second.loc["B", "last_seen"] == pd.Timestamp(day2)
    assert second.loc["C", "first_seen"] == pd.Timestamp(day2)
    assert second.loc["C", "in_latest_list"]
