"""A vendor's file drop end to end through Dagster: the `vendor_drop_quandl` sensor sees a file, records it in
source_files and requests its months; the load job writes the raw layer and re-derives the golden copy, at no API
cost. The same file again changes nothing; a corrected file is a restatement; every bad file is refused with its
reason and leaves the golden copy as it was."""

from __future__ import annotations

import gzip
import os

import dagster as dg
import pytest

import ticklake
from automation.jobs import run_partition_range
from definitions import build_definitions
from itick_sim.vendor_files import Divergences, vendor_file
from resources.clock import ClockResource
from ticklake.datasets.golden import AGREED, PRIORITY

VENDOR, SENSOR, JOB = "quandl", "vendor_drop_quandl", "vendor_klines_quandl_load"
NAME = "quandl_eod_20240628.csv.gz"
HEADER = "ticker,date,open,high,low,close,volume,ex-dividend,split_ratio,adj_open,adj_high,adj_low,adj_close,adj_volume"


def _beyond(t, bps: float = 5.0, pct: float = 1.0) -> bool:
    tolerance = pct / 100 if t.field == "volume" else bps / 10_000
    return t.field != "bar" and abs(t.vendor_value - t.api_value) / abs(t.api_value) > tolerance


def _declare(tmp_path, monkeypatch, region: str = "US"):
    folder = tmp_path / "drop"
    folder.mkdir()
    sources = tmp_path / "sources.toml"
    sources.write_text(f'[sources.{VENDOR}]\nkind = "file_drop"\nformat = "quandl_eod"\nregions = ["{region}"]\n'
                       f'drop = "{folder}"\npoll_seconds = 30\n\n[arbitration]\npriority = ["itick", "{VENDOR}"]\n')
    monkeypatch.setenv("TICKLAKE_SOURCES", str(sources))
    return folder


@pytest.fixture
def drop(tmp_path, monkeypatch):
    return _declare(tmp_path, monkeypatch)


def _query(home, sql: str, params=()) -> list[tuple]:
    with ticklake.connect(home) as con:
        return con.execute(sql, list(params)).fetchall()


class Tick:
    """The sensor as the daemon runs it: evaluations carry the cursor, run requests become runs of its job."""

    def __init__(self, defs, instance, resources):
        self.defs, self.instance, self.resources, self.cursor = defs, instance, resources, None

    def __call__(self) -> list[dg.RunRequest]:
        sensor = self.defs.resolve_sensor_def(SENSOR)
        with dg.build_sensor_context(instance=self.instance, cursor=self.cursor, sensor_name=SENSOR,
                                     resources={**self.resources, "clock": ClockResource()}) as context:
            result = sensor(context)
            self.cursor = result.cursor if result.cursor is not None else context.cursor
        requests = list(result.run_requests or [])
        for request in requests:
            run = self.defs.resolve_job_def(JOB).execute_in_process(
                instance=self.instance, partition_key=request.partition_key,
                tags={**request.tags, "dagster/run_key": request.run_key})
            assert run.success
        return requests


def _write(folder, name: str, data: bytes) -> None:
    (folder / name).write_bytes(data)
    os.utime(folder / name, ns=(os.stat(folder / name).st_mtime_ns + 10**9,) * 2)  # a new mtime, as a copy gives


