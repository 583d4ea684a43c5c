"""Stock markets ticklake knows: iTick region code -> authoritative trading calendar and time zone.

The calendar comes from `exchange_calendars` (never from the dates seen in the data), so a stray
bar on a holiday is detected instead of silently becoming a session.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache

import exchange_calendars as xcals
import pandas as pd


@dataclass(frozen=True)
class Market:
    region: str  # iTick `region` parameter
    calendar: str  # exchange_calendars name
    timezone: str  # IANA zone the exchange trades in; bar timestamps are converted here
    currency: str


MARKETS: dict[str, Market] = {
    m.region: m
    for m in (
        Market("US", "XNYS", "America/New_York", "USD"),
        Market("HK", "XHKG", "Asia/Hong_Kong", "HKD"),
        Market("SH", "XSHG", "Asia/Shanghai", "CNY"),
        Market("SZ", "XSHG", "Asia/Shanghai", "CNY"),
        Market("JP", "XTKS", "Asia/Tokyo", "JPY"),
        Market("GB", "XLON", "Europe/London", "GBP"),
        Market("DE", "XFRA", "Europe/Berlin", "EUR"),
        Market("SG", "XSES", "Asia/Singapore", "SGD"),
    )
}

DEFAULT_REGIONS: tuple[str, ...] = ("US", "HK", "SH", "JP")


def market(region: str) -> Market:
    """The market for an iTick region code, or a clear error listing the supported ones."""
    try:
        return MARKETS[region]
    except KeyError:
        raise ValueError(
            f"unknown region {region!r}; supported regions: {', '.join(sorted(MARKETS))}"
        ) from None


@lru_cache(maxsize=32)
def _calendar(name: str) -> xcals.ExchangeCalendar:
    # Building a calendar costs ~100 ms; a wide fixed span keeps one instance per process. Some calendars
    # (XSHG) only know holidays up to the current year, so the span ends at the latest year they allow.
    year = dt.date.today().year
    for end in (f"{year + 1}-12-31", f"{year}-12-31"):
        try:
            return xcals.get_calendar(name, start="2000-01-01", end=end)
        except ValueError as exc:
            error = exc
    raise error


class CalendarRangeError(ValueError):
    """The date lies beyond what the installed exchange calendar knows: never guess it is a holiday."""


def _known(region: str, day: dt.date) -> xcals.ExchangeCalendar:
    cal = _calendar(market(region).calendar)
    if pd.Timestamp(day) > cal.last_session:
        raise CalendarRangeError(
            f"the installed exchange_calendars knows {cal.name} ({region}) sessions only through "
            f"{cal.last_session.date()}, not {day}; upgrade the exchange-calendars package"
        )
    return cal


def sessions(region: str, start: dt.date, end: dt.date) -> list[dt.date]:
    """Trading sessions of `region` in [start, end], oldest first."""
    if end < start:
        return []
    cal = _known(region, end)
    lo = max(pd.Timestamp(start), cal.first_session)
    hi = pd.Timestamp(end)
    if hi < lo:
        return []
    return [ts.date() for ts in cal.sessions_in_range(lo, hi)]


def is_session(region: str, day: dt.date) -> bool:
    cal = _known(region, day)
    ts = pd.Timestamp(day)
    return bool(cal.first_session <= ts and cal.is_session(ts))


def last_completed_session(region: str, now: dt.datetime) -> dt.date | None:
    """The most recent session whose close is at or before `now` (aware UTC)."""
    cal = _calendar(market(region).calendar)
    minute = pd.Timestamp(now).tz_convert("UTC").floor("min")
    day = minute.normalize().tz_localize(None)
    candidates = cal.sessions_in_range(day - pd.Timedelta(days=15), min(day + pd.Timedelta(days=1), cal.last_session))
    done = [s for s in candidates if cal.session_close(s) <= minute]
    return done[-1].date() if done else None
