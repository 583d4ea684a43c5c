"""Where the lake, the pipeline's database and the analysts' snapshot live (TICKLAKE_HOME), as a Dagster resource."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from ticklake import settings
from ticklake.lake import Lake
from ticklake.warehouse import Warehouse


class StorageResource(dg.ConfigurableResource):
    """The Parquet lake and the DuckDB warehouse (pipeline file + analysts' snapshot) under one home directory."""

    home: str | None = Field(default=None, description="TICKLAKE_HOME; default ./data")
    warehouse_lock_timeout_s: float = Field(default=900.0, gt=0,
                                            description="How long a writer waits for the pipeline database's lock")

    @property
    def paths(self) -> settings.Paths:
        return settings.Paths(Path(self.home).resolve() if self.home else settings.home())

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Resolve the home (TICKLAKE_HOME) while the run initialises, so a bad value fails it before any step."""
        self.paths  # noqa: B018 - a file where the home directory should be is a ConfigError naming the variable

    def lake(self) -> Lake:
        return Lake(self.paths.lake)

    def warehouse(self) -> Warehouse:
        """Writes go to `paths.pipeline_db`; `Warehouse.publish()` replaces `paths.warehouse`, which analysts open."""
        return Warehouse(self.paths.pipeline_db, self.paths.warehouse, lock_timeout_s=self.warehouse_lock_timeout_s)
