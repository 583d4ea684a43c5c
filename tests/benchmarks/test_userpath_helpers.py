"""The user-path scenario's helpers: partition keys for any date grain, the UI's GraphQL documents checked
against the installed schema, the time split, child-process handling and the report."""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from benchmarks import report, ui_graphql
from benchmarks.procs import ProcessFailedError, descendants, first_line, run_timed, spawned, stop
from benchmarks.scenarios import userpath
from benchmarks.stats import union_seconds

US = "US"


def _multi(date_def: dg.PartitionsDefinition, *, date_first: bool = True) -> dg.MultiPartitionsDefinition:
    dims = {"date": date_def, "region": dg.StaticPartitionsDefinition([US, "HK"])}
    return dg.MultiPartitionsDefinition(dims if date_first else dict(reversed(dims.items())))


@pytest.mark.parametrize(("date_def", "first", "last"), [
    (dg.DailyPartitionsDefinition(start_date="2016-01-01", end_offset=1), "2024-06-03|US", "2024-07-01|US"),
    (dg.MonthlyPartitionsDefinition(start_date="2016-01", end_offset=1, fmt="%Y-%m"), "2024-06|US", "2024-07|US"),
    (dg.MonthlyPartitionsDefinition(start_date="2016-01-01", end_offset=1), "2024-06-01|US", "2024-07-01|US"),
    (dg.DailyPartitionsDefinition(start_date="2016-01-01", timezone="Asia/Tokyo"), "2024-06-03|US", "2024-07-01|US"),
])
def test_partition_range_is_derived_from_the_time_dimension_for_any_grain(date_def, first, last):
    parts = _multi(date_def)
    assert userpath.partition_range(parts, dt.date(2024, 6, 3), dt.date(2024, 7, 1), US) == (first, last)
    keys = userpath.keys_in_range(parts, first, last)
    assert keys[0] == first
    assert keys[-1] == last
    assert all(k.endswith("|US") for k in keys)  # only the asked region, not the cross product


def test_partition_key_does_not_depend_on_dimension_order():
    daily = dg.DailyPartitionsDefinition(start_date="2016-01-01")
    day = dt.date(2024, 6, 3)
    assert userpath.partition_key(_multi(daily), day, US) == userpath.partition_key(_multi(daily, date_first=False),
                                                                                     day, US)


def test_time_dimension_names_the_other_dimension():
    name, window, other = userpath.time_dimension(_multi(dg.DailyPartitionsDefinition(start_date="2016-01-01")))
    assert (name, other) == ("date", "region")
    assert isinstance(window, dg.TimeWindowPartitionsDefinition)


def test_range_keys_count_calendar_days_for_daily_and_months_for_monthly():
    daily = _multi(dg.DailyPartitionsDefinition(start_date="2016-01-01"))
    monthly = _multi(dg.MonthlyPartitionsDefinition(start_date="2016-01", fmt="%Y-%m"))
    assert len(userpath.keys_in_range(daily, "2024-06-03|US", "2024-07-01|US")) == 29
    assert len(userpath.keys_in_range(monthly, "2024-01|US", "2024-12|US")) == 12


def test_start_date_and_simulator_history_reach_back_only_when_needed():
    assert userpath.start_date_for(dt.date(2022, 12, 5)) == dt.date(2016, 1, 1)
    assert userpath.start_date_for(dt.date(2006, 11, 27)) == dt.date(2006, 1, 1)
    assert userpath.sim_history_start(dt.date(2022, 12, 5)) is None  # the baseline's simulator, unchanged
    assert userpath.sim_history_start(dt.date(2006, 11, 27)) == dt.date(2006, 1, 1)


def test_pipeline_env_points_the_pipeline_at_the_simulator(tmp_path):
    env = userpath.pipeline_env(url="http://127.0.0.1:9", home=tmp_path, region=US, start_date=dt.date(2016, 1, 1),
                                symbols=60, seed=7)
    assert env["ITICK_BASE_URL"] == "http://127.0.0.1:9"
    assert env["ITICK_TOKEN"] == "bench"
    assert int(env["ITICK_PLAN"]) >= 1_000_000  # unlimited: the local cost alone
    assert env["DAGSTER_HOME"] == str(tmp_path / "dagster")
    assert (env["TICKLAKE_HOME"], env["TICKLAKE_REGIONS"], env["TICKLAKE_START_DATE"]) == (str(tmp_path), US,
                                                                                           "2016-01-01")


