"""Where ticklake keeps its data, and the knobs read from the environment (documented in README)."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from ticklake.markets import DEFAULT_REGIONS, market


@dataclass(frozen=True)
class Paths:
    home: Path

    @property
    def lake(self) -> Path:
        return self.home / "lake"

    @property
    def warehouse(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def audit(self) -> Path:
        return self.home / "audit"

    @property
    def state(self) -> Path:
        return self.home / "state"


def home() -> Path:
    """TICKLAKE_HOME, default ./data (relative to the working directory)."""
    return Path(os.environ.get("TICKLAKE_HOME", "data")).resolve()


def regions() -> tuple[str, ...]:
    """TICKLAKE_REGIONS (comma-separated), default US,HK,SH,JP; each must be a known market."""
    raw = os.environ.get("TICKLAKE_REGIONS")
    chosen = tuple(r.strip().upper() for r in raw.split(",") if r.strip()) if raw else DEFAULT_REGIONS
    for region in chosen:
        market(region)  # raises a clear error for unknown regions
    if not chosen:
        raise ValueError("TICKLAKE_REGIONS is empty")
    return chosen


def start_date() -> dt.date:
    """TICKLAKE_START_DATE (YYYY-MM-DD): first date partition. Default 2016-01-01 keeps the UI responsive."""
    raw = os.environ.get("TICKLAKE_START_DATE", "2016-01-01")
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"TICKLAKE_START_DATE must be YYYY-MM-DD, got {raw!r}") from None
