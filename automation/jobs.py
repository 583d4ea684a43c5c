"""Jobs: the nightly (L3) klines refresh and the reference-data refresh."""

from __future__ import annotations

import dagster as dg

from assets.klines import klines_daily
from assets.partitions import date_region_partitions, region_partitions
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
