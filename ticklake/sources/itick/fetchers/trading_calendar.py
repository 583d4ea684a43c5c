"""iTick `trading_calendar`: /symbol/v2/holidays, whose `v` is a JSON string of YYYY-MM-DD dates per market-year."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from ticklake.dictionary.reference_data import TRADING_CALENDAR
from ticklake.sources.calendars import calendar_frame
from ticklake.sources.queries import CalendarQuery

if TYPE_CHECKING:
    from ticklake.sources.itick.source import ITickSource


class HolidayPayloadError(ValueError):
    """A holidays entry the parser cannot read; the message names the market, year and value."""


def parse_holidays(raw: Any, region: str) -> dict[int, set[dt.date]]:
    """Holidays per year of `region` from the answer's entries {c, v, ey, ...}; other markets are ignored."""
    if not isinstance(raw, list):
        raise HolidayPayloadError(f"/symbol/v2/holidays: expected a list of markets, got {type(raw).__name__}")
    years: dict[int, set[dt.date]] = {}
    for entry in raw:
        if not isinstance(entry, Mapping) or str(entry.get("c") or "").upper() != region.upper():
            continue
        where = f"/symbol/v2/holidays {region} year {entry.get('ey')!r}"
        try:
            year = int(str(entry.get("ey")))
        except ValueError:
            raise HolidayPayloadError(f"{where}: `ey` is not a year") from None
        years.setdefault(year, set()).update(_dates(entry.get("v"), where))
    return years


def _dates(value: Any, where: str) -> list[dt.date]:
    try:
        items = json.loads(value) if isinstance(value, str) else value
    except json.JSONDecodeError as exc:
        raise HolidayPayloadError(f"{where}: `v` is not a JSON list of dates ({exc}): {str(value)[:80]!r}") from None
    if items is None:
        return []
    if not isinstance(items, list):
        raise HolidayPayloadError(f"{where}: `v` is not a JSON list of dates: {str(value)[:80]!r}")
    out = []
    for item in items:
        try:
            if not isinstance(item, str) or len(item) != 10:
                raise ValueError
            out.append(dt.date.fromisoformat(item))
        except ValueError:
            raise HolidayPayloadError(f"{where}: {item!r} in `v` is not a YYYY-MM-DD date") from None
    return out


class TradingCalendarFetcher:
    dataset = TRADING_CALENDAR

    def __init__(self, source: ITickSource):
        self.client = source.client

    def extract(self, query: CalendarQuery) -> Any:
        return self.client.holidays(code=query.region)

    def transform(self, query: CalendarQuery, raw: Any) -> pd.DataFrame:
        holidays = parse_holidays(raw, query.region)
        frame = calendar_frame(query, holidays)
        frame.attrs["source_years"] = sorted(holidays)
        return frame
