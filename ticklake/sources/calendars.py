"""A source's holiday list -> trading_calendar rows, beside the authoritative sessions of exchange_calendars."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping

import pandas as pd

from ticklake import markets
from ticklake.sources.queries import CalendarQuery


def calendar_frame(query: CalendarQuery, holidays: Mapping[int, Collection[dt.date]]) -> pd.DataFrame:
    """One row per calendar day of [first, last]: the authoritative `is_session` and the source's view
    (`source_is_session`: a weekday not among the year's holidays; null where the source published no year)."""
    days = pd.date_range(query.first, query.last, freq="D").as_unit("ms")
    sessions = pd.DatetimeIndex(markets.sessions(query.region, query.first, query.last)).as_unit("ms")
    closed = pd.DatetimeIndex(sorted({d for dates in holidays.values() for d in dates})).as_unit("ms")
    published = days.year.isin(list(holidays))
    source = pd.array((days.day_of_week < 5) & ~days.isin(closed), dtype="boolean")
    source[~published] = pd.NA
    return pd.DataFrame({
        "region": pd.array([query.region] * len(days), dtype="string"),
        "date": days.values.astype("datetime64[ms]"),
        "is_session": days.isin(sessions),
        "source_is_session": source,
    })
