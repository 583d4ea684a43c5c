"""Absence is not data, end to end: real Dagster runs against simulators that leave codes out of their answers,
send codes nobody asked for, or list entries without a usable code. Nothing stored is lost, and it is reported."""

from __future__ import annotations

import logging

import dagster as dg
import pandas as pd
import pytest
import yaml

import ticklake
from automation.jobs import run_partition_range
from definitions import build_definitions
from tests.distributed import ROOT
from ticklake.storage.frames import fetch_frame

pytestmark = pytest.mark.integration

MONTH = "2024-06"


def _stored(home) -> pd.DataFrame:
    with ticklake.connect(home) as con:
        return fetch_frame(con.execute("SELECT * FROM klines_daily ORDER BY symbol, trade_date"))


def _first_run(make_server, resources_for, instance) -> tuple[list[str], dict]:
    server = make_server()
    defs = build_definitions(**resources_for(server))
    defs.resolve_job_def("reference_refresh").execute_in_process(instance=instance, partition_key="US")
    assert run_partition_range(defs, "US", MONTH, MONTH, instance=instance).success
    live = sorted(s.code for s in server.simulator.universe("US") if s.delisted is None)
    return live, {}


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {c.check_name: c for c in result.get_asset_check_evaluations()}


@pytest.mark.parametrize("style", ["omit", "null"])
def test_codes_left_out_of_the_answer_keep_their_stored_bars_and_are_reported(make_server, resources_for, home,
                                                                              style):
    instance = dg.DagsterInstance.ephemeral()
    live, _ = _first_run(make_server, resources_for, instance)
    before = _stored(home)
    gone = live[:2]  # the same data, but these codes never come back in a batch answer
    flaky = make_server(batch_omit_codes=frozenset(gone), batch_omit_style=style)
    defs = build_definitions(**resources_for(flaky))
    result = run_partition_range(defs, "US", MONTH, MONTH, instance=instance)
    assert result.success
    pd.testing.assert_frame_equal(_stored(home), before)  # nothing deleted, nothing changed
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["missing_codes"].value == 2
    assert meta["missing_code_list"].value == ", ".join(gone)
    assert meta["rows_kept"].value == int(before["symbol"].isin(gone).sum()) > 0
    check = _checks(result)["requested_codes_answered"]
    assert check.passed is False
    assert check.severity == dg.AssetCheckSeverity.ERROR  # 2 of 12 codes is more than 5%
    assert "US:" + gone[0] in check.metadata["codes"].value
    # the source was asked once more for exactly those codes before giving up on them
    assert flaky.simulator.counters.count("/stock/klines") == 2


def test_an_empty_answer_for_a_code_with_stored_bars_keeps_them(make_server, resources_for, home):
    instance = dg.DagsterInstance.ephemeral()
    live, _ = _first_run(make_server, resources_for, instance)
    before = _stored(home)
    hollow = make_server(batch_omit_codes=frozenset(live[:1]), batch_omit_style="empty")  # `"X": []`, always
    result = run_partition_range(build_definitions(**resources_for(hollow)), "US", MONTH, MONTH, instance=instance)
    assert result.success
    pd.testing.assert_frame_equal(_stored(home), before)
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["missing_code_list"].value == live[0]
    assert meta["rows_removed"].value == 0
    assert _checks(result)["requested_codes_answered"].passed is False


def test_an_empty_answer_for_a_code_with_nothing_stored_is_just_no_trading(make_server, resources_for, home):
    instance = dg.DagsterInstance.ephemeral()
    server = make_server()
    live = sorted(s.code for s in server.simulator.universe("US") if s.delisted is None)
    hollow = make_server(batch_omit_codes=frozenset(live[:1]), batch_omit_style="empty")
    defs = build_definitions(**resources_for(hollow))
    defs.resolve_job_def("reference_refresh").execute_in_process(instance=instance, partition_key="US")
    result = run_partition_range(defs, "US", MONTH, MONTH, instance=instance)
    assert live[0] not in set(_stored(home)["symbol"])
    assert _checks(result)["requested_codes_answered"].passed  # nothing was held back, nothing to report


