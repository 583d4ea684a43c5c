"""The clock sensors read: the wall clock, or a fixed instant (a test on a frozen simulator, a replay)."""

from __future__ import annotations

import datetime as dt

import dagster as dg
from pydantic import Field

from ticklake import settings


class ClockResource(dg.ConfigurableResource):
    """Sensors take "now" from here (runs take it from their `now` run config, assets/clock.py)."""

    now: str | None = Field(default=None, description="ISO 8601 instant with a zone to act as now; default the "
                                                       "wall clock")

    def instant(self) -> dt.datetime:
        return settings.parse_instant(self.now)
