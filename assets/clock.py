"""The instant a run acts at: the wall clock, or a fixed one given as run config.

Every asset that decides something by "now" (which sessions have closed, the exchange-local date of a snapshot
or an observation) takes it from here, so a replay, a backfill of a missed night or a test against a frozen
simulator sets it in one place: `run_config={"ops": {"<asset>": {"config": {"now": "2024-06-28T23:00:00+00:00"}}}}`.
"""

import datetime as dt

import dagster as dg
from pydantic import Field

from ticklake import settings


class RunClock(dg.Config):
    """When the run acts: the wall clock, or a fixed instant (a replay, a test on a frozen simulator)."""

    now: str | None = Field(default=None, description="ISO 8601 instant with a zone to act as now; default the "
                                                       "wall clock")

    def instant(self) -> dt.datetime:
        return settings.parse_instant(self.now)
