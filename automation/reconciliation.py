"""T+1 reconciliation sensors, one per region: after the region's nightly run stored its session, re-fetch the
last TICKLAKE_RECONCILE_SESSIONS sessions, record every difference in reconciliation_log and request the
re-materialization of exactly the month partitions holding one.

- Once per stored session: the cursor holds the last session re-checked, so a restarted daemon re-checks nothing
  twice and an evaluation before the next night is a skip with its reason.
- A correction is requested once: the run key names the month's set of differences (`correction_key`); Dagster
  never launches a run key twice, and the same differences found again make the same key. A new difference in the
  same month makes a new key.
- Cost: one batch call per ITICK_MAX_CODES codes (each asking for the last K bars) per region and night.
"""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg

from assets.partitions import key
from automation.jobs import nightly_refresh
from resources.clock import ClockResource
from resources.itick import ITickResource
from resources.storage import StorageResource
from ticklake import markets, settings
from ticklake.datasets.context import RunContext
from ticklake.datasets.klines import last_sessions
from ticklake.quality.reconciliation import correction_key, reconcile_klines

RESTATEMENT_TAG = "ticklake/restatement"


def _reconciliation(region: str) -> dg.SensorDefinition:
    market = markets.market(region)

    @dg.sensor(
        name=f"reconciliation_{region.lower()}", job=nightly_refresh, minimum_interval_seconds=15 * 60,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=f"T+1 reconciliation of {region}: once the nightly run stored a new session, re-fetch the last "
                    f"TICKLAKE_RECONCILE_SESSIONS sessions ({market.calendar}), record every restated, late or "
                    "withdrawn bar in reconciliation_log, and re-materialize exactly the months holding one",
    )
    def reconciliation(context: dg.SensorEvaluationContext, itick: ITickResource, storage: StorageResource,
                       clock: ClockResource):
        cursor = json.loads(context.cursor) if context.cursor else {}
        now = clock.instant()
        source = itick.source(tags={"sensor": context.sensor_name})
        last = last_sessions(storage.lakehouse(), source=source.name).get(region)
        if last is None:
            return dg.SensorResult(skip_reason=dg.SkipReason(f"no {region} klines stored by {source.name} yet"))
        if cursor.get("checked_through") == last.isoformat():
            return dg.SensorResult(skip_reason=dg.SkipReason(
                f"sessions through {last} already re-checked; waiting for the next nightly run"))
        k = settings.reconcile_sessions()
        sessions = markets.sessions(region, last - dt.timedelta(days=7 * k + 14), last)[-k:]
        ctx = RunContext(storage.lakehouse(), f"{context.sensor_name}@{now:%Y-%m-%dT%H:%M:%SZ}", now, source,
                         log=context.log.info)
        result = reconcile_klines(ctx, region, sessions=sessions)
        requests = [
            dg.RunRequest(run_key=f"correct:{correction_key(region, month, rows)}",
                          partition_key=key(month, region),
                          tags={RESTATEMENT_TAG: f"{len(rows)} difference(s) found by {context.sensor_name}"})
            for month, rows in result.months.items()
        ]
        summary = (f"re-checked {len(sessions)} session(s) {sessions[0]}..{sessions[-1]} of {result.codes} codes "
                   f"with {result.fetch.calls} call(s): {len(result.differences)} difference(s), "
                   f"{result.recorded} new")
        context.log.info(summary)
        new_cursor = json.dumps({"checked_through": last.isoformat(), "at": now.isoformat(),
                                 "calls": result.fetch.calls, "differences": len(result.differences)})
        if not requests:
            return dg.SensorResult(skip_reason=dg.SkipReason(summary), cursor=new_cursor)
        return dg.SensorResult(run_requests=requests, cursor=new_cursor)

    return reconciliation


RECONCILIATION_SENSORS = [_reconciliation(region) for region in settings.regions()]
