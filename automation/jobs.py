"""Jobs: the nightly (L3) klines refresh and the reference-data refresh."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from assets.klines import klines_daily
from assets.partitions import date_region_partitions, key, region_partitions
from assets.securities import securities

nightly_refresh = dg.define_asset_job(
    "nightly_refresh",
    selection=dg.AssetSelection.assets(klines_daily),
    partitions_def=date_region_partitions,
    description="Daily klines for (trading date, region) partitions; ranges run as one single-run backfill.",
)

reference_refresh = dg.define_asset_job(
    "reference_refresh",
    selection=dg.AssetSelection.assets(securities),
    partitions_def=region_partitions,
    description="Security master per region (the universe the nightly refresh fetches).",
)


def run_partition_range(defs: dg.Definitions, region: str, first: dt.date, last: dt.date, *,
                        instance: dg.DagsterInstance, run_config: dict | None = None,
                        raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
    """Run `nightly_refresh` in-process over [first, last] for one region, as one single-run backfill would."""
    return defs.resolve_job_def("nightly_refresh").execute_in_process(
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": str(key(first, region)),
            "dagster/asset_partition_range_end": str(key(last, region)),
        },
        run_config=run_config,
        raise_on_error=raise_on_error,
    )
