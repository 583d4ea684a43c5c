"""The trading calendar dataset: authoritative sessions (exchange_calendars) beside the source's view of them.

Why exchange_calendars is authoritative: the pipeline already fetches and checks by it (ticklake.markets), it
reaches back decades and it is versioned with the code, while a source's holiday list covers a few years and can
change without notice. The source's view is stored beside it so every disagreement is visible (a warning check
lists the dates) instead of one of the two silently winning.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ticklake import markets, settings
from ticklake.datasets.context import RunContext
from ticklake.dictionary.reference_data import TRADING_CALENDAR
from ticklake.sources.contract import FetchReport
from ticklake.sources.queries import CalendarQuery


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


def refresh_trading_calendar(ctx: RunContext, region: str, query: CalendarQuery | None = None) -> CalendarResult:
    """Fetch the source's holidays, build the region's calendar and replace its lake partition."""
    query = query or default_query(region)
    frame = ctx.fetch(TRADING_CALENDAR, query)
    years = sorted(int(y) for y in frame.attrs.get("source_years", []))
    written = ctx.write(TRADING_CALENDAR, {"region": region, "source": ctx.source_name}, frame)
    found = disagreements(written.frame)
    if len(found):
        ctx.log(f"{region}: the source's holidays disagree with the calendar on {len(found)} day(s): "
                + ", ".join(f"{d:%Y-%m-%d}" for d in found["date"][:10]))
    return CalendarResult(region, written.frame, found, years, written.diff, ctx.spent())
