"""The lake as a Dagster resource: its catalog (TICKLAKE_CATALOG) and data path (TICKLAKE_STORAGE_URL).

The embedded default keeps the catalog (`catalog.sqlite`) and the data (`lake/`) under TICKLAKE_HOME. The
production profile (docs/deployment.md) sets TICKLAKE_CATALOG=postgres:<conninfo> and
TICKLAKE_STORAGE_URL=s3://bucket/prefix: every worker then commits to the same catalog, and TICKLAKE_HOME only
holds each worker's audit log and scratch files.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field, PrivateAttr

from ticklake import settings
from ticklake.quality import expectations
from ticklake.settings import ConfigError
from ticklake.storage import Catalog, CatalogError, Lakehouse, refuse_old_layout
from ticklake.storage.locks import CommitLocks
from ticklake.storage.object_store import location
from ticklake.storage.remote_tree import RemoteTree


class StorageResource(dg.ConfigurableResource):
    """The lake: DuckLake tables in one catalog over Parquet files, local or on object storage."""

    home: str | None = Field(default=None, description="TICKLAKE_HOME; default ./data")
    url: str | None = Field(default=None, description="TICKLAKE_STORAGE_URL (s3://bucket/prefix); default: "
                            "the data files under the home directory")
    catalog: str | None = Field(
        default=None, description="TICKLAKE_CATALOG (postgres:<libpq conninfo> or sqlite:<file>); default "
        "sqlite:<home>/catalog.sqlite. Pass dg.EnvVar so the UI never shows a password")
    commit_lock_timeout_s: float = Field(default=900.0, gt=0,
                                         description="How long a commit waits for its tables' commit locks")
    _lakehouse: Lakehouse | None = PrivateAttr(default=None)

    @property
    def paths(self) -> settings.Paths:
        return settings.Paths(Path(self.home).resolve() if self.home else settings.home())

    @property
    def storage_url(self) -> str | None:
        return self.url or settings.storage_url()

    def lake_catalog(self) -> Catalog:
        try:
            return Catalog.from_settings(self.paths.home, self.catalog or settings.catalog(), self.storage_url)
        except CatalogError as exc:
            raise ConfigError(str(exc)) from None

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Resolve the settings while the run initialises, so a bad value fails it before any step."""
        self.paths  # noqa: B018 - a file where the home directory should be is a ConfigError naming the variable
        where = self.lake_catalog()
        refuse_old_layout(self.paths.home)  # the previous release's files: migrate them first (the error says how)
        if where.is_remote and where.kind == "sqlite":
            raise ConfigError(
                f"TICKLAKE_STORAGE_URL={self.storage_url} needs a shared catalog: set TICKLAKE_CATALOG=postgres:"
                "<libpq conninfo> (workers on several machines commit to one catalog)")

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """Close this run's (or step's) attachment: a long-lived Celery worker would otherwise keep one DuckDB
        database per step it ran."""
        if self._lakehouse is not None:
            self._lakehouse.close()

    def lakehouse(self) -> Lakehouse:
        """This process's handle on the lake (one per resource instance: connections share its attachment)."""
        if self._lakehouse is None:
            self._lakehouse = Lakehouse(self.lake_catalog(), self.paths.state,
                                        lock_timeout_s=self.commit_lock_timeout_s)
        return self._lakehouse

    def expectations_sharing(self) -> tuple[RemoteTree | None, CommitLocks | None]:
        """The Great Expectations project every worker shares (in object storage, under `great_expectations/`) and
        the lock its writers take; (None, None) in the embedded default, where it stays under the home."""
        if not self.storage_url:
            return None, None
        return (RemoteTree(location(self.storage_url), expectations.SHARED_PREFIX), self.lakehouse().locks)
