"""After the demo's jobs (a first night: per region reference, klines, fundamentals, analytics; then the lake-wide
checks) every asset check of the definitions has an evaluation: none reads "Not Evaluated" in the UI (issue 20)."""

from __future__ import annotations

import dagster as dg
import pytest
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from automation.demo import first_night
from definitions import build_definitions

pytestmark = pytest.mark.integration


def test_every_check_has_an_evaluation_after_the_demos_jobs(make_server, resources_for, home):
    server = make_server()
    defs = build_definitions(**resources_for(server))
    instance = dg.DagsterInstance.ephemeral()
    night = first_night(defs, instance, {"US": ["2024-05", "2024-06"]})
    assert all(r.success for results in night.regions.values() for r in results)

    keys = defs.resolve_asset_graph().asset_check_keys
    assert len(keys) >= 31
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(list(keys))
    done = AssetCheckExecutionRecordStatus  # PLANNED is "Not Evaluated" / in progress in the UI
    unevaluated = sorted(k.to_user_string() for k in keys
                         if k not in latest or latest[k].status not in (done.SUCCEEDED, done.FAILED))
    assert unevaluated == []
    # the checks job ran once for the whole lake, after the night's jobs, under its own name
    assert night.checks.dagster_run.job_name == "warehouse_checks"
