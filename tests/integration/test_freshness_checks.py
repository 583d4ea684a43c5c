"""The per-region freshness checks on a real instance and warehouse: a region passes when its due session is
stored, fails once the next one falls due, stays failed when an old month is backfilled, and each region reports
on its own row with how old its data is."""

from __future__ import annotations

import dagster as dg
import pytest

from automation.jobs import run_partition_range
from definitions import build_definitions

pytestmark = pytest.mark.integration


def _freshness(defs, instance, now: str) -> dict[str, dg.AssetCheckEvaluation]:
    result = defs.resolve_job_def("klines_freshness").execute_in_process(
        instance=instance, raise_on_error=False,
        run_config={"ops": {"klines_daily_freshness": {"config": {"now": now}}}})
    return {c.check_name: c for c in result.get_asset_check_evaluations()}


def test_each_region_is_judged_on_its_own_due_session(make_server, resources_for, monkeypatch):
    monkeypatch.delenv("TICKLAKE_FRESHNESS_HOURS", raising=False)
    defs = build_definitions(**resources_for(make_server()))
    instance = dg.DagsterInstance.ephemeral()
    defs.resolve_job_def("reference_refresh").execute_in_process(instance=instance, partition_key="US")
    run_partition_range(defs, "US", "2024-06", "2024-06", instance=instance)

    # Saturday 06:00 EDT: Friday 06-28 is due and stored
    checks = _freshness(defs, instance, "2024-06-29T10:00:00+00:00")
    assert {name: c.passed for name, c in checks.items()} == {
        "klines_daily_fresh_us": True, "klines_daily_fresh_hk": False, "klines_daily_fresh_sh": False,
        "klines_daily_fresh_jp": False}  # only US was ingested
    us = checks["klines_daily_fresh_us"].metadata
    assert us["due_session"].value == us["latest_stored_session"].value == "2024-06-28"
    assert us["age_hours"].value == 6.0  # since Saturday 00:00 EDT
    assert checks["klines_daily_fresh_hk"].metadata["latest_stored_session"].value == "none"
    assert checks["klines_daily_fresh_hk"].severity == dg.AssetCheckSeverity.ERROR

    # Tuesday 08:00 EDT: Monday 07-01 is due and missing
    late = _freshness(defs, instance, "2024-07-02T12:00:00+00:00")["klines_daily_fresh_us"]
    assert not late.passed
    assert late.metadata["due_session"].value == "2024-07-01"
    assert late.metadata["age_hours"].value == 80.0
    assert late.metadata["sessions_behind"].value == "1"
    assert late.description.startswith("US: stale, no bars for 2024-07-01")

    # backfilling an older month is a fresh materialization of klines_daily, but not of the due session
    run_partition_range(defs, "US", "2024-05", "2024-05", instance=instance)
    again = _freshness(defs, instance, "2024-07-02T12:00:00+00:00")["klines_daily_fresh_us"]
    assert not again.passed
    assert again.metadata["latest_stored_session"].value == "2024-06-28"

    # the stricter lag of the environment applies at run time
    monkeypatch.setenv("TICKLAKE_FRESHNESS_HOURS", "2")
    early = _freshness(defs, instance, "2024-06-29T07:00:00+00:00")["klines_daily_fresh_us"]  # 03:00 EDT
    assert early.passed
    assert early.metadata["allowed_hours"].value == 2.0


def test_warehouse_checks_job_includes_freshness_and_the_nightly_job_does_not(make_server, resources_for):
    defs = build_definitions(**resources_for(make_server()))
    names = {key.name for key in defs.resolve_job_def("warehouse_checks").asset_layer.asset_graph.asset_check_keys}
    assert {"klines_daily_fresh_us", "klines_daily_unique_key"} <= names
    nightly = defs.resolve_job_def("nightly_refresh").asset_layer
    assert not {k.name for k in nightly.asset_graph.asset_check_keys} & {"klines_daily_fresh_us"}
