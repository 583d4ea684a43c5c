"""The Great Expectations suite passes on a warehouse the real jobs built from the simulator, fails with the
offending keys when the pipeline's database is corrupted, and writes its Data Docs under the home only."""

from __future__ import annotations

import re

import dagster as dg
import pytest

from automation.jobs import run_partition_range
from checks.expectations import CHECK_KEYS
from definitions import build_definitions
from resources.storage import StorageResource
from ticklake.quality import expectations

pytestmark = [pytest.mark.integration, pytest.mark.slow]
NAMES = {key.name for key in CHECK_KEYS}


def _evaluations(defs, instance) -> dict[str, dg.AssetCheckEvaluation]:
    result = defs.resolve_job_def("warehouse_checks").execute_in_process(instance=instance, raise_on_error=False)
    return {c.check_name: c for c in result.get_asset_check_evaluations() if c.check_name in NAMES}


def test_suite_passes_then_fails_on_corruption_with_docs_under_home(make_server, resources_for, home, tmp_path,
                                                                     monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("TICKLAKE_DATA_DOCS_URL", raising=False)
    defs = build_definitions(**resources_for(make_server()))
    instance = dg.DagsterInstance.ephemeral()
    for job in ("reference_refresh",):
        assert defs.resolve_job_def(job).execute_in_process(instance=instance, partition_key="US").success
    assert run_partition_range(defs, "US", "2024-05", "2024-06", instance=instance).success
    for job in ("fundamentals_refresh", "analytics_refresh"):
        assert defs.resolve_job_def(job).execute_in_process(instance=instance, partition_key="US").success

    good = _evaluations(defs, instance)
    assert set(good) == NAMES
    assert {name: c.passed for name, c in good.items() if not c.passed} == {}
    klines = good["klines_daily_expectations"].metadata
    assert klines["expectations_failed"].value == 0
    assert klines["rows_validated"].value > 0
    # links the UI can open: http, served by `python -m ticklake.expectations serve` (never file://)
    assert klines["data_docs"].value.startswith("http://127.0.0.1:8766/validations/klines_daily/expectations/")
    page = expectations.docs_root(home) / expectations.SITE / klines["data_docs"].value.removeprefix(
        "http://127.0.0.1:8766/")
    assert page.is_file()
    assert expectations.docs_index(home).is_file()
    assert klines["data_docs_index"].value == "http://127.0.0.1:8766/index.html"
    assert klines["data_docs_path"].value == str(expectations.docs_index(home))
    # offline: no page loads a script, a style or an image from the network; the index lists every validation
    site = expectations.docs_root(home) / expectations.SITE
    for html in site.rglob("*.html"):
        assert not re.search(r"""(src=|<link[^>]*href=)["']https?://""", html.read_text()), html
    index = expectations.docs_index(home).read_text()
    assert index.count('<tr><td><a href="validations/') == len(NAMES)
    assert list(cwd.iterdir()) == []  # nothing written to the working directory

    with StorageResource(home=str(home)).lakehouse().connection() as con:  # what a bug could do, around the pipeline
        con.execute("INSERT INTO klines_daily SELECT * FROM klines_daily WHERE trade_date = '2024-06-03' "
                    "ORDER BY symbol LIMIT 1")
        con.execute("INSERT INTO klines_daily SELECT * REPLACE ('ZZZZ' AS symbol) FROM klines_daily "
                    "WHERE trade_date = '2024-06-04' LIMIT 1")
        duplicate = con.execute("SELECT symbol FROM klines_daily WHERE trade_date = '2024-06-03' ORDER BY symbol "
                                "LIMIT 1").fetchone()[0]
    bad = _evaluations(defs, instance)
    assert {name for name, c in bad.items() if not c.passed} == {"klines_daily_expectations",
                                                                 "klines_daily_references"}
    unique, references = bad["klines_daily_expectations"], bad["klines_daily_references"]
    assert unique.severity == references.severity == dg.AssetCheckSeverity.ERROR
    failures = unique.metadata["failures"].value
    assert "expect_compound_columns_to_be_unique" in failures
    assert f"'symbol': '{duplicate}'" in failures
    assert "US ZZZZ" in references.metadata["failures"].value


def test_one_check_runs_on_its_own(make_server, resources_for, home):
    defs = build_definitions(**resources_for(make_server()))
    instance = dg.DagsterInstance.ephemeral()
    assert defs.resolve_job_def("reference_refresh").execute_in_process(instance=instance, partition_key="US").success
    [key] = [k for k in CHECK_KEYS if k.name == "securities_expectations"]
    job = defs.resolve_job_def("warehouse_checks").get_subset(asset_check_selection={key})
    result = job.execute_in_process(instance=instance, resources={"storage": defs.resources["storage"]})
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.check_name == "securities_expectations"
    assert evaluation.passed
    assert expectations.docs_index(home).is_file()


def test_a_ui_backfill_of_klines_skips_the_suites_which_run_in_warehouse_checks(make_server, resources_for, home):
    """An asset backfill from the UI runs Dagster's implicit asset job with every check of klines_daily (GE's three
    among them): the suites yield nothing there (seconds of GE per run, for lake-wide suites); the checks-only job
    validates them."""
    from assets.klines import klines_daily

    defs = build_definitions(**resources_for(make_server()))
    instance = dg.DagsterInstance.ephemeral()
    assert defs.resolve_job_def("reference_refresh").execute_in_process(instance=instance, partition_key="US").success
    checks = defs.resolve_asset_graph().get_check_keys_for_assets({klines_daily.key})  # what an asset backfill runs
    assert {k.name for k in checks} >= {"klines_daily_expectations", "klines_daily_completeness"}
    job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection={klines_daily.key},
                                                                  asset_check_selection=checks)
    result = job.execute_in_process(instance=instance, raise_on_error=False, tags={
        "dagster/asset_partition_range_start": "2024-05|US", "dagster/asset_partition_range_end": "2024-06|US"})
    assert result.success
    evaluated = {c.check_name for c in result.get_asset_check_evaluations()}
    assert {"stored_rows_match_lake", "klines_daily_unique_key"} <= evaluated
    assert not evaluated & NAMES
    assert not expectations.docs_root(home).exists()  # Great Expectations never ran
    assert {"klines_daily_expectations", "klines_daily_completeness", "klines_daily_references"} <= set(
        _evaluations(defs, instance))
