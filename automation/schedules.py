"""Per-region midnight schedules, each on its own exchange's clock and calendar, and the daily lake checks.

At 00:00 exchange-local the month of the session that just ended is refreshed (a month costs the same calls as
a day); on a date that is not a session the tick is skipped with the reason (never a business-day cron, whose
Friday window ends on Monday). Run keys name the session, so each night requests exactly one run.
The security master refreshes an hour earlier so the nightly run sees today's listings.
"""

import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg

from assets.partitions import SESSION_TAG, key_for_session, region_partitions
from automation.jobs import (
    fundamentals_refresh,
    klines_freshness,
    nightly_refresh,
    reference_refresh,
    warehouse_checks,
)
from automation.maintenance import lake_maintenance
from ticklake import markets


def _nightly(region: str) -> dg.ScheduleDefinition:
    market = markets.market(region)

    @dg.schedule(name=f"nightly_{region.lower()}", job=nightly_refresh, cron_schedule="0 0 * * *",
                 execution_timezone=market.timezone, default_status=dg.DefaultScheduleStatus.STOPPED,
                 description=f"Klines of the {region} session that just closed: refreshes its month "
                             f"({market.calendar} calendar, midnight {market.timezone})")
    def nightly(context: dg.ScheduleEvaluationContext):
        midnight = context.scheduled_execution_time.astimezone(ZoneInfo(market.timezone))
        session = (midnight - dt.timedelta(days=1)).date()
        if not markets.is_session(region, session):
            return dg.SkipReason(f"{session} is not a {market.calendar} session")
        return dg.RunRequest(run_key=f"nightly:{region}:{session}", partition_key=key_for_session(session, region),
                             tags={SESSION_TAG: session.isoformat()})

    return nightly


def _reference(region: str) -> dg.ScheduleDefinition:
    market = markets.market(region)

    @dg.schedule(name=f"securities_{region.lower()}", job=reference_refresh, cron_schedule="0 23 * * *",
                 execution_timezone=market.timezone, default_status=dg.DefaultScheduleStatus.STOPPED,
                 description=f"Refresh the {region} security master an hour before the nightly klines run")
    def reference(context: dg.ScheduleEvaluationContext):
        day = context.scheduled_execution_time.astimezone(ZoneInfo(market.timezone)).date()
        return dg.RunRequest(run_key=f"securities:{region}:{day}", partition_key=region)

    return reference


def _fundamentals(region: str) -> dg.ScheduleDefinition:
    market = markets.market(region)

    @dg.schedule(name=f"fundamentals_{region.lower()}", job=fundamentals_refresh, cron_schedule="0 2 * * *",
                 execution_timezone=market.timezone, default_status=dg.DefaultScheduleStatus.STOPPED,
                 description=f"Refresh the stalest {region} valuation snapshots within the call budget, two hours "
                             "after the nightly klines run (a separate job: klines never wait on it)")
    def fundamentals(context: dg.ScheduleEvaluationContext):
        day = context.scheduled_execution_time.astimezone(ZoneInfo(market.timezone)).date()
        return dg.RunRequest(run_key=f"fundamentals:{region}:{day}", partition_key=region)

    return fundamentals


warehouse_checks_daily = dg.ScheduleDefinition(
    name="warehouse_checks_daily", job=warehouse_checks, cron_schedule="0 6 * * *", execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Lake-wide checks once a day, after every region's nightly run (US midnight is 04:00-05:00 "
                "UTC)",
)

# Hourly in UTC: every region's deadline (its local midnight + TICKLAKE_FRESHNESS_HOURS) falls on some hour, and a
# UTC cron has no DST gaps or repeats. A stale region is noticed within the hour after its deadline.
klines_freshness_hourly = dg.ScheduleDefinition(
    name="klines_freshness_hourly", job=klines_freshness, cron_schedule="0 * * * *", execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Each region's klines_daily_fresh_<region> check every hour: fails when the session due by then "
                "(its local midnight + TICKLAKE_FRESHNESS_HOURS) is not stored",
)

# Sunday 10:00 UTC: no default region's nightly, reference or fundamentals run falls near it (US Sunday 05:00-06:00,
# JP 19:00, HK/SH 18:00 local), though the per-table commit locks make a collision safe, only slower.
lake_maintenance_weekly = dg.ScheduleDefinition(
    name="lake_maintenance_weekly", job=lake_maintenance, cron_schedule="0 10 * * 0", execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Weekly lake upkeep: merge small files, rewrite files with many deletes, expire snapshots past "
                "TICKLAKE_SNAPSHOT_RETENTION_DAYS, delete old and orphaned files",
)

SCHEDULES = [build(region) for region in region_partitions.get_partition_keys() for build in (_nightly, _reference)]
SCHEDULES += [_fundamentals(region) for region in region_partitions.get_partition_keys()]
SCHEDULES += [warehouse_checks_daily, klines_freshness_hourly, lake_maintenance_weekly]
