"""The lake: DuckLake tables in one catalog (SQLite under TICKLAKE_HOME, or PostgreSQL) over Parquet files (under
TICKLAKE_HOME/lake/, or on S3). `open_lakehouse()` is the pipeline's handle; `connect()` is the analysts'."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from ticklake import settings
from ticklake.storage.catalog import ALIAS, SCHEMA_TABLE, Catalog, CatalogError
from ticklake.storage.legacy import OldLayoutError, refuse_old_layout

if TYPE_CHECKING:
    from ticklake.storage.lakehouse import Lakehouse, LakeStorageError


def __getattr__(name: str):
    """The pipeline's classes load pandas and pyarrow (through the dictionary): imported on first use, so that an
    analyst's `ticklake.connect()` in a fresh process pays only for DuckDB."""
    if name in ("Lakehouse", "LakeStorageError"):
        from ticklake.storage import lakehouse

        return getattr(lakehouse, name)
    raise AttributeError(f"module 'ticklake.storage' has no attribute {name!r}")


def catalog_from_env(home: Path | None = None) -> Catalog:
    """The catalog and data path the environment names (TICKLAKE_CATALOG, TICKLAKE_STORAGE_URL, TICKLAKE_HOME)."""
    return Catalog.from_settings(home or settings.home(), settings.catalog(), settings.storage_url())


def open_lakehouse(home: Path | None = None, *, lock_timeout_s: float = 900.0) -> Lakehouse:
    from ticklake.storage.lakehouse import Lakehouse

    home = Path(home) if home else settings.home()
    return Lakehouse(catalog_from_env(home), home / "state", lock_timeout_s=lock_timeout_s)


def connect(home: str | Path | None = None, *, catalog: str | None = None,
            storage_url: str | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the lake attached read-only as `lake` and selected, the as-of macros included:
    `ticklake.connect().sql("FROM klines_daily LIMIT 5")`. Nothing is downloaded; the session never blocks a run
    and sees one snapshot per transaction (reconnect, or start a new transaction, to see a newer one)."""
    home = Path(home).expanduser().resolve() if home else settings.home()
    where = Catalog.from_settings(home, catalog or settings.catalog(), storage_url or settings.storage_url())
    refuse_old_layout(home)
    con = where.connect()
    try:
        where.attach(con, read_only=True)
        try:
            # not parameterized: DuckDB's Python client imports pandas (~200 ms) for any query with parameters
            con.execute(f"SELECT NULL FROM {ALIAS}.main.{SCHEMA_TABLE} LIMIT 0")
        except duckdb.CatalogException:
            # the first run attached the catalog but has not committed the tables yet: not an empty dataset
            raise CatalogError(f"the lake at {where.describe()} has no tables yet: the first run is creating them, "
                               "or never got that far; connect again once a run has committed") from None
    except BaseException:
        con.close()
        raise
    return con


__all__ = ["ALIAS", "Catalog", "CatalogError", "LakeStorageError", "Lakehouse", "OldLayoutError", "catalog_from_env",
           "connect", "open_lakehouse", "refuse_old_layout"]
