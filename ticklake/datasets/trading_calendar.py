"""The trading calendar dataset: authoritative sessions (exchange_calendars) beside the source's view of them.

Why exchange_calendars is authoritative: the pipeline already fetches and checks by it (ticklake.markets), it
reaches back decades and it is versioned with the code, while a source's holiday list covers a few years and can
change without notice. The source's view is stored beside it so every disagreement is visible (a warning check
lists the dates) instead of one of the two silently winning.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from ticklake import markets, settings
from ticklake.dictionary.frames import with_lineage
from ticklake.dictionary.reference_data import TRADING_CALENDAR
from ticklake.sources.contract import FetchReport, Source, fetch
from ticklake.sources.queries import CalendarQuery
from ticklake.storage import Lakehouse
from ticklake.storage.writes import write


def disagreements(frame: pd.DataFrame) -> pd.DataFrame:
    """Days where the source's view contradicts the authoritative calendar (days the source is silent on excluded)."""
    known = frame["source_is_session"].notna().to_numpy()
    differs = known & (frame["source_is_session"].fillna(False).to_numpy(dtype=bool) != frame["is_session"].to_numpy())
    return frame.loc[differs, ["region", "date", "is_session", "source_is_session"]].reset_index(drop=True)


def default_query(region: str) -> CalendarQuery:
    """Every day from the start of the lake's first month to the last day the installed calendar knows."""
    first = max(settings.start_date().replace(day=1), markets.coverage_start(markets.market(region).calendar))
    return CalendarQuery(region, first, markets.known_through(region))


@dataclass
class CalendarResult:
    region: str
    frame: pd.DataFrame
    disagreements: pd.DataFrame
    source_years: list[int]
    diff: dict[str, int]
    fetch: FetchReport

    @property
    def sessions(self) -> int:
        return int(self.frame["is_session"].sum())


def refresh_trading_calendar(source: Source, lake: Lakehouse, *, region: str, run_id: str,
                             now: dt.datetime, query: CalendarQuery | None = None,
                             log: Callable[[str], None] = lambda _msg: None) -> CalendarResult:
    """Fetch the source's holidays, build the region's calendar and replace its lake file."""
    query = query or default_query(region)
    frame = fetch(source, TRADING_CALENDAR, query)
    years = sorted(int(y) for y in frame.attrs.get("source_years", []))
    written = write(lake, TRADING_CALENDAR, {"region": region, "source": source.name},
                    with_lineage(frame, source.name, run_id, now), run_id=run_id, now=now)
    found = disagreements(written.frame)
    if len(found):
        log(f"{region}: the source's holidays disagree with the calendar on {len(found)} day(s): "
            + ", ".join(f"{d:%Y-%m-%d}" for d in found["date"][:10]))
    return CalendarResult(region, written.frame, found, years, written.diff, source.spent())
