"""The warehouse-wide checks run in their own job, pass on what the pipeline stored, and fail on what it must not
store: duplicate keys, bars on a non-session, a lake file the warehouse does not match."""

from __future__ import annotations

import dagster as dg
import pytest

from automation.jobs import run_partition_range
from checks.expectations import CHECK_KEYS
from definitions import build_definitions
from resources.storage import StorageResource

pytestmark = [pytest.mark.integration, pytest.mark.slow]
EXPECTATION_CHECKS = {key.name for key in CHECK_KEYS}


def _checks(defs, instance) -> dict[str, bool]:
    result = defs.resolve_job_def("warehouse_checks").execute_in_process(instance=instance, raise_on_error=False)
    # the per-region freshness checks run in this job too; they judge "now", tested in test_freshness_checks.py;
    # so does the Great Expectations suite, tested in test_great_expectations.py
    return {c.check_name: c.passed for c in result.get_asset_check_evaluations()
            if not c.check_name.startswith("klines_daily_fresh_") and c.check_name not in EXPECTATION_CHECKS}


def test_warehouse_checks_pass_on_good_data_and_fail_on_corruption(make_server, resources_for, home):
    server = make_server()
    defs = build_definitions(**resources_for(server))
    instance = dg.DagsterInstance.ephemeral()
    defs.resolve_job_def("reference_refresh").execute_in_process(instance=instance, partition_key="US")
    result = run_partition_range(defs, "US", "2024-06", "2024-06", instance=instance)
    # the nightly job leaves the warehouse-wide checks to their own job
    assert {c.check_name for c in result.get_asset_check_evaluations()} == {
        "stored_rows_match_lake", "every_session_has_bars", "requested_codes_answered", "no_rows_quarantined",
        "daily_moves_plausible", "month_complete", "golden_exceptions_open"}
    assert _checks(defs, instance) == {"klines_daily_unique_key": True, "klines_daily_on_calendar": True,
                                       "klines_daily_lake_matches_warehouse": True, "securities_not_empty": True,
                                       "klines_daily_inside_listing_window": True}

    with StorageResource(home=str(home)).lakehouse().connection() as con:  # what a bug could do, around the pipeline
        con.execute("INSERT INTO klines_daily SELECT * FROM klines_daily WHERE trade_date = '2024-06-03' LIMIT 1")
        con.execute("INSERT INTO klines_daily SELECT * REPLACE (DATE '2024-06-09' AS trade_date) FROM klines_daily "
                    "WHERE trade_date = '2024-06-07' LIMIT 1")  # a Sunday
        symbol = con.execute("SELECT symbol FROM klines_daily WHERE trade_date = '2024-06-03' ORDER BY 1 LIMIT 1"
                             ).fetchone()[0]
        con.execute("UPDATE security_master SET listing_date = DATE '2024-06-10' WHERE symbol = ?", [symbol])
    assert _checks(defs, instance) == {"klines_daily_unique_key": False, "klines_daily_on_calendar": False,
                                       "klines_daily_lake_matches_warehouse": False, "securities_not_empty": True,
                                       "klines_daily_inside_listing_window": False}
    result = defs.resolve_job_def("warehouse_checks").execute_in_process(instance=instance, raise_on_error=False)
    [window] = [c for c in result.get_asset_check_evaluations()
                if c.check_name == "klines_daily_inside_listing_window"]
    assert window.severity == dg.AssetCheckSeverity.WARN
    assert f"US {symbol}:" in window.metadata["details"].value
