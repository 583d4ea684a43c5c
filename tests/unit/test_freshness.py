"""Freshness per region: the due session follows each exchange's own midnight and calendar, across DST changes and
holidays, and only the due session's own bars make a region fresh."""

from __future__ import annotations

import datetime as dt

import pytest

from ticklake import settings
from ticklake.quality.freshness import assess, due_session, session_midnight

SIX = dt.timedelta(hours=6)


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def d(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


@pytest.mark.parametrize(
    ("region", "now", "due"),
    [
        # US, summer (EDT, UTC-4): Monday's bars are due Tuesday 06:00 EDT = 10:00 UTC
        ("US", "2024-06-25 09:59", "2024-06-21"),
        ("US", "2024-06-25 10:00", "2024-06-24"),
        # the night after the spring-forward Sunday (2024-03-10): Monday's midnight is already EDT, so the deadline
        # is 10:00 UTC, not the 11:00 UTC a fixed EST offset would give
        ("US", "2024-03-12 09:59", "2024-03-08"),
        ("US", "2024-03-12 10:00", "2024-03-11"),
        # Friday before it is still EST: due at Saturday 06:00 EST = 11:00 UTC
        ("US", "2024-03-09 10:59", "2024-03-07"),
        ("US", "2024-03-09 11:00", "2024-03-08"),
        # fall back (2024-11-03): Friday 11-01 due at Saturday 06:00 EDT = 10:00 UTC, Monday 11-04 at 06:00 EST = 11:00
        ("US", "2024-11-02 10:00", "2024-11-01"),
        ("US", "2024-11-05 10:59", "2024-11-01"),
        ("US", "2024-11-05 11:00", "2024-11-04"),
        # London springs forward on 2024-03-31 inside the Easter holidays: Good Friday (03-29) and Easter Monday
        # (04-01) are no sessions, so Thursday stays the due session until Tuesday's bars fall due on Wednesday
        # 06:00 BST = 05:00 UTC
        ("GB", "2024-03-29 06:00", "2024-03-28"),
        ("GB", "2024-04-02 12:00", "2024-03-28"),
        ("GB", "2024-04-03 04:59", "2024-03-28"),
        ("GB", "2024-04-03 05:00", "2024-04-02"),
        # Hong Kong has no DST: 06:00 HKT = 22:00 UTC the day before
        ("HK", "2024-06-25 21:59", "2024-06-24"),
        ("HK", "2024-06-25 22:00", "2024-06-25"),
    ],
)
def test_due_session_follows_the_exchanges_own_midnight(region, now, due):
    assert due_session(region, utc(now), SIX) == d(due)


def test_the_allowed_lag_is_elapsed_hours():
    assert due_session("US", utc("2024-06-25 04:00"), dt.timedelta(0)) == d("2024-06-24")  # at midnight EDT
    assert due_session("US", utc("2024-06-25 03:59"), dt.timedelta(0)) == d("2024-06-21")
    assert due_session("US", utc("2024-06-26 03:59"), dt.timedelta(hours=24)) == d("2024-06-21")
    assert due_session("US", utc("2024-06-26 04:00"), dt.timedelta(hours=24)) == d("2024-06-24")


def test_age_counts_the_hours_a_dst_weekend_really_lasts():
    assert session_midnight("US", d("2024-03-08")) == utc("2024-03-09 05:00")  # EST
    assert session_midnight("US", d("2024-03-11")) == utc("2024-03-12 04:00")  # EDT
    spring = assess("US", utc("2024-03-11 04:00"), SIX, d("2024-03-08"), {d("2024-03-08"): 12})
    assert spring.age_hours == 47.0  # Saturday EST midnight to Monday EDT midnight: one hour short of 48
    autumn = assess("US", utc("2024-11-04 05:00"), SIX, d("2024-11-01"), {d("2024-11-01"): 12})
    assert autumn.age_hours == 49.0  # Saturday EDT midnight to Monday EST midnight: one hour more


def test_fresh_when_the_due_session_is_stored_however_old_the_data_looks():
    after_easter = assess("GB", utc("2024-04-02 12:00"), SIX, d("2024-03-28"), {d("2024-03-28"): 30})
    assert not after_easter.stale
    assert after_easter.age_hours == 108.0  # a four-day weekend, not a stale region
    assert after_easter.sessions_behind == 0
    assert after_easter.summary().startswith("GB: fresh, 2024-03-28 stored")


def test_stale_when_the_due_session_is_missing():
    late = assess("US", utc("2024-06-26 12:00"), SIX, d("2024-06-21"), {})
    assert late.stale
    assert late.due == d("2024-06-25")
    assert late.deadline == utc("2024-06-26 10:00")
    assert late.sessions_behind == 2  # Monday and Tuesday
    assert late.age_hours == 104.0  # since Saturday 00:00 EDT
    assert "no bars for 2024-06-25 (due by 2024-06-26 06:00 EDT)" in late.summary()


def test_backfilling_an_old_month_does_not_make_a_region_fresh():
    # only the latest stored date and the due session's own rows count, never "something was written recently"
    backfilled = assess("US", utc("2024-06-26 12:00"), SIX, d("2024-01-31"), {d("2024-01-31"): 12})
    assert backfilled.stale
    assert backfilled.sessions_behind == 100  # every session from February to 2024-06-25


def test_a_hole_at_the_due_session_is_stale_even_with_later_bars_stored():
    # a month-end session missing while the next month's first bars arrived
    hole = assess("US", utc("2024-07-02 04:00"), SIX, d("2024-07-01"), {d("2024-06-28"): 0})
    assert hole.due == d("2024-06-28")
    assert hole.stale
    assert hole.sessions_behind == 1


def test_nothing_stored_is_stale_with_no_age():
    empty = assess("JP", utc("2024-06-26 12:00"), SIX, None, {})
    assert empty.stale
    assert empty.age_hours is None
    assert empty.sessions_behind is None
    assert "nothing stored" in empty.summary()


def test_freshness_hours_default_and_override(monkeypatch):
    monkeypatch.delenv("TICKLAKE_FRESHNESS_HOURS", raising=False)
    assert settings.freshness_hours() == 6
    monkeypatch.setenv("TICKLAKE_FRESHNESS_HOURS", "0")
    assert settings.freshness_hours() == 0
    monkeypatch.setenv("TICKLAKE_FRESHNESS_HOURS", "168")
    assert settings.freshness_hours() == 168