def test_backfill_breakdown_splits_end_to_end_into_daemon_and_run_time():
    runs = [{"created_at": 125.0, "started_at": 130.0, "ended_at": 158.0}]
    b = userpath.backfill_breakdown(100.0, 190.0, runs)
    assert b == {"e2e_s": 90.0, "pickup_s": 25.0, "queued_s": 5.0, "run_s": 28.0, "completion_s": 32.0,
                 "daemon_overhead_s": 62.0}
    assert userpath.backfill_breakdown(0.0, 5.0, [])["daemon_overhead_s"] == 5.0


def test_event_spans_separate_bookkeeping_from_the_asset_work():
    events = [(10.0, "ASSET_MATERIALIZATION_PLANNED", "klines_daily"),
              (14.0, "ASSET_MATERIALIZATION_PLANNED", "klines_daily"),
              (15.0, "RUN_START", None),
              (16.0, "STEP_START", "klines_daily"),
              (17.0, "LOG", "klines_daily"),
              (19.5, "ASSET_MATERIALIZATION", "klines_daily"),
              (25.5, "ASSET_MATERIALIZATION", "klines_daily"),
              (26.0, "STEP_START", "klines_daily_unique_key"),
              (26.5, "ASSET_MATERIALIZATION", "other_step")]
    assert userpath.event_spans(events) == {"planned_events_s": 4.0, "step_work_s": 3.5,
                                            "materialization_events_s": 6.0}
    assert userpath.event_spans([]) == {"planned_events_s": None, "step_work_s": None,
                                        "materialization_events_s": None}


def test_union_seconds_counts_overlaps_once():
    assert union_seconds([(0, 10), (5, 15), (20, 25)]) == 20
    assert union_seconds([(3, 4), (0, 10)]) == 10
    assert union_seconds([(5, 5), (7, 6)]) == 0
    assert union_seconds([]) == 0


# -- the UI's GraphQL, against the installed schema ------------------------------------------------------
@pytest.fixture(scope="module")
def schema():
    from dagster_graphql.schema import create_schema

    return create_schema().graphql_schema


@pytest.mark.parametrize("name", sorted(ui_graphql.DOCUMENTS))
def test_documents_validate_against_the_installed_schema(schema, name):
    from graphql import parse, validate

    assert validate(schema, parse(ui_graphql.DOCUMENTS[name])) == []


def _variable_errors(schema, document: str, variables: dict) -> list:
    from graphql import OperationDefinitionNode, parse
    from graphql.execution.values import get_variable_values

    op = next(d for d in parse(document).definitions if isinstance(d, OperationDefinitionNode))
    coerced = get_variable_values(schema, op.variable_definitions, variables)
    return coerced if isinstance(coerced, list) else []


def test_launch_variables_coerce_to_the_schema_input_types(schema):
    backfill = ui_graphql.ui_backfill_params(["klines_daily"], ["2024-06-03|US", "2024-06-04|US"])
    assert _variable_errors(schema, ui_graphql.LAUNCH_BACKFILL, {"backfillParams": backfill}) == []
    run = ui_graphql.ui_run_params(location="ticklake", repository="__repository__", job="nightly_refresh",
                                   tags=[{"key": "dagster/partition", "value": "2024-06-03|US"}],
                                   run_config_yaml="{}\n")
    assert _variable_errors(schema, ui_graphql.LAUNCH_RUN, {"executionParams": run}) == []
    assert _variable_errors(schema, ui_graphql.LAUNCH_RUN, {"executionParams": {"nope": 1}}) != []


def test_ui_params_carry_the_ui_tag_and_every_key():
    backfill = ui_graphql.ui_backfill_params(["klines_daily"], ["a|US", "b|US"])
    assert backfill["partitionNames"] == ["a|US", "b|US"]
    assert backfill["assetSelection"] == [{"path": ["klines_daily"]}]
    assert backfill["tags"] == [{"key": "dagster/from_ui", "value": "true"}]
    assert "partitionsByAssets" not in backfill  # the installed UI lists keys (see ui_graphql's docstring)
    together = ui_graphql.ui_backfill_params(["securities"], ["US"], ["trading_calendar"])
    assert together["assetSelection"] == [{"path": ["securities"]}, {"path": ["trading_calendar"]}]
    tags = ui_graphql.tags_with_ui([{"key": "dagster/from_ui", "value": "false"}, {"key": "x", "value": "1"}])
    assert tags == [{"key": "x", "value": "1"}, {"key": "dagster/from_ui", "value": "true"}]


