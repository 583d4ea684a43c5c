"""Trading calendars reach back as far as exchange_calendars knows them; earlier dates are errors, not holidays."""

from __future__ import annotations

import datetime as dt
import warnings

import exchange_calendars as xcals
import pytest

from ticklake import markets


def _xcal_sessions(name: str, start: str, end: str) -> list[dt.date]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return [ts.date() for ts in xcals.get_calendar(name, start=start, end=end).sessions]


def test_1999_is_the_252_nyse_sessions_not_a_year_of_holidays():
    got = markets.sessions("US", dt.date(1999, 1, 1), dt.date(1999, 12, 31))
    assert got == _xcal_sessions("XNYS", "1999-01-01", "1999-12-31")
    assert len(got) == 252


@pytest.mark.parametrize(("region", "name", "start"), [("US", "XNYS", "1970-01-01"), ("HK", "XHKG", "1960-01-01"),
                                                       ("SH", "XSHG", "1990-12-03"), ("JP", "XTKS", "1997-01-01")])
def test_a_span_across_2000_matches_exchange_calendars_from_its_first_session(region, name, start):
    first = dt.date.fromisoformat(start)
    got = markets.sessions(region, first, dt.date(2000, 2, 29))
    assert got == _xcal_sessions(name, start, "2000-02-29")
    assert markets.coverage_start(name) == first


@pytest.mark.parametrize(
    ("region", "day", "first", "earliest"),
    [("SH", dt.date(1985, 6, 3), "1990-12-03", "1991-01-01"),  # 1990-12 holds days before XSHG is known
     ("US", dt.date(1969, 12, 31), "1970-01-02", "1970-01-01"),
     ("JP", dt.date(1996, 12, 30), "1997-01-06", "1997-01-01"),
     ("HK", dt.date(1959, 12, 31), "1960-01-01", "1960-01-01")],
)
def test_a_date_before_coverage_is_an_error_naming_the_first_session_and_the_fix(region, day, first, earliest):
    name = markets.market(region).calendar
    fix = f"set TICKLAKE_START_DATE on or after {earliest} (partitions are whole months)"
    for call in (lambda: markets.sessions(region, day, dt.date(2001, 1, 1)),
                 lambda: markets.is_session(region, day),
                 lambda: markets.last_completed_session(region, dt.datetime.combine(day, dt.time(23), dt.UTC))):
        with pytest.raises(markets.CalendarRangeError) as err:
            call()
        assert f"{name} ({region}) session, {first}" in str(err.value)
        assert fix in str(err.value)
    start = dt.date.fromisoformat(earliest)
    assert markets.earliest_start(region) == start
    whole_month = markets.sessions(region, start, start + dt.timedelta(days=30))  # the advised month is fetchable
    assert whole_month[0] >= dt.date.fromisoformat(first)


def test_early_sessions_and_completed_sessions_near_2000():
    assert markets.is_session("US", dt.date(1999, 12, 31))
    assert not markets.is_session("US", dt.date(1999, 12, 24))  # Christmas observed on Friday
    before_open = dt.datetime(2000, 1, 3, 14, 0, tzinfo=dt.UTC)
    assert markets.last_completed_session("US", before_open) == dt.date(1999, 12, 31)
    assert markets.last_completed_session("SH", dt.datetime(1990, 12, 3, 1, 0, tzinfo=dt.UTC)) is None


def test_every_supported_calendar_covers_the_fast_path():
    for m in markets.MARKETS.values():
        assert markets.coverage_start(m.calendar) <= markets.RECENT_START


def test_recent_dates_never_build_the_early_calendar():
    markets._calendar.cache_clear()
    markets.sessions("US", dt.date(2024, 1, 1), dt.date(2024, 1, 31))
    markets.last_completed_session("US", dt.datetime(2024, 1, 3, 23, tzinfo=dt.UTC))
    assert markets._calendar.cache_info().currsize == 1
    markets.sessions("US", dt.date(1999, 12, 1), dt.date(2000, 1, 31))
    assert markets._calendar.cache_info().currsize == 2


def test_dates_beyond_the_installed_calendar_are_an_error_not_a_holiday():
    with pytest.raises(markets.CalendarRangeError, match="upgrade the exchange-calendars package"):
        markets.sessions("SH", dt.date(2030, 1, 1), dt.date(2030, 1, 31))
    with pytest.raises(markets.CalendarRangeError, match="XSHG"):
        markets.is_session("SH", dt.date(2030, 1, 2))
    assert markets.sessions("US", dt.date(2024, 1, 1), dt.date(2024, 1, 5)) == [
        dt.date(2024, 1, 2), dt.date(2024, 1, 3), dt.date(2024, 1, 4), dt.date(2024, 1, 5)]