def test_a_few_unanswered_codes_warn_under_the_share_that_makes_it_an_error(make_server, resources_for, home,
                                                                           monkeypatch):
    monkeypatch.setenv("TICKLAKE_MAX_MISSING_SHARE", "0.5")
    instance = dg.DagsterInstance.ephemeral()
    live, _ = _first_run(make_server, resources_for, instance)
    flaky = make_server(batch_omit_codes=frozenset(live[:1]))
    result = run_partition_range(build_definitions(**resources_for(flaky)), "US", MONTH, MONTH, instance=instance)
    check = _checks(result)["requested_codes_answered"]
    assert (check.passed, check.severity) == (False, dg.AssetCheckSeverity.WARN)


def test_a_code_answered_on_the_second_ask_is_stored_like_any_other(make_server, resources_for, home):
    instance = dg.DagsterInstance.ephemeral()
    live, _ = _first_run(make_server, resources_for, instance)
    before = _stored(home)
    late = make_server(batch_omit_codes=frozenset(live[:3]), batch_omit_times=1)
    result = run_partition_range(build_definitions(**resources_for(late)), "US", MONTH, MONTH, instance=instance)
    assert _checks(result)["requested_codes_answered"].passed
    pd.testing.assert_frame_equal(_stored(home), before)


def test_codes_nobody_asked_for_are_dropped_with_a_warning(make_server, resources_for, home):
    instance = dg.DagsterInstance.ephemeral()
    server = make_server(batch_extra_codes=("ZZZZ",))
    defs = build_definitions(**resources_for(server))
    defs.resolve_job_def("reference_refresh").execute_in_process(instance=instance, partition_key="US")
    result = run_partition_range(defs, "US", MONTH, MONTH, instance=instance)
    assert result.success
    assert "ZZZZ" not in set(_stored(home)["symbol"])
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["run_unrequested_codes"].value == 1
    warnings = [e.message for e in instance.all_logs(result.run_id) if e.level == logging.WARNING]
    assert any("ZZZZ" in w for w in warnings)


def test_symbol_list_entries_without_a_usable_code_are_refused_and_counted(make_server, resources_for, home):
    hostile = ({"n": "no code"}, {"c": None, "n": "null code"}, {"c": "A,B", "n": "comma"},
               {"c": "X" * 1500, "n": "long"}, {"c": "OK1", "n": "fine", "e": "NASDAQ"})
    server = make_server(symbol_list_extra=hostile)
    defs = build_definitions(**resources_for(server))
    result = defs.resolve_job_def("reference_refresh").execute_in_process(instance=dg.DagsterInstance.ephemeral(),
                                                                           partition_key="US")
    assert result.success
    [meta] = [e.materialization.metadata for e in result.get_asset_materialization_events()
              if e.asset_key == dg.AssetKey("securities")]
    assert meta["entries_refused"].value == 4
    with ticklake.connect(home) as con:
        symbols = {r[0] for r in con.execute("SELECT symbol FROM securities").fetchall()}
    assert "OK1" in symbols
    assert not symbols & {"None", "A,B", "A", "B", "X" * 1500}


def test_the_librarys_warnings_are_events_of_the_run(make_server, resources_for, home):
    """ticklake reports through Python's logging; both instance files make Dagster store those lines as events of
    the run, so the UI shows them beside the step even when the step ran on a Celery worker elsewhere."""
    python_logs = {name: yaml.safe_load((ROOT / name).read_text())["python_logs"]
                   for name in ("instance/dagster.yaml", "deploy/dagster.yaml")}
    assert python_logs["instance/dagster.yaml"] == python_logs["deploy/dagster.yaml"]
    instance = dg.DagsterInstance.ephemeral(settings={"python_logs": python_logs["deploy/dagster.yaml"]})
    live, _ = _first_run(make_server, resources_for, instance)
    flaky = make_server(batch_omit_codes=frozenset(live[:2]))
    result = run_partition_range(build_definitions(**resources_for(flaky)), "US", MONTH, MONTH, instance=instance)
    warnings = [e.user_message for e in instance.all_logs(result.run_id) if e.level == logging.WARNING]
    assert any("still missing" in m and live[0] in m for m in warnings), warnings