def _ready_data(status="LOADED", healthy=True, location_type="RepositoryLocation"):
    return {"workspaceOrError": {"__typename": "Workspace", "locationEntries": [{
        "name": "ticklake", "loadStatus": status,
        "locationOrLoadError": {"__typename": location_type, "name": "ticklake", "message": "boom",
                                "repositories": [{"name": "__repository__", "jobs": [{"name": "nightly_refresh"}]}]},
    }]}, "instance": {"daemonHealth": {"allDaemonStatuses": [
        {"daemonType": "BACKFILL", "required": True, "healthy": healthy},
        {"daemonType": "QUEUED_RUN_COORDINATOR", "required": True, "healthy": True}]}}}


def test_readiness_waits_for_the_location_and_the_daemons_and_raises_on_a_load_error():
    assert ui_graphql.readiness(_ready_data(), "nightly_refresh") == ("ticklake", "__repository__")
    assert "LOADING" in ui_graphql.readiness(_ready_data(status="LOADING"), "nightly_refresh")
    assert "BACKFILL" in ui_graphql.readiness(_ready_data(healthy=False), "nightly_refresh")
    with pytest.raises(ui_graphql.NotLaunchableError, match="no code location defines job other_job"):
        ui_graphql.readiness(_ready_data(), "other_job")
    with pytest.raises(ui_graphql.NotLaunchableError, match="failed to load"):
        ui_graphql.readiness(_ready_data(location_type="PythonError"), "nightly_refresh")


def test_latency_settings_report_the_instance_defaults(tmp_path):
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with userpath.open_instance(tmp_path) as instance:
        rows = {r["setting"]: r for r in userpath.latency_settings(instance)}
    assert rows["run coordinator"]["value"] == "QueuedRunCoordinator"
    assert rows["dequeue interval s"]["value"] == 5
    assert rows["backfill daemon loop s"]["value"] == 30
    assert rows["backfill daemon loop s"]["dagster_yaml"].startswith("none")


# -- child processes -------------------------------------------------------------------------------------
def test_run_timed_returns_wall_and_a_failure_quotes_stderr(tmp_path):
    ok = run_timed("ok", [sys.executable, "-c", "print('hi')"], env={}, cwd=tmp_path, log_dir=tmp_path,
                   timeout_s=60)
    assert ok.wall_s > 0
    assert ok.exited_at >= ok.spawned_at
    with pytest.raises(ProcessFailedError, match=r"(?s)exit 3.*no such table"):
        run_timed("bad", [sys.executable, "-c", "import sys; sys.stderr.write('no such table\\n'); sys.exit(3)"],
                  env={}, cwd=tmp_path, log_dir=tmp_path, timeout_s=60)
    with pytest.raises(ProcessFailedError, match="timed out"):
        run_timed("slow", [sys.executable, "-c", "import time; time.sleep(30)"], env={}, cwd=tmp_path,
                  log_dir=tmp_path, timeout_s=0.5)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_stopping_a_child_stops_its_whole_tree(tmp_path):
    tree = ("import subprocess, sys, time\n"
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
            "print('ready', flush=True)\n"
            "time.sleep(60)\n")
    with spawned("tree", [sys.executable, "-c", tree], env={}, cwd=tmp_path, log_dir=tmp_path, grace_s=2) as child:
        assert first_line(child, timeout_s=30) == "ready"
        deadline = time.monotonic() + 10
        while not descendants(child.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        grandchildren = descendants(child.proc.pid)
        assert grandchildren
    assert child.proc.poll() is not None
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in grandchildren) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in grandchildren)
    stop(child)  # idempotent


def test_first_line_reports_a_child_that_dies_silently(tmp_path):
    with spawned("dies", [sys.executable, "-c", "import sys; sys.stderr.write('bad port\\n'); sys.exit(2)"], env={},
                 cwd=tmp_path, log_dir=tmp_path) as child, pytest.raises(ProcessFailedError, match="bad port"):
        first_line(child, timeout_s=30)


