"""`record_run_failures`: one JSON line per failed step of any ticklake run, under TICKLAKE_HOME/audit.

A file, not a lake table: it survives a lake that cannot be opened (a common reason runs fail), needs no
writer lock and no dictionary entry, and sits beside the API call audit (`api_calls-YYYY-MM-DD.jsonl`). The token
is never written: any occurrence of ITICK_TOKEN's value in an error message is replaced before the line is.
"""

import datetime as dt
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import dagster as dg

from ticklake import settings

MAX_MESSAGE = 4000
REDACTED = "<redacted ITICK_TOKEN>"
PARTITION_TAG, RANGE_START, RANGE_END = ("dagster/partition", "dagster/asset_partition_range_start",
                                        "dagster/asset_partition_range_end")


def failures_file(now: dt.datetime) -> Path:
    """Today's (UTC) file under TICKLAKE_HOME/audit."""
    return settings.Paths(settings.home()).audit / f"run_failures-{now.astimezone(dt.UTC):%Y-%m-%d}.jsonl"


def _partition(tags: dict[str, str]) -> str | None:
    if PARTITION_TAG in tags:
        return tags[PARTITION_TAG]
    if RANGE_START in tags:  # a single-run backfill over a range
        return f"{tags[RANGE_START]}...{tags.get(RANGE_END, '')}"
    return None


def _redact(text: str | None) -> str | None:
    token = settings.env_secret("ITICK_TOKEN")
    if text is None:
        return None
    if token:
        text = text.replace(token, REDACTED)
    return text[:MAX_MESSAGE]


def _user_error(error):
    """The error the code raised, not Dagster's wrapper around it (DagsterExecutionStepExecutionError, ...)."""
    while error is not None and error.cls_name.startswith("Dagster") and error.cause is not None:
        error = error.cause
    return error


def failure_records(context: dg.RunFailureSensorContext, now: dt.datetime) -> list[dict[str, Any]]:
    """One record per failed step; one for the run itself when no step failed (e.g. a resource or config error)."""
    run = context.dagster_run
    base = {"recorded_at": now.astimezone(dt.UTC).isoformat(), "run_id": run.run_id, "job": run.job_name,
            "partition": _partition(dict(run.tags)), "status": run.status.value}
    steps: Iterable[dg.DagsterEvent] = context.get_step_failure_events()
    records = []
    for event in steps:
        error = _user_error(event.step_failure_data.error)
        records.append({**base, "step": event.step_key, "error_class": error.cls_name if error else None,
                        "message": _redact(error.message.strip() if error else event.message)})
    if not records:
        data = context.failure_event.event_specific_data
        error = _user_error(getattr(data, "error", None))
        records.append({**base, "step": None, "error_class": error.cls_name if error else None,
                        "message": _redact(error.message.strip() if error else context.failure_event.message)})
    return records


def append_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    """One write() for all lines, so concurrent appenders never interleave within a line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("".join(json.dumps(record, default=str) + "\n" for record in records))


@dg.run_failure_sensor(
    name="record_run_failures", default_status=dg.DefaultSensorStatus.STOPPED,
    description="Appends what failed in any ticklake run (run id, job, partition, step, error class and message; "
                "never the token) to TICKLAKE_HOME/audit/run_failures-YYYY-MM-DD.jsonl",
)
def record_run_failures(context: dg.RunFailureSensorContext) -> None:
    now = dt.datetime.now(dt.UTC)
    records = failure_records(context, now)
    path = failures_file(now)
    append_jsonl(path, records)
    context.log.info(f"recorded {len(records)} failure(s) of run {context.dagster_run.run_id} in {path}")
