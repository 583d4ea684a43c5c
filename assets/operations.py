"""The operations tables and the raw layer (which several steps write) as external assets, so the catalog lists
them with their column schemas.

`lake_partitions` (what each commit recorded), `reconciliation_log` (every change applied to a versioned table),
`quarantine` (rows that broke a hard rule) and the `<name>_history` tables (every superseded version) are written by
the dataset assets' own commits, never by an asset of their own: they are declared as `dg.AssetSpec`s (external,
never materialized by Dagster), grouped under `operations`, with the dictionary's schema and an example query.
"""

from __future__ import annotations

import dagster as dg

from assets.metadata import dataset_asset
from ticklake.dictionary import DATASETS, Dataset

GROUP = "operations"
# Which dataset assets commit to each operations table (the history tables: their own dataset).
WRITTEN_BY = {
    "lake_partitions": ("klines_daily", "trading_calendar", "securities", "security_master", "corporate_actions",
                        "fundamentals_daily", "fx_daily", "klines_daily_adjusted", "valuation_daily"),
    "reconciliation_log": ("klines_daily", "fundamentals_daily"),
    "quarantine": ("klines_daily",),
    # the raw layer: every source's own bars, written by each source's step (iTick's: klines_daily's fetch)
    "klines_daily_by_source": ("klines_daily",),
    "golden_exceptions": ("klines_daily",),
    "golden_overrides": (),
    "source_files": (),
}
SHARED = ("klines_daily_by_source",)  # tables of a domain of their own that several steps write


# What every vendor's raw asset writes besides the golden copy (its own rows, its files, its quarantined rows).
WRITTEN_BY_VENDORS = ("klines_daily_by_source", "source_files", "quarantine", "golden_exceptions", "lake_partitions",
                      "klines_daily_history", "klines_daily_by_source_history", "reconciliation_log")


def _spec(dataset: Dataset, asset_keys: set[str], vendors: list[str]) -> dg.AssetSpec:
    declared = dataset_asset(dataset)
    writers = (dataset.history_for,) if dataset.history_for else WRITTEN_BY.get(dataset.name, ())
    if dataset.name in WRITTEN_BY_VENDORS:
        writers = (*writers, *vendors)
    return dg.AssetSpec(
        dataset.name,
        group_name=dataset.domain if dataset.name in SHARED else GROUP,
        kinds=declared["kinds"],
        description=f"{dataset.description}\n\nExample: `{dataset.example}`" if dataset.example
        else dataset.description,
        metadata={**declared["metadata"], "written_by": dg.MetadataValue.text(", ".join(writers) or "-")},
        deps=[w for w in writers if w in asset_keys],
    )


def operations_specs(asset_keys: set[str], vendors: list[str] = ()) -> list[dg.AssetSpec]:
    """One spec per operations table and per history table; `asset_keys` are the dataset assets defined, `vendors`
    the vendors' raw assets."""
    return [_spec(d, asset_keys, list(vendors)) for d in DATASETS.values() if d.domain == GROUP or d.history_for
            or d.name in SHARED]
