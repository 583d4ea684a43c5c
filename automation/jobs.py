"""Jobs: the nightly (L3) klines refresh, the reference-data refresh and the warehouse-wide checks."""

from __future__ import annotations

import dagster as dg

from assets.klines import klines_daily
from assets.partitions import key
from assets.securities import securities
from assets.security_master import security_master
from assets.trading_calendar import trading_calendar
from checks.asset_checks import CHECK_KEYS

# Warehouse-wide checks scan everything stored: they run in their own job (and schedule), not in every nightly
# run. The checks a klines step evaluates on what it wrote run inside that step.
nightly_refresh = dg.define_asset_job(
    "nightly_refresh",
    selection=dg.AssetSelection.assets(klines_daily) - dg.AssetSelection.checks(*CHECK_KEYS),
    description="Daily klines for (month, region) partitions; ranges run as one single-run backfill.",
)

reference_refresh = dg.define_asset_job(
    "reference_refresh",
    selection=dg.AssetSelection.assets(securities, trading_calendar, security_master)
    - dg.AssetSelection.checks(*CHECK_KEYS),
    description="Security master per region (the universe the nightly refresh fetches), the trading calendar and "
                "the point-in-time security master.",
)

warehouse_checks = dg.define_asset_job(
    "warehouse_checks",
    selection=dg.AssetSelection.checks(*CHECK_KEYS),
    description="Warehouse-wide checks over everything stored: unique keys, bars only on sessions, lake and "
                "warehouse in step, security master not empty.",
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
