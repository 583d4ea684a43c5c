"""Overrides made the way people make them: the `ticklake` console command (a child process on the test's lake) and
the `golden_override` job, on a lake holding iTick's month and a vendor file of the same month. Each override,
revocation and expiry commits with the re-derived golden bar (rule, exception queue, history, ledger); a mistake
exits 2 with one line and writes nothing."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from automation.jobs import run_partition_range
from definitions import build_definitions
from itick_sim.vendor_files import Divergences, vendor_file
from resources.clock import ClockResource
from resources.storage import StorageResource
from ticklake.datasets.context import RunContext
from ticklake.datasets.golden import OVERRIDE, PRIORITY
from ticklake.datasets.golden_copy import raw_bars, rederive
from ticklake.dictionary.market_data import KLINES_DAILY_BY_SOURCE
from ticklake.sources.declared import Policy
from ticklake.sources.files.formats import quandl_eod

NOW = dt.datetime(2024, 6, 28, 23, 0, tzinfo=dt.UTC)  # tests/conftest.py's frozen clock
API, VENDOR = "itick", "quandl"
POLICY = Policy(priority=(API, VENDOR), price_tolerance_bps=5.0, volume_tolerance_pct=1.0)
MONTH = {"region": "US", "month": "2024-06", "source": VENDOR}
TICKLAKE = Path(sys.executable).with_name("ticklake")  # the console command the venv installs
OVERRIDE_ID = re.compile(r"\bov-[0-9a-f]{12}\b")


def _beyond(t) -> bool:
    return t.field != "bar" and abs(t.vendor_value - t.api_value) / abs(t.api_value) > POLICY.tolerance(t.field)


def _rows(con, sql: str, params=()) -> list[tuple]:
    return con.execute(sql, list(params)).fetchall()


def _lake_with_a_vendor_file(server, defs, instance, home):
    """iTick's June stored by a Dagster run, then a vendor file of June in the raw layer and the month re-derived
    (as tests/integration/test_golden_copy.py does)."""
    defs.resolve_job_def("reference_refresh").execute_in_process(instance=instance, partition_key="US")
    assert run_partition_range(defs, "US", "2024-06", "2024-06", instance=instance).success
    lake = StorageResource(home=str(home)).lakehouse()
    vf = vendor_file(server.simulator, "US", "2024-06-03", "2024-06-28", divergences=Divergences(), seed=3)
    delivery = quandl_eod.FORMAT.read(vf.name, vf.data, {})
    ctx = RunContext(lake, "vendor-run", NOW, log=print, policy=POLICY)
    no_instant = pd.Series(pd.NaT, index=delivery.bars.index, dtype="datetime64[ms, UTC]")
    bars = raw_bars(delivery.bars.assign(region="US", turnover=float("nan"), bar_ts=no_instant),
                    received_at=NOW, file=vf.name)
    ctx.write(KLINES_DAILY_BY_SOURCE, MONTH, bars.drop(columns=["split_ratio", "dividend"]).assign(
        split_ratio=delivery.bars["split_ratio"].to_numpy(), dividend=delivery.bars["dividend"].to_numpy()))
    rederive(ctx, "US", ["2024-06"])
    return lake, vf


def _cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(TICKLAKE), *args], capture_output=True, text=True, env=env, timeout=240)


def _bar(lake, t) -> tuple:
    with lake.reader() as con:
        [row] = _rows(con, f"SELECT {t.field}, rule, source FROM klines_daily WHERE symbol = ? AND trade_date = ?",
                      [t.symbol, t.trade_date])
    return row


def _exception(lake, t) -> list[tuple]:
    with lake.reader() as con:
        return _rows(con, "SELECT status, override_id FROM golden_exceptions WHERE symbol = ? AND trade_date = ? "
                     "AND field = ?", [t.symbol, t.trade_date, t.field])


def _override_row(lake, override_id: str) -> tuple:
    with lake.reader() as con:
        [row] = _rows(con, "SELECT status, chosen_source, value, reason, author, created_at, status_at, expires_on, "
                      "source FROM golden_overrides WHERE override_id = ?", [override_id])
    return row


@pytest.mark.slow
def test_overrides_from_the_command_line_and_the_job(make_server, resources_for, home, tmp_path, monkeypatch):
    server = make_server()
    defs = build_definitions(**resources_for(server), clock=ClockResource(now=NOW.isoformat()))
    instance = dg.DagsterInstance.ephemeral()
    lake, vf = _lake_with_a_vendor_file(server, defs, instance, home)
    disputed = [t for t in vf.truth if t.kind == "off_tolerance" and _beyond(t)]
    t = next((d for d in disputed if d.field == "close"), disputed[0])
    day = pd.Timestamp(t.trade_date).date().isoformat()
    assert _bar(lake, t) == (pytest.approx(t.api_value), PRIORITY, API)

    sources = tmp_path / "sources.toml"
    sources.write_text(f'[sources.{VENDOR}]\nkind = "file_drop"\nformat = "quandl_eod"\nregions = ["US"]\n\n'
                       f'[arbitration]\npriority = ["{API}", "{VENDOR}"]\nprice_tolerance_bps = 5.0\n'
                       'volume_tolerance_pct = 1.0\n')
    monkeypatch.setenv("TICKLAKE_SOURCES", str(sources))  # the job's policy, as the CLI's below
    env = {"TICKLAKE_HOME": str(home), "TICKLAKE_SOURCES": str(sources), "ITICK_BASE_URL": server.url,
           "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}

    # the command line chooses the vendor for the disputed field: golden bar, rule, queue, ledger and history
    made = _cli(env, "override", "US", t.symbol, day, t.field, "--source", VENDOR, "--reason",
                "the vendor's tape is right", "--author", "analyst@example.com", "--now", NOW.isoformat())
    assert made.returncode == 0, made.stderr
    [override_id] = set(OVERRIDE_ID.findall(made.stdout))
    assert f"ticklake override --revoke {override_id}" in made.stdout
    assert f"{t.field} {t.api_value:.10g} -> {t.vendor_value:.10g}" in made.stdout  # the bar before -> after
    assert _bar(lake, t) == (pytest.approx(t.vendor_value), OVERRIDE, VENDOR)
    assert _exception(lake, t) == [("overridden", override_id)]
    status, chosen, value, reason, author, created_at, status_at, expires_on, lineage = _override_row(lake, override_id)
    assert (status, chosen, reason, author, expires_on, lineage) == (
        "active", VENDOR, "the vendor's tape is right", "analyst@example.com", None, "ticklake")
    assert value is None or pd.isna(value)
    assert pd.Timestamp(created_at) == pd.Timestamp(status_at) == pd.Timestamp(NOW)
    key = [t.symbol, t.trade_date]
    with lake.reader() as con:
        history = _rows(con, f"SELECT {t.field} FROM klines_daily_history WHERE symbol = ? AND trade_date = ?", key)
        ledger = _rows(con, "SELECT field, stored_value, source_value, source FROM reconciliation_log WHERE "
                       "dataset = 'klines_daily' AND symbol = ? AND date = ?", key)
    assert (pytest.approx(t.api_value),) in history
    assert (t.field, pytest.approx(t.api_value), pytest.approx(t.vendor_value), VENDOR) in ledger

    listed = _cli(env, "override", "--list", "--region", "US")
    assert listed.returncode == 0, listed.stderr
    assert override_id in listed.stdout
    assert "active" in listed.stdout
    assert "1 override(s)" in listed.stdout

    # mistakes: exit 2, one clear line, nothing written
    snapshot = lake.snapshot_id()
    base = ["override", "US", t.symbol, day]
    who = ["--reason", "why not", "--author", "analyst@example.com", "--now", NOW.isoformat()]
    with lake.reader() as con:
        [(high,)] = _rows(con, "SELECT high FROM klines_daily WHERE symbol = ? AND trade_date = ?", key)
    mistakes = {
        "not both": [*base, "close", "--source", VENDOR, "--value", "12.5", *who],
        "field='closing' is not one of open, high, low, close, volume, bar": [*base, "closing", "--source", VENDOR,
                                                                             *who],
        "breaks the bar": [*base, "close", "--value", str(round(high * 2, 4)), *who],
        "reason must not be empty": [*base, "close", "--source", VENDOR, "--reason", " ", "--author", "a", "--now",
                                     NOW.isoformat()],
        f"source='nobody' has no US {t.symbol} bar": [*base, "close", "--source", "nobody", *who],
        "until=2024-06-28 must be after": [*base, "close", "--source", VENDOR, *who, "--until", "2024-06-28"],
    }
    for expected, args in mistakes.items():
        out = _cli(env, *args)
        assert out.returncode == 2, (expected, out.stdout, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert expected in out.stderr, out.stderr
        assert out.stdout == ""
    assert lake.snapshot_id() == snapshot

    # revoked: the row stays with its history, the bar takes the priority source's value again
    revoked = _cli(env, "override", "--revoke", override_id, "--reason", "wrong tape after all", "--author",
                   "lead@example.com", "--now", (NOW + dt.timedelta(hours=1)).isoformat())
    assert revoked.returncode == 0, revoked.stderr
    assert _bar(lake, t) == (pytest.approx(t.api_value), PRIORITY, API)
    assert _exception(lake, t) == [("open", None)]
    row = _override_row(lake, override_id)
    status, reason, author, status_at = row[0], row[3], row[4], row[6]
    assert status == "revoked"
    assert reason == ("the vendor's tape is right; revoked by lead@example.com at 2024-06-29T00:00:00Z: "
                      "wrong tape after all")
    assert author == "analyst@example.com"  # who made it; who revoked it is in the reason
    assert pd.Timestamp(status_at) == pd.Timestamp(NOW + dt.timedelta(hours=1))
    again = _cli(env, "override", "--revoke", override_id, "--reason", "x", "--author", "y")
    assert again.returncode == 2
    assert "is revoked" in again.stderr

    # the queue says how to resolve the open exception: the source that is not the winner
    queue = _cli(env, "exceptions", "--region", "US")
    assert queue.returncode == 0, queue.stderr
    assert f"ticklake override US {t.symbol} {day} {t.field} --source {VENDOR} --reason TEXT --author NAME" \
        in queue.stdout

    # the golden_override job with the same config, until a date; then the expiry job at a clock past it
    config = {"region": "US", "symbol": t.symbol, "trade_date": day, "field": t.field, "source": VENDOR,
              "reason": "the vendor's tape is right", "author": "analyst@example.com", "until": "2024-07-02"}
    result = defs.resolve_job_def("golden_override").execute_in_process(
        run_config={"ops": {"make_golden_override": {"config": config}}}, instance=instance)
    assert result.success
    [event] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = {k: v.value for k, v in event.step_output_data.metadata.items()}
    job_override = metadata["override_id"]
    assert OVERRIDE_ID.fullmatch(job_override)
    assert metadata["before"][t.field] == pytest.approx(t.api_value)
    assert metadata["after"][t.field] == pytest.approx(t.vendor_value)
    assert _bar(lake, t) == (pytest.approx(t.vendor_value), OVERRIDE, VENDOR)
    assert _exception(lake, t) == [("overridden", job_override)]
    assert _override_row(lake, job_override)[7] == dt.date(2024, 7, 2)

    bad = defs.resolve_job_def("golden_override").execute_in_process(
        run_config={"ops": {"make_golden_override": {"config": {**config, "field": "closing"}}}}, instance=instance,
        raise_on_error=False)
    assert not bad.success

    for clock, expired in (("2024-07-01T23:00:00+00:00", 0), ("2024-07-02T23:00:00+00:00", 1)):
        later = build_definitions(**resources_for(server), clock=ClockResource(now=clock))
        run = later.resolve_job_def("expire_golden_overrides").execute_in_process(instance=instance)
        assert run.success
        [event] = [e for e in run.all_events if e.event_type_value == "STEP_OUTPUT"]
        assert event.step_output_data.metadata["expired"].value == expired
    assert _override_row(lake, job_override)[0] == "expired"
    assert _bar(lake, t) == (pytest.approx(t.api_value), PRIORITY, API)
    assert _exception(lake, t) == [("open", None)]
    listed = _cli(env, "override", "--list", "--status", "expired")
    assert job_override in listed.stdout
    assert override_id not in listed.stdout
