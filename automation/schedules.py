"""Per-region midnight schedules, each on its own exchange's clock and calendar.

At 00:00 exchange-local the session that just ended is materialized; on a date that is not a session the
tick is skipped with the reason (never a business-day cron, whose Friday window ends on Monday).
The security master refreshes an hour earlier so the nightly run sees today's listings.
"""


import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg

from assets.partitions import key, region_partitions
from automation.jobs import nightly_refresh, reference_refresh
from ticklake import markets


def _nightly(region: str) -> dg.ScheduleDefinition:
    market = markets.market(region)

    @dg.schedule(name=f"nightly_{region.lower()}", job=nightly_refresh, cron_schedule="0 0 * * *",
                 execution_timezone=market.timezone, default_status=dg.DefaultScheduleStatus.STOPPED,
                 description=f"Klines for the {region} session that just closed ({market.calendar}, "
                             f"{market.timezone} midnight)")
    def nightly(context: dg.ScheduleEvaluationContext):
        midnight = context.scheduled_execution_time.astimezone(ZoneInfo(market.timezone))
        session = (midnight - dt.timedelta(days=1)).date()
        if not markets.is_session(region, session):
            return dg.SkipReason(f"{session} is not a {market.calendar} session")
        partition = key(session, region)
        return dg.RunRequest(run_key=f"nightly:{partition}", partition_key=partition)

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


SCHEDULES = [build(region) for region in region_partitions.get_partition_keys() for build in (_nightly, _reference)]
