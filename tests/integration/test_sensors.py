"""Sensors on a real instance: the derived assets' automation requests exactly the regions whose inputs updated,
once; `record_run_failures` writes what a really failed run did, without the token."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from automation.failures import record_run_failures
from definitions import build_definitions, defs
from resources.storage import StorageResource
from ticklake import settings

pytestmark = pytest.mark.integration

TOKEN = "tok-SECRET-5a1d9c"


def test_sensors_ship_stopped_with_names_and_descriptions():
    repository = defs.get_repository_def()
    sensors = {s.name: s for s in repository.sensor_defs}
    assert set(sensors) == {"derived_assets_automation", "record_run_failures",  # no implicit default sensor
                            *(f"reconciliation_{r.lower()}" for r in settings.regions())}
    assert all(s.default_status == dg.DefaultSensorStatus.STOPPED and s.description for s in sensors.values())
    targeted = repository.asset_graph.get_all_asset_keys()
    conditions = {k.to_user_string() for k in targeted if repository.asset_graph.get(k).automation_condition}
    assert conditions == {"klines_daily_adjusted", "valuation_daily"}


def _requested(result) -> dict[str, set]:
    return {r.key.to_user_string(): set(r.true_subset.expensively_compute_partition_keys())
            for r in result.results if r.true_subset.size}


# Dagster's own test helper passes a beta parameter to itself (automation_condition_tester.py); not our call.
@pytest.mark.filterwarnings("ignore:Parameter `include_sources`:dagster.BetaWarning")
def test_derived_assets_rederive_only_the_regions_whose_inputs_updated():
    instance = dg.DagsterInstance.ephemeral()
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert result.total_requested == 0  # turning the sensor on launches nothing by itself

    # a nightly run of one US month, though every other month of US is missing (never backfilled)
    instance.report_runless_asset_event(dg.AssetMaterialization("klines_daily", partition="2024-06|US"))
    instance.report_runless_asset_event(dg.AssetMaterialization("corporate_actions", partition="HK"))
    instance.report_runless_asset_event(dg.AssetMaterialization("fx_daily", partition="JP"))
    instance.report_runless_asset_event(dg.AssetMaterialization("fundamentals_daily", partition="JP"))
    # plain eager() for valuation: SH's snapshots updated but its FX never stored, so it waits
    instance.report_runless_asset_event(dg.AssetMaterialization("fundamentals_daily", partition="SH"))
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
    assert _requested(result) == {"klines_daily_adjusted": {"US", "HK"}, "valuation_daily": {"JP"}}

    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
    assert result.total_requested == 0  # requested once, not on every tick


@dg.op
def fetch_bars() -> None:
    raise RuntimeError(f"HTTP 401 for token {TOKEN}")


@dg.job
def failing_job():
    fetch_bars()


def _evaluate_failure_sensor(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult) -> None:
    failure = result.get_run_failure_event()
    with dg.build_run_status_sensor_context(sensor_name="record_run_failures", dagster_instance=instance,
                                            dagster_run=result.dagster_run,
                                            dagster_event=failure).for_run_failure() as context:
        record_run_failures(context)


def _lines(home) -> list[dict]:
    [path] = (home / "audit").glob("run_failures-*.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_failed_step_is_recorded_without_the_token(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("TICKLAKE_HOME", str(home))
    monkeypatch.setenv("ITICK_TOKEN", TOKEN)
    with dg.instance_for_test() as instance:
        result = failing_job.execute_in_process(instance=instance, raise_on_error=False,
                                                tags={"dagster/partition": "2024-06|US"})
        assert not result.success
        _evaluate_failure_sensor(instance, result)
    [line] = _lines(home)
    assert {k: line[k] for k in ("run_id", "job", "partition", "step", "error_class", "status")} == {
        "run_id": result.run_id, "job": "failing_job", "partition": "2024-06|US", "step": "fetch_bars",
        "error_class": "RuntimeError", "status": "FAILURE"}
    assert line["message"] == "RuntimeError: HTTP 401 for token <redacted ITICK_TOKEN>"
    assert TOKEN not in "".join(p.read_text() for p in (home / "audit").iterdir())


def test_a_real_ticklake_run_that_fails_is_recorded(tmp_path, monkeypatch, make_server, resources_for):
    home = tmp_path / "audit-home"
    monkeypatch.setenv("TICKLAKE_HOME", str(home))
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")  # the run's storage home is a file: its step fails opening the lake
    broken = build_definitions(itick=resources_for(make_server())["itick"], storage=StorageResource(home=str(blocked)))
    with dg.instance_for_test() as instance:
        result = broken.resolve_job_def("klines_freshness").execute_in_process(instance=instance,
                                                                               raise_on_error=False)
        assert not result.success
        _evaluate_failure_sensor(instance, result)
    [line] = _lines(home)
    assert line["job"] == "klines_freshness"
    assert line["partition"] is None
    assert line["step"] == "klines_daily_freshness"
    assert line["error_class"] == "NotADirectoryError"
    assert "not-a-directory/" in line["message"]  # the path that could not be created