# Dagster's own test helper passes a beta parameter to itself (automation_condition_tester.py); not our call.
@pytest.mark.filterwarnings("ignore:Parameter `include_sources`:dagster.BetaWarning")
@pytest.mark.slow
def test_a_dropped_file_reaches_the_golden_copy_once_and_bad_files_are_refused(make_server, resources_for, home,
                                                                                drop):
    server = make_server()
    resources = resources_for(server)
    defs = build_definitions(**resources)
    assert {SENSOR} <= {s.name for s in defs.sensors}
    instance = dg.DagsterInstance.ephemeral()
    defs.resolve_job_def("reference_refresh").execute_in_process(instance=instance, partition_key="US")
    assert run_partition_range(defs, "US", "2024-06", "2024-06", instance=instance).success
    tick = Tick(defs, instance, resources)
    assert tick() == []  # nothing dropped yet: a skip
    automation = dg.evaluate_automation_conditions(defs=defs, instance=instance)  # the sensor turned on

    vf = vendor_file(server.simulator, "US", "2024-06-03", "2024-06-28", divergences=Divergences(), seed=3)
    calls = server.simulator.counters.total
    _write(drop, vf.name, vf.data)
    [request] = tick()
    assert request.partition_key == "2024-06|US"
    assert server.simulator.counters.total == calls  # the vendor costs no API call
    expected = {(t.symbol, t.trade_date, t.field) for t in vf.truth if _beyond(t)}
    assert set(_query(home, "SELECT symbol, trade_date, field FROM golden_exceptions WHERE status = 'open'")) \
        == expected
    [(status, rows)] = _query(home, "SELECT status, rows FROM source_files WHERE name = ?", [vf.name])
    assert (status, rows) == ("accepted", len(gzip.decompress(vf.data).splitlines()) - 1)
    golden = _query(home, "SELECT rule, count(*) FROM klines_daily GROUP BY 1 ORDER BY 1")
    assert dict(golden)[PRIORITY] == len({(s, d) for s, d, _ in expected})
    assert dict(golden)[AGREED] > 0
    # the vendor's own page tells the queue as it is now
    [check] = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(dg.AssetKey("vendor_klines_quandl"), "golden_exceptions_open")]).values()
    evaluation = check.event.dagster_event.event_specific_data
    assert not evaluation.passed
    assert evaluation.metadata["open_exceptions"].value == len(expected)
    event = instance.get_latest_materialization_event(dg.AssetKey("klines_daily"))
    assert "re-derived from quandl" in event.asset_materialization.description
    # a late file re-derives what depends on the golden copy, through the existing automation
    automation = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=automation.cursor)
    requested = {r.key.to_user_string(): set(r.true_subset.expensively_compute_partition_keys())
                 for r in automation.results if r.true_subset.size}
    assert requested.get("klines_daily_adjusted") == {"US"}

    # the same file again, even touched: nothing new
    _write(drop, vf.name, vf.data)
    assert tick() == []
    assert _query(home, "SELECT count(*) FROM source_files")[0][0] == 1

    # a corrected file of the same name: a restatement; what it corrects changes the golden copy, once
    fixed = vendor_file(server.simulator, "US", "2024-06-03", "2024-06-28", divergences=Divergences.none())
    _write(drop, vf.name, fixed.data)
    [request] = tick()
    [(_, reason)] = _query(home, "SELECT status, reason FROM source_files WHERE status = 'restated'")
    assert "correction" in reason
    assert not _query(home, "SELECT * FROM golden_exceptions WHERE status = 'open'")
    assert _query(home, "SELECT count(*) FROM golden_exceptions WHERE status = 'closed'")[0][0] == len(expected)
    before = _query(home, "SELECT * FROM klines_daily ORDER BY ALL")

    # every bad file is refused with its reason, and the golden copy stays as it was
    text = gzip.decompress(fixed.data).decode()
    first_row = text.splitlines()[1]
    bad = {
        "quandl_eod_20240627.csv": text.encode(),  # the name's date contradicts the rows
        "missing_column.csv": text.replace(HEADER, HEADER.replace(",adj_volume", "")).encode(),
        "truncated.csv.gz": fixed.data[: len(fixed.data) // 2],
        "empty.csv": (HEADER + "\n").encode(),
        "not_gzip.csv.gz": b"\x1f\x8b\x08garbage",
        "unknown_codes.csv": (HEADER + "\n" + first_row.replace(first_row.split(",")[0], "ZZZZ", 1) + "\n").encode(),
    }
    for name, data in bad.items():
        _write(drop, name, data)
    requests = tick()
    statuses = dict(_query(home, "SELECT name, status FROM source_files WHERE name <> ?", [vf.name]))
    refused = {name for name, status in statuses.items() if status == "refused"}
    assert refused >= set(bad) - {"unknown_codes.csv"}
    reasons = dict(_query(home, "SELECT name, reason FROM source_files WHERE status = 'refused'"))
    assert all(reasons[name] for name in refused)
    quarantined = _query(home, "SELECT rule FROM quarantine WHERE dataset = 'klines_daily_by_source'")
    assert ("unknown_code",) in quarantined or "unknown_codes.csv" in refused
    assert all(r.partition_key == "2024-06|US" for r in requests)
    assert _query(home, "SELECT * FROM klines_daily ORDER BY ALL") == before

    # a second file covers the first half of June; then the first file is replaced by garbage, then removed: a
    # re-load of the month (a backfill) keeps what the first file said
    half = vendor_file(server.simulator, "US", "2024-06-03", "2024-06-14", divergences=Divergences.none())
    _write(drop, half.name, half.data)
    assert [r.partition_key for r in tick()] == ["2024-06|US"]
    assert _query(home, "SELECT * FROM klines_daily ORDER BY ALL") == before  # the same bars, said again
    vendor_rows = _query(home, "SELECT count(*) FROM klines_daily_by_source WHERE source = ?", [VENDOR])
    _write(drop, vf.name, b"garbage")
    assert tick() == []
    assert _query(home, "SELECT status FROM source_files WHERE name = ? ORDER BY received_at DESC LIMIT 1",
                  [vf.name]) == [("refused",)]
    for gone in (False, True):
        if gone:
            (drop / vf.name).unlink()
        run = defs.resolve_job_def(JOB).execute_in_process(instance=instance, partition_key="2024-06|US")
        assert run.success
        assert _query(home, "SELECT count(*) FROM klines_daily_by_source WHERE source = ?", [VENDOR]) == vendor_rows
        assert _query(home, "SELECT * FROM klines_daily ORDER BY ALL") == before


@pytest.mark.slow
def test_an_instant_and_a_date_land_on_the_same_session(make_server, resources_for, home, tmp_path, monkeypatch):
    """HK bars stamped at local midnight are 16:00 UTC the day before: taken in the exchange's time zone, iTick's
    instants and the vendor's dates are the same sessions, so a file of the same bars agrees bar for bar."""
    folder = _declare(tmp_path, monkeypatch, "HK")
    server = make_server(bar_time="local_midnight")
    resources = resources_for(server)
    defs = build_definitions(**resources)
    instance = dg.DagsterInstance.ephemeral()
    defs.resolve_job_def("reference_refresh").execute_in_process(instance=instance, partition_key="HK")
    assert run_partition_range(defs, "HK", "2024-06", "2024-06", instance=instance).success
    stamps = _query(home, "SELECT DISTINCT strftime(bar_ts, '%H:%M') FROM klines_daily WHERE region = 'HK'")
    assert stamps == [("16:00",)]  # the instant is the day before in UTC
    vf = vendor_file(server.simulator, "HK", "2024-06-03", "2024-06-28")
    _write(folder, vf.name, vf.data)
    [request] = Tick(defs, instance, resources)()
    assert request.partition_key == "2024-06|HK"
    rules = _query(home, "SELECT rule, sources, count(*) FROM klines_daily WHERE region = 'HK' GROUP BY 1, 2")
    assert [(rule, sources) for rule, sources, _ in rules] == [(AGREED, f"itick,{VENDOR}")]
    assert not _query(home, "SELECT * FROM golden_exceptions")
