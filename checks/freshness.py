"""Freshness of `klines_daily`, one check per region (`klines_daily_fresh_<region>`).

One check per region rather than one check listing every region: each region has its own clock, its own
deadline and its own owner to wake; a stale HK must show red on its own row in the asset's Checks tab (and in
alerts on check failures) without hiding that US is fresh, and each region's history of passes and failures
reads on its own. All of them run as one step (one read-only connection), `can_subset` so any subset can run.

A region is fresh when the bars of its due session (`ticklake.quality.freshness.due_session`) are stored, judged on what
is stored, never on when the asset last materialized: backfilling an old month does not make a region fresh.
"""


import datetime as dt

import dagster as dg

from assets.clock import RunClock
from assets.klines import klines_daily
from assets.partitions import region_partitions
from resources.storage import StorageResource
from ticklake import settings
from ticklake.datasets.klines import last_sessions
from ticklake.quality.freshness import RegionFreshness, assess, due_session
from ticklake.quality.lake_checks import bars_on


def check_name(region: str) -> str:
    return f"klines_daily_fresh_{region.lower()}"


_REGIONS = {check_name(region): region for region in region_partitions.get_partition_keys()}

FRESHNESS_SPECS = [
    dg.AssetCheckSpec(name, asset=klines_daily,
                      description=f"{region}'s last due session is stored: the bars of each session are due "
                                  f"TICKLAKE_FRESHNESS_HOURS after the {region} exchange's local midnight ending it. "
                                  "Metadata says how old the region's data is.")
    for name, region in _REGIONS.items()
]
FRESHNESS_CHECK_KEYS = [spec.key for spec in FRESHNESS_SPECS]


def _result(fresh: RegionFreshness) -> dg.AssetCheckResult:
    def text(value: object) -> dg.MetadataValue:
        return dg.MetadataValue.text("none" if value is None else str(value))

    return dg.AssetCheckResult(
        asset_key=klines_daily.key, check_name=check_name(fresh.region), passed=not fresh.stale,
        severity=dg.AssetCheckSeverity.ERROR,
        description=fresh.summary(),
        metadata={
            "age_hours": (dg.MetadataValue.null() if fresh.age_hours is None
                          else dg.MetadataValue.float(fresh.age_hours)),
            "latest_stored_session": text(fresh.latest_stored),
            "due_session": text(fresh.due),
            "due_by": text(fresh.deadline.isoformat() if fresh.deadline else None),
            "rows_on_due_session": dg.MetadataValue.int(fresh.rows_on_due),
            "sessions_behind": text(fresh.sessions_behind),
            "allowed_hours": dg.MetadataValue.float(fresh.allowed.total_seconds() / 3600),
            "evaluated_at": dg.MetadataValue.text(fresh.now.isoformat()),
        },
    )


@dg.multi_asset_check(specs=FRESHNESS_SPECS, can_subset=True, name="klines_daily_freshness",
                      description="Per region: the session due by now (its local midnight + TICKLAKE_FRESHNESS_HOURS) "
                                  "is stored")
def klines_daily_freshness(context: dg.AssetCheckExecutionContext, config: RunClock, storage: StorageResource):
    now, allowed = config.instant(), dt.timedelta(hours=settings.freshness_hours())
    regions = sorted(_REGIONS[key.name] for key in context.selected_asset_check_keys)
    lake = storage.lakehouse()
    latest = last_sessions(lake)
    with lake.reader() as con:
        for region in regions:
            due = due_session(region, now, allowed)
            rows_on = {due: bars_on(con, region, due)} if due else {}
            yield _result(assess(region, now, allowed, latest.get(region), rows_on))


FRESHNESS_CHECKS = [klines_daily_freshness]
