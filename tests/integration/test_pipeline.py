"""Real Dagster materializations against the simulator over loopback HTTP, into a real lake and DuckDB file."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math

import dagster as dg
import pandas as pd
import pytest

import ticklake
from automation.jobs import run_partition_range
from definitions import build_definitions
from resources.storage import StorageResource
from ticklake import markets
from ticklake.datasets.context import RunContext
from ticklake.dictionary import KLINES_DAILY
from ticklake.storage.frames import fetch_frame

pytestmark = pytest.mark.integration

BAR_COLUMNS = {"open": "o", "high": "h", "low": "l", "close": "c", "volume": "v", "turnover": "tu"}


def _run(resources: dict, region: str, sessions: list[dt.date], instance=None, refresh_securities=True,
         raise_on_error=True) -> dg.ExecuteInProcessResult:
    """Materialize the months holding `sessions` (whole months: the partition grain) as one single run."""
    defs = build_definitions(**resources)
    instance = instance or dg.DagsterInstance.ephemeral()
    if refresh_securities:
        defs.resolve_job_def("reference_refresh").execute_in_process(instance=instance, partition_key=region)
    return run_partition_range(defs, region, f"{sessions[0]:%Y-%m}", f"{sessions[-1]:%Y-%m}", instance=instance,
                               raise_on_error=raise_on_error)


def _month_sessions(region: str, first: dt.date, last: dt.date) -> list[dt.date]:
    """Every session of the months from `first` to `last` (what a run over those months fetches)."""
    return markets.sessions(region, first.replace(day=1), (pd.Timestamp(last) + pd.offsets.MonthEnd(0)).date())


def _warehouse(home, sql: str = "SELECT * FROM klines_daily ORDER BY region, symbol, trade_date") -> pd.DataFrame:
    with ticklake.connect(home) as con:
        return fetch_frame(con.execute(sql))


def _truth(simulator, region: str, sessions: list[dt.date]) -> pd.DataFrame:
    frames = [simulator.daily_bars(region, s.code).assign(symbol=s.code) for s in simulator.universe(region)]
    truth = pd.concat(frames, ignore_index=True)
    truth = truth[truth["trade_date"].between(pd.Timestamp(sessions[0]), pd.Timestamp(sessions[-1]))]
    return truth.sort_values(["symbol", "trade_date"]).reset_index(drop=True)


def _lake_digest(home) -> dict[str, str]:
    """The data files of every table but `lake_partitions`, whose rows say when each partition was last committed
    (a re-run commits them again; a partition whose rows did not change is not rewritten)."""
    root = home / "lake"
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.parquet")) if p.relative_to(root).parts[:2] != ("main", "lake_partitions")}


@pytest.mark.parametrize(("region", "bar_time", "convention"),
                         [("US", "close", "exchange_local"), ("HK", "utc_midnight", "utc"),
                          ("JP", "local_midnight", "exchange_local")])
def test_stored_rows_equal_the_simulators_ground_truth(make_server, resources_for, home, region, bar_time,
                                                        convention):
    server = make_server(bar_time=bar_time, sort_order="desc", max_codes_per_call=5)
    resources = resources_for(server, max_codes_per_call=5, bar_time_convention=convention)
    sessions = markets.sessions(region, dt.date(2024, 4, 1), dt.date(2024, 6, 28))
    result = _run(resources, region, sessions)
    assert result.success

    stored = _warehouse(home)
    truth = _truth(server.simulator, region, sessions)
    assert len(stored) == len(truth) > 0
    assert stored["symbol"].tolist() == truth["symbol"].tolist()
    assert (pd.to_datetime(stored["trade_date"]).to_numpy() == truth["trade_date"].to_numpy()).all()
    for ours, theirs in BAR_COLUMNS.items():
        assert (stored[ours].to_numpy() == truth[theirs].to_numpy()).all(), ours
    assert set(stored["region"]) == {region}
    assert set(stored["source"]) == {"itick"}
    assert stored["run_id"].nunique() == 1

    # every month got its own lake partition holding exactly its rows
    lake = StorageResource(home=str(home)).lakehouse()
    for month in ("2024-04", "2024-06"):
        part = lake.read(KLINES_DAILY, region=region, month=month, source="itick")
        assert len(part) == int((truth["trade_date"].dt.strftime("%Y-%m") == month).sum())
    securities = _warehouse(home, "SELECT symbol FROM securities ORDER BY symbol")["symbol"].tolist()
    assert securities == sorted(s.code for s in server.simulator.universe(region))


def test_single_run_backfill_receives_exactly_the_requested_partitions(make_server, resources_for):
    server = make_server()
    sessions = markets.sessions("US", dt.date(2024, 4, 1), dt.date(2024, 6, 28))
    result = _run(resources_for(server), "US", sessions)
    events = {e.partition: e.materialization.metadata for e in result.get_asset_materialization_events()
              if e.asset_key == dg.AssetKey("klines_daily")}
    assert set(events) == {"2024-04|US", "2024-05|US", "2024-06|US"}
    assert events["2024-06|US"]["sessions_fetched"].value == 19  # Juneteenth is not a session
    assert events["2024-05|US"]["sessions_fetched"].value == 22
    assert events["2024-04|US"]["run_sessions_fetched"].value == len(sessions) == 22 + 22 + 19


def test_backfill_spends_the_minimum_number_of_calls(make_server, resources_for):
    server = make_server(symbols_per_region=120)
    batch_cap = 50
    sessions = _month_sessions("US", dt.date(2023, 5, 1), dt.date(2024, 6, 28))
    assert 250 < len(sessions) < 1000
    result = _run(resources_for(server, max_codes_per_call=batch_cap), "US", sessions)
    assert result.success
    counters = server.simulator.counters
    assert counters.count("/stock/klines") == math.ceil(120 / batch_cap) * math.ceil(len(sessions) / 1000) == 3
    # reference calls: one symbol list (both securities and security_master are built from it), holidays
    # (trading_calendar), one IPO page, one split page (corporate_actions)
    assert counters.count("/symbol/list") == 1
    assert counters.count("/symbol/v2/holidays") == counters.count("/stock/ipo") == counters.count("/stock/split") == 1
    assert counters.total == 3 + 4
    assert counters.rate_limited == 0


def test_same_quota_on_both_sides_gets_zero_429s(make_server, resources_for):
    # 12 symbols / 2 per call = 6 kline calls + 1 list call against 3 calls per 1 s on both sides
    server = make_server(calls_per_window=3, window_seconds=1.0, max_codes_per_call=2)
    # the margin absorbs loopback jitter on a loaded CI machine (production: 2% of a 60 s window)
    resources = resources_for(server, plan="3", window_seconds=1.0, quota_margin_s=0.25, max_codes_per_call=2,
                              max_concurrency=4)
    sessions = markets.sessions("US", dt.date(2024, 6, 3), dt.date(2024, 6, 28))
    assert _run(resources, "US", sessions).success
    assert server.simulator.counters.rate_limited == 0
    assert server.simulator.counters.count("/stock/klines") == 6


def test_stricter_simulator_429s_are_retried_and_the_run_succeeds(make_server, resources_for, home):
    server = make_server(calls_per_window=2, window_seconds=1.0, max_codes_per_call=2)
    # the same compressed 1 s window on both sides: the client's limiter measures the server's grants per window
    resources = resources_for(server, plan="100000", window_seconds=1.0, max_codes_per_call=2, max_concurrency=4,
                              backoff_base_s=0.3)
    sessions = markets.sessions("US", dt.date(2024, 6, 3), dt.date(2024, 6, 28))
    result = _run(resources, "US", sessions)
    assert result.success
    assert server.simulator.counters.rate_limited > 0
    metadata = next(e for e in result.get_asset_materialization_events()).materialization.metadata
    assert metadata["run_api_rate_limited"].value > 0
    assert len(_warehouse(home)) == len(_truth(server.simulator, "US", sessions))


def test_rerunning_the_same_partitions_is_byte_for_byte_idempotent(make_server, resources_for, home):
    server = make_server()
    resources = resources_for(server)
    sessions = markets.sessions("US", dt.date(2024, 6, 3), dt.date(2024, 6, 28))
    instance = dg.DagsterInstance.ephemeral()
    _run(resources, "US", sessions, instance=instance)
    first, first_lake = _warehouse(home), _lake_digest(home)
    second_run = _run(resources, "US", sessions, instance=instance, refresh_securities=False)
    assert second_run.success
    pd.testing.assert_frame_equal(_warehouse(home), first)
    assert _lake_digest(home) == first_lake
    metadata = second_run.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["run_rows_unchanged"].value == len(first)
    assert metadata["run_rows_added"].value == metadata["run_rows_changed"].value == 0
    # an overlapping range only touches its own partitions
    _run(resources, "US", sessions[-3:], instance=instance, refresh_securities=False)
    pd.testing.assert_frame_equal(_warehouse(home), first)


def test_bad_data_fails_the_step_and_keeps_the_last_good_version(make_server, resources_for, home):
    server = make_server(bar_time="utc_midnight")
    sessions = markets.sessions("US", dt.date(2024, 6, 3), dt.date(2024, 6, 28))
    assert _run(resources_for(server, bar_time_convention="utc"), "US", sessions).success
    good, good_lake = _warehouse(home), _lake_digest(home)
    # Reading 00:00 UTC stamps as New York instants shifts every bar to the previous evening: Monday's bars
    # land on Sunday, which is not a session, so validation must refuse the whole page.
    bad = resources_for(server, bar_time_convention="exchange_local")
    result = _run(bad, "US", sessions, refresh_securities=False, raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert "trade_date inside the partition" in str(failure)
    assert "2024-06-09" in str(failure)  # a Sunday, named with the offending rows
    pd.testing.assert_frame_equal(_warehouse(home), good)
    assert _lake_digest(home) == good_lake


def test_one_run_over_two_regions_stores_both(make_server, resources_for, home):
    server = make_server()
    defs = build_definitions(**resources_for(server))
    instance = dg.DagsterInstance.ephemeral()
    for region in ("US", "HK"):
        defs.resolve_job_def("reference_refresh").execute_in_process(instance=instance, partition_key=region)
    # the static dimension is ordered US, HK, SH, JP: this range is dates x {US, HK}
    result = defs.resolve_job_def("nightly_refresh").execute_in_process(instance=instance, tags={
        "dagster/asset_partition_range_start": "2024-06|US", "dagster/asset_partition_range_end": "2024-06|HK"})
    assert result.success
    stored = _warehouse(home, "SELECT region, count(DISTINCT trade_date) AS days FROM klines_daily GROUP BY 1 "
                              "ORDER BY 1")
    assert stored.to_dict("list") == {"region": ["HK", "US"], "days": [19, 19]}  # HK: Tuen Ng; US: Juneteenth
    assert server.simulator.counters.count("/stock/klines") == 2  # one page per region


@pytest.mark.slow
def test_quick_start_demo_runs_on_the_embedded_simulator(tmp_path):
    import os
    import subprocess
    import sys

    from demo.run import recent_months

    env = {**os.environ, "TICKLAKE_HOME": str(tmp_path), "TICKLAKE_REGIONS": "US,JP", "DAGSTER_HOME": "",
           "ITICK_TOKEN": "", "ITICK_BASE_URL": ""}
    env.pop("DAGSTER_HOME")
    now = dt.datetime.now(dt.UTC)
    out = subprocess.run([sys.executable, "-m", "demo", "--months", "1"], env=env, capture_output=True,
                         text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "source      embedded://itick-sim" in out.stdout
    # the figure the demo prints is every call the client made (the audit log has one line per call)
    audited = [json.loads(line) for path in (tmp_path / "audit").glob("*.jsonl")
               for line in path.read_text().splitlines()]
    assert f"api calls   {len(audited)} " in out.stdout
    per_endpoint = {e: sum(1 for a in audited if a["endpoint"] == e) for e in {a["endpoint"] for a in audited}}
    assert per_endpoint["/stock/klines"] == 2  # one kline page per region
    assert per_endpoint["/stock/info"] == 40  # every symbol's first valuation snapshot (within the budget)
    expected = []
    for region in ("JP", "US"):
        month = recent_months(region, 1, now)[0]
        closed = markets.last_completed_session(region, now)
        expected.append((region, len(markets.sessions(region, dt.date.fromisoformat(month + "-01"), closed))))
    with ticklake.connect(tmp_path) as con:
        days = con.execute("SELECT region, count(DISTINCT trade_date) FROM klines_daily GROUP BY 1 ORDER BY 1")
        assert days.fetchall() == expected
        assert con.execute("SELECT count(*) FROM securities").fetchall()[0][0] == 40
    # every hint the demo prints is a query that ran and shows prices
    assert "close" in out.stdout
    assert "-m ticklake.sql" in out.stdout
    # the restatement walk-through: detected, recorded (ledger rows printed), applied, the old value kept
    assert "reconciliation_us found" in out.stdout
    assert " close     stored " in out.stdout
    assert "already re-checked" in out.stdout
    # the two tenants: every granted region delivered, with its manifest, and a curl per tenant
    assert "Tenant data products" in out.stdout
    research = json.loads((tmp_path / "deliveries/research/klines_daily/region=US/manifest.json").read_text())
    assert research["format"] == "parquet"
    assert research["table"] == "klines_daily_adjusted"
    assert "adjustment_factor" in [c["name"] for c in research["schema"]]
    assert not (tmp_path / "deliveries/research/klines_daily/region=JP").exists()  # outside research's grant
    risk = json.loads((tmp_path / "deliveries/risk/klines_daily/region=JP/manifest.json").read_text())
    assert [c["name"] for c in risk["schema"]] == ["region", "symbol", "trade_date", "close", "volume"]
    assert risk["currency"] == "USD"
    assert risk["rows"] > 0
    curls = [line.strip() for line in out.stdout.splitlines() if line.strip().startswith("curl -s")]
    assert [line.split("# ")[-1] for line in curls] == ["research", "risk"]
    _the_printed_curls_answer(tmp_path, env, curls)
    # the demo's instance (the one `python3 dev.py ui` opens) holds an evaluation of every check
    import dagster as dg
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus as Status

    from definitions import build_definitions

    keys = [k for k in build_definitions().resolve_asset_graph().asset_check_keys  # the demo's regions: US, JP
            if not k.name.startswith("klines_daily_fresh_") or k.name[-2:] in ("us", "jp")]
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster")) as instance:
        latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    assert sorted(k.name for k in keys if k not in latest
                  or latest[k].status not in (Status.SUCCEEDED, Status.FAILED)) == []


def _the_printed_curls_answer(home, env: dict, curls: list[str]) -> None:
    """`ticklake serve` as the demo prints it, and each printed curl run as a person would paste it (on a free port)."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from tests.services import free_port, wait_until_serving

    port = free_port()
    server = subprocess.Popen([str(Path(sys.executable).parent / "ticklake"), "serve", "--port", str(port)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_serving(server, port)
        pasted = [curl.split("   # ")[0].replace(":8765/", f":{port}/") + " -w '\\n%{http_code}'" for curl in curls]
        answers = [subprocess.run(["bash", "-c", line], cwd=os.getcwd(), capture_output=True, text=True, timeout=60)
                   for line in pasted]
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=60)
    research, risk = (a.stdout.rsplit("\n", 1) for a in answers)
    assert research[1] == "200", research
    assert json.loads(research[0])["rows"] > 0
    assert risk[1] == "200", risk
    header, *rows = risk[0].strip().splitlines()
    assert header == '"trade_date","close","volume"'
    assert rows


def test_a_session_that_has_not_closed_is_not_written_as_empty(make_server, resources_for, home):
    from ticklake.datasets.klines import ingest_daily_bars, universe
    from ticklake.datasets.security_master import refresh_securities

    # At 12:00 UTC on 2024-06-26 the 26th (closes 20:00 UTC), 27th and 28th have not closed yet, although the
    # simulator (clock 2024-06-28 23:00) already serves them.
    server = make_server()
    resources = resources_for(server)
    source, storage = resources["itick"].source(), resources["storage"]
    lake = storage.lakehouse()
    now = dt.datetime(2024, 6, 26, 12, 0, tzinfo=dt.UTC)
    refresh_securities(RunContext(lake, "ref", now, source), "US")
    june = [dt.date(2024, 6, d) for d in range(1, 31)]
    result = ingest_daily_bars(RunContext(lake, "r", now, source), "US", dates=june, codes=universe(lake, "US"))
    report = result.partitions["2024-06"]
    assert report.not_closed == [dt.date(2024, 6, d) for d in (26, 27, 28)]
    assert report.sessions[-1] == dt.date(2024, 6, 25)
    assert not report.complete
    stored = _warehouse(home, "SELECT max(trade_date) AS last, count(DISTINCT trade_date) AS days FROM klines_daily")
    assert stored["last"].iloc[0] == pd.Timestamp("2024-06-25")
    assert stored["days"].iloc[0] == 16  # June 3..25 without Juneteenth
