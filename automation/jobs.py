"""Jobs: the nightly (L3) klines refresh, the reference-data refresh and the lake-wide checks."""

from __future__ import annotations

import dagster as dg

from assets.adjusted import klines_daily_adjusted
from assets.corporate_actions import corporate_actions
from assets.fundamentals import fundamentals_daily, fx_daily, valuation_daily
from assets.klines import klines_daily
from assets.listings import listings
from assets.partitions import key
from assets.trading_calendar import trading_calendar
from checks.asset_checks import CHECK_KEYS as WAREHOUSE_CHECK_KEYS
from checks.expectations import CHECK_KEYS as EXPECTATION_CHECK_KEYS
from checks.freshness import FRESHNESS_CHECK_KEYS

CHECK_KEYS = WAREHOUSE_CHECK_KEYS + FRESHNESS_CHECK_KEYS + EXPECTATION_CHECK_KEYS

# Lake-wide checks scan everything stored: they run in their own job (and schedule), not in every nightly
# run. The checks a klines step evaluates on what it wrote run inside that step.
nightly_refresh = dg.define_asset_job(
    "nightly_refresh",
    selection=dg.AssetSelection.assets(klines_daily) - dg.AssetSelection.checks(*CHECK_KEYS),
    description="Daily klines for (month, region) partitions; ranges run as one single-run backfill.",
)

reference_refresh = dg.define_asset_job(
    "reference_refresh",
    selection=dg.AssetSelection.assets(listings, trading_calendar, corporate_actions)
    - dg.AssetSelection.checks(*CHECK_KEYS),
    description="Reference data per region: the symbol list (the universe the nightly refresh fetches), the trading "
                "calendar, the point-in-time security master and the splits.",
)

# Derived tables run after the raw data they read (their own job: klines never wait on them).
analytics_refresh = dg.define_asset_job(
    "analytics_refresh",
    selection=dg.AssetSelection.assets(klines_daily_adjusted) - dg.AssetSelection.checks(*CHECK_KEYS),
    description="Split-adjusted daily bars per region, re-derived only where raw bars or splits changed.",
)

# Its own job and schedule, never part of nightly_refresh: klines never wait on the /stock/info budget.
fundamentals_refresh = dg.define_asset_job(
    "fundamentals_refresh",
    selection=dg.AssetSelection.assets(fundamentals_daily, fx_daily, valuation_daily)
    - dg.AssetSelection.checks(*CHECK_KEYS),
    description="Valuation snapshots of the stalest symbols within TICKLAKE_FUNDAMENTALS_BUDGET calls, the FX "
                "they need, and valuation_daily re-derived, per region.",
)

warehouse_checks = dg.define_asset_job(
    "warehouse_checks",
    selection=dg.AssetSelection.checks(*CHECK_KEYS),
    description="Lake-wide checks over everything stored: unique keys, bars only on sessions and inside "
                "listing windows, lake_partitions in step with the rows, security master not empty; each region's "
                "freshness; "
                "and the Great Expectations suite (completeness, distributions, references), with its Data Docs.",
)

# Freshness alone, for its hourly schedule: a max and a count per region, not the lake-wide checks' scans.
klines_freshness = dg.define_asset_job(
    "klines_freshness",
    selection=dg.AssetSelection.checks(*FRESHNESS_CHECK_KEYS),
    description="Per region: is the session due by now (its local midnight + TICKLAKE_FRESHNESS_HOURS) stored?",
)


def run_partition_range(defs: dg.Definitions, region: str, first_month: str, last_month: str, *,
                        instance: dg.DagsterInstance, run_config: dict | None = None,
                        raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
    """Run `nightly_refresh` in-process over [first_month, last_month] for one region, as one single-run backfill
    launched from the UI would."""
    return defs.resolve_job_def("nightly_refresh").execute_in_process(
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": str(key(first_month, region)),
            "dagster/asset_partition_range_end": str(key(last_month, region)),
        },
        run_config=run_config,
        raise_on_error=raise_on_error,
    )
