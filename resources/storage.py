"""Where the lake, the pipeline's database and the analysts' snapshot live, as a Dagster resource.

The embedded default keeps all three under TICKLAKE_HOME. The production profile (README "Deployment") sets
TICKLAKE_STORAGE_URL=s3://bucket/prefix, which moves them to object storage in the same layout, and
TICKLAKE_COORDINATION_URL=postgresql://..., whose advisory lock serialises the warehouse's writers across
machines; TICKLAKE_HOME then only holds each worker's local copies and scratch files.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from ticklake import expectations, settings
from ticklake.lake import Lake
from ticklake.mutex import PostgresMutex
from ticklake.object_store import location
from ticklake.remote_tree import RemoteTree
from ticklake.remote_warehouse import RemoteDatabase
from ticklake.settings import ConfigError
from ticklake.warehouse import Warehouse


class StorageResource(dg.ConfigurableResource):
    """The Parquet lake and the DuckDB warehouse (pipeline file + analysts' snapshot), local or in object storage."""

    home: str | None = Field(default=None, description="TICKLAKE_HOME; default ./data")
    url: str | None = Field(default=None, description="TICKLAKE_STORAGE_URL (s3://bucket/prefix); default: "
                            "everything under the home directory")
    coordination_url: str | None = Field(
        default=None, description="TICKLAKE_COORDINATION_URL (postgresql://...): the warehouse lock every worker "
        "shares; required with an s3:// storage URL. Pass dg.EnvVar so the UI never shows a password")
    warehouse_lock_timeout_s: float = Field(default=900.0, gt=0,
                                            description="How long a writer waits for the pipeline database's lock")

    @property
    def paths(self) -> settings.Paths:
        return settings.Paths(Path(self.home).resolve() if self.home else settings.home())

    @property
    def storage_url(self) -> str | None:
        return self.url or settings.storage_url()

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Resolve the settings while the run initialises, so a bad value fails it before any step."""
        self.paths  # noqa: B018 - a file where the home directory should be is a ConfigError naming the variable
        if self.storage_url and not self._coordination():
            raise ConfigError(
                f"TICKLAKE_STORAGE_URL={self.storage_url} needs TICKLAKE_COORDINATION_URL (postgresql://...): "
                "workers on several machines share the warehouse only under its lock")

    def lake(self) -> Lake:
        if self.storage_url:
            return Lake.at(f"{self.storage_url}/lake")
        return Lake(self.paths.lake)

    def warehouse(self) -> Warehouse:
        """Writes go to `paths.pipeline_db`; `Warehouse.publish()` replaces `paths.warehouse`, which analysts open.
        With a storage URL both are local copies of objects there, written under the coordination lock."""
        remote = mutex = None
        if self.storage_url:
            remote = RemoteDatabase(location(self.storage_url))
            mutex = PostgresMutex(self._coordination(), f"ticklake-warehouse:{self.storage_url}")
        return Warehouse(self.paths.pipeline_db, self.paths.warehouse, lock_timeout_s=self.warehouse_lock_timeout_s,
                         remote=remote, mutex=mutex)

    def expectations_sharing(self) -> tuple[RemoteTree | None, PostgresMutex | None]:
        """The Great Expectations project every worker shares (in object storage, under `great_expectations/`) and
        the lock its writers take; (None, None) in the embedded default, where it stays under the home."""
        if not self.storage_url:
            return None, None
        return (RemoteTree(location(self.storage_url), expectations.SHARED_PREFIX),
                PostgresMutex(self._coordination(), f"ticklake-great-expectations:{self.storage_url}"))

    def _coordination(self) -> str | None:
        return self.coordination_url or settings.coordination_url()