def test_descendants_walks_the_parent_map():
    parents = {2: 1, 3: 2, 4: 2, 5: 9}
    assert descendants(1, parents) == [2, 3, 4]
    assert descendants(5, parents) == []


# -- the report ------------------------------------------------------------------------------------------
def _userpath_result(scale_symbols=500, scale_sessions=1000) -> dict:
    cli = {"symbols": 500, "sessions": 1000, "partitions": 1450, "bars_stored": 484_758, "securities_s": 9.0,
           "definitions_import_s": 2.0, "wall_s": 40.0, "startup_s": 4.0, "queued_s": 0.1, "run_s": 33.0,
           "step_s": 6.0, "steps_s": 9.0, "teardown_s": 2.0, "events": 3000, "bars_per_s": 12_000.0,
           "first_session": "2022-12-01", "last_session": "2026-11-25"}
    seed = {"symbols": 500, "sessions": 1000, "bars": 484_758, "wall_s": 6.0, "bars_per_s": 80_000.0,
            "first_session": "2022-12-01", "last_session": "2026-11-25"}
    backfill = {"partitions": 1450, "runs": 1, "e2e_s": 90.0, "pickup_s": 25.0, "queued_s": 5.0, "run_s": 28.0,
                "step_s": 2.6, "steps_s": 5.0, "completion_s": 32.0, "daemon_overhead_s": 62.0, "events": 3000}
    nightly = {"partition": "2026-11-25|US", "launch_to_success_s": 30.0, "queued_s": 8.0, "run_s": 20.0,
               "step_s": 1.0, "steps_s": 2.0, "seen_done_s": 0.2, "events": 50}
    from benchmarks.cli import userpath_comparison

    return {"scale": {"name": "small", "userpath_symbols": scale_symbols, "userpath_sessions": scale_sessions},
            "scenarios": {"userpath": {
                "seed_article": {"median": seed}, "cli": {"median": cli},
                "dev": {"median": {"dev_ready_s": 20.0, "securities_s": 9.0, "backfill": backfill,
                                   "nightly": nightly}},
                "large": {"median": {**cli, "symbols": 5000, "sessions": 5040, "wall_s": 400.0}},
                "instance_settings": [{"setting": "dequeue interval s", "value": 5, "dagster_yaml": "run_queue.x",
                                       "default": "5", "read_in": "somewhere"}],
                "comparison": userpath_comparison(cli, seed)}}}


def test_userpath_targets_compare_with_the_seed_article_and_the_absolute_limits():
    targets = {t["metric"]: t for t in report.targets(_userpath_result())}
    ratio = next(t for m, t in targets.items() if m.startswith("CLI materialize wall / seed"))
    assert ratio["value"] == pytest.approx(6.67)
    assert ratio["status"] == "MISS"
    large = next(t for m, t in targets.items() if "20 y" in m)
    assert large["status"] == "MISS"
    nightly = next(t for m, t in targets.items() if m.startswith("nightly Materialize"))
    assert nightly["status"] == "MISS"
    assert next(t for m, t in targets.items() if m.startswith("UI backfill"))["status"] == "-"


def test_userpath_tables_render_every_figure():
    lines = "\n".join(report.render_userpath(_userpath_result()["scenarios"]["userpath"]))
    assert "UI backfill" in lines
    assert "nightly 2026-11-25|US" in lines
    assert "cli large" in lines
    assert "6.67x wall" in lines
    assert "dequeue interval s" in lines


# -- the production profile's UI benchmark --------------------------------------------------------------
def test_the_ui_benchmark_backfills_whole_months_that_are_real_partitions():
    from assets.partitions import month_region_partitions
    from benchmarks import distributed_ui

    assert distributed_ui.whole_months(dt.date(2026, 1, 15), 3) == ["2025-10", "2025-11", "2025-12"]
    assert distributed_ui.whole_months(dt.date(2024, 7, 1), 1) == ["2024-06"]
    keys = distributed_ui.klines_keys(["2024-05", "2024-06"], ("US", "HK"))
    assert keys == ["2024-05|US", "2024-06|US", "2024-05|HK", "2024-06|HK"]
    assert set(keys) <= set(month_region_partitions.get_partition_keys())
