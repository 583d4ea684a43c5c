"""Per klines run: request latency p50/p95 per endpoint and data lag per region; the month in progress fails the
warn-severity `month_complete` check instead of reading as finished (issue 20, item 5)."""

from __future__ import annotations

import dagster as dg
import pytest

from automation.jobs import run_partition_range
from definitions import build_definitions

pytestmark = pytest.mark.integration


def _run(defs, instance, now: str, first: str, last: str):
    result = run_partition_range(defs, "US", first, last, instance=instance,
                                 run_config={"ops": {"klines_daily": {"config": {"now": now}}}})
    assert result.success
    metadata = {}
    for event in result.get_asset_materialization_events():
        m = event.step_materialization_data.materialization
        metadata[m.partition] = m.metadata
    [check] = [c for c in result.get_asset_check_evaluations() if c.check_name == "month_complete"]
    return metadata, check


def test_latency_lag_and_the_month_in_progress(make_server, resources_for, home):
    server = make_server()
    defs = build_definitions(**resources_for(server))
    instance = dg.DagsterInstance.ephemeral()
    defs.resolve_job_def("reference_refresh").execute_in_process(instance=instance, partition_key="US")
    # 2024-06-26 12:00 UTC: the 26th (closes 20:00 UTC) has not closed; the last stored session is the 25th
    metadata, check = _run(defs, instance, "2024-06-26T12:00:00+00:00", "2024-05", "2024-06")
    june, may = metadata["2024-06|US"], metadata["2024-05|US"]
    assert june["data_lag_hours"].value == pytest.approx(16.0)  # 2024-06-25 20:00 UTC -> 2024-06-26 12:00 UTC
    assert june["run_data_lag_hours"].value == {"US": 16.0}
    assert may["data_lag_hours"].value == pytest.approx(16.0)  # the region's lag, on each of its partitions
    klines_calls = server.simulator.counters.count("/stock/klines")
    assert klines_calls >= 1
    assert "| /stock/klines | " in june["run_api_latency_ms"].value
    p50, p95 = june["run_api_stock_klines_p50_ms"].value, june["run_api_stock_klines_p95_ms"].value
    assert 0 < p50 <= p95
    assert not check.passed
    assert check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["incomplete_partitions"].value == "2024-06|US"
    assert check.metadata["next_to_close"].value == "2024-06|US 2024-06-26"
    assert check.metadata["sessions_not_closed"].value == 3  # the 26th, 27th and 28th

    # once June has closed, the month is complete and the check passes
    _, check = _run(defs, instance, "2024-07-01T12:00:00+00:00", "2024-06", "2024-06")
    assert check.passed
    assert check.metadata["incomplete_partitions"].value == "none"
