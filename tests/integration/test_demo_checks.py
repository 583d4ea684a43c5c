"""After the demo's jobs (a first night: per region reference, klines, fundamentals, analytics; then the lake-wide
checks) every asset check of the definitions has an evaluation: none reads "Not Evaluated" in the UI (issue 20)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from definitions import build_definitions
from demo.run import first_night

pytestmark = [pytest.mark.integration, pytest.mark.slow]


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


def test_the_demos_runs_belong_to_the_ui_code_location(make_server, resources_for, home):
    """The UI lists a job's runs by job name and repository label, and the Overview timeline groups runs by their
    repository origin: the demo's in-process runs carry both, under their own job names (never __ASSET_JOB)."""
    import yaml

    from demo.run import LOCATION, REPOSITORY

    [location] = yaml.safe_load((Path(__file__).parents[2] / "workspace.yaml").read_text())["load_from"]
    assert location["python_module"]["location_name"] == LOCATION
    defs = build_definitions(**resources_for(make_server()))
    instance = dg.DagsterInstance.ephemeral()
    first_night(defs, instance, {"US": ["2024-06"]})
    label = f"{REPOSITORY}@{LOCATION}"
    runs = instance.get_runs(dg.RunsFilter(tags={".dagster/repository": label}))
    assert sorted(r.job_name for r in runs) == ["analytics_refresh", "fundamentals_refresh", "nightly_refresh",
                                                "reference_refresh", "warehouse_checks"]
    assert len(instance.get_runs(dg.RunsFilter(job_name="nightly_refresh", tags={".dagster/repository": label}))) == 1
    for run in runs:
        origin = run.remote_job_origin.repository_origin
        assert (origin.repository_name, origin.code_location_origin.location_name) == (REPOSITORY, LOCATION)
        assert run.remote_job_origin.job_name == run.job_name
