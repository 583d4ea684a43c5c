"""Where the lake and the warehouse live (TICKLAKE_HOME), as a Dagster resource."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from ticklake import settings
from ticklake.lake import Lake
from ticklake.warehouse import Warehouse


class StorageResource(dg.ConfigurableResource):
    """The Parquet lake and DuckDB warehouse under one home directory."""

    home: str | None = Field(default=None, description="TICKLAKE_HOME; default ./data")
    warehouse_lock_timeout_s: float = Field(default=900.0, gt=0,
                                            description="How long a writer waits for the warehouse lock")

    @property
    def paths(self) -> settings.Paths:
        return settings.Paths(Path(self.home).resolve() if self.home else settings.home())

    def lake(self) -> Lake:
        return Lake(self.paths.lake)

    def warehouse(self) -> Warehouse:
        return Warehouse(self.paths.warehouse, lock_timeout_s=self.warehouse_lock_timeout_s)
