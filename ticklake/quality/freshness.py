"""Freshness per region: is the last session that should be stored by now actually stored?

Each region is judged on its own clock: the bars of a session are due `allowed` hours after the exchange-local
midnight that ends it (the nightly run starts at that midnight). Freshness is judged on the due session itself, not
on when the asset last materialized nor on the latest stored date alone: backfilling an old month, or a run that
stored a later month while a month-end session is missing, never makes a region look fresh.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from ticklake import markets


def session_midnight(region: str, session: dt.date) -> dt.datetime:
    """The exchange-local midnight that ends `session` (aware, in the exchange's zone)."""
    zone = ZoneInfo(markets.market(region).timezone)
    return dt.datetime.combine(session + dt.timedelta(days=1), dt.time(0), tzinfo=zone)


def due_session(region: str, now: dt.datetime, allowed: dt.timedelta) -> dt.date | None:
    """The latest session whose bars must be stored at `now`: its closing midnight plus `allowed` has passed.

    Hours are elapsed hours (UTC arithmetic), so a 23- or 25-hour day around a DST change counts what it lasts."""
    zone = ZoneInfo(markets.market(region).timezone)
    cutoff = (now - allowed).astimezone(zone)
    midnight = dt.datetime.combine(cutoff.date(), dt.time(0), tzinfo=zone)
    return markets.last_completed_session(region, midnight.astimezone(dt.UTC))


@dataclass(frozen=True)
class RegionFreshness:
    region: str
    now: dt.datetime
    allowed: dt.timedelta
    due: dt.date | None  # the session that must be stored (None: no session is due yet)
    latest_stored: dt.date | None  # the latest trade_date stored for the region
    rows_on_due: int  # bars stored on the due session

    @property
    def stale(self) -> bool:
        return self.due is not None and self.rows_on_due == 0

    @property
    def deadline(self) -> dt.datetime | None:
        """When the due session's bars had to be stored."""
        return None if self.due is None else session_midnight(self.region, self.due) + self.allowed

    @property
    def age_hours(self) -> float | None:
        """Hours since the midnight that ended the latest stored session: how old the region's data is."""
        if self.latest_stored is None:
            return None
        return round((self.now - session_midnight(self.region, self.latest_stored)).total_seconds() / 3600, 1)

    @property
    def sessions_behind(self) -> int | None:
        """Due sessions without bars after the latest stored one (1 for a hole at the due session; None when
        nothing is stored at all)."""
        if not self.stale or self.due is None:
            return 0
        if self.latest_stored is None:
            return None
        if self.latest_stored >= self.due:
            return 1
        return len(markets.sessions(self.region, self.latest_stored + dt.timedelta(days=1), self.due))

    def summary(self) -> str:
        if self.due is None:
            return f"{self.region}: no session due yet"
        stored = f"latest stored {self.latest_stored}" if self.latest_stored else "nothing stored"
        if not self.stale:
            return f"{self.region}: fresh, {self.due} stored ({stored}, {self.age_hours} h old)"
        return (f"{self.region}: stale, no bars for {self.due} (due by {self.deadline:%Y-%m-%d %H:%M %Z}); {stored}"
                + (f", {self.age_hours} h old" if self.age_hours is not None else ""))


def assess(region: str, now: dt.datetime, allowed: dt.timedelta, latest_stored: dt.date | None,
           rows_on: dict[dt.date, int]) -> RegionFreshness:
    """Judge `region` at `now` from its latest stored trade_date and the bars stored per date (at least the due
    session's count; a date absent from `rows_on` has none)."""
    due = due_session(region, now, allowed)
    return RegionFreshness(region=region, now=now.astimezone(dt.UTC), allowed=allowed, due=due,
                           latest_stored=latest_stored, rows_on_due=rows_on.get(due, 0) if due else 0)
