"""A restatement, end to end, over three simulated evenings (the demo's last part).

Three simulators with frozen clocks (Monday, Tuesday and Wednesday evening) serve the same market, and one symbol's
bars are restated two days after publication. Monday's run stores June; Tuesday's and Wednesday's nightly runs
store their session only; on Wednesday the reconciliation sensor re-fetches the last sessions, finds Monday's bar
restated, writes the ledger and requests June again; the correction run applies it, and the old close stays
readable as known on Tuesday evening. Everything runs in its own temporary home: the demo's data is not touched.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

import ticklake
from assets.partitions import SESSION_TAG, key
from automation.jobs import run_partition_range
from automation.reconciliation import RECONCILIATION_SENSORS
from itick_sim import SimSettings, Simulator, serve
from resources.clock import ClockResource
from resources.itick import ITickResource
from resources.storage import StorageResource

REGION = "US"
MONDAY = dt.date(2024, 6, 24)
DAYS = (MONDAY, MONDAY + dt.timedelta(days=1), MONDAY + dt.timedelta(days=2))
TOKEN = "walkthrough-token"


@dataclass
class Walkthrough:
    symbol: str
    requested: list[str]  # partition keys the sensor requested on Wednesday
    ledger: list[tuple]  # (detected_at, symbol, date, field, stored_value, source_value)
    close_as_of_tuesday: float
    close_latest: float
    skip_reason: str  # what a second evaluation says


def _evening(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(23, 0), tzinfo=dt.UTC)


def _run_config(day: dt.date) -> dict:
    return {"loggers": {"console": {"config": {"log_level": "WARNING"}}},
            "ops": {"klines_daily": {"config": {"now": _evening(day).isoformat()}}}}


def run(symbols: int = 20) -> Walkthrough:
    from definitions import build_definitions

    [sensor] = [s for s in RECONCILIATION_SENSORS if s.name == f"reconciliation_{REGION.lower()}"]
    probe = Simulator(SimSettings(now=_evening(MONDAY), regions=(REGION,), symbols_per_region=symbols))
    symbol = sorted(s.code for s in probe.universe(REGION) if s.delisted is None)[0]
    faults = {"restate_codes": frozenset({symbol}), "restate_after_days": 2}
    with tempfile.TemporaryDirectory(prefix="ticklake-walkthrough-") as tmp:
        home, instance = Path(tmp), dg.DagsterInstance.ephemeral()
        cursor, requests, skip = None, [], ""
        for day in DAYS:
            settings = SimSettings(now=_evening(day), regions=(REGION,), symbols_per_region=symbols, **faults)
            with serve(Simulator(settings)) as server:
                resources = {"itick": ITickResource(base_url=server.url, token=TOKEN, home=str(home), plan="100000"),
                             "storage": StorageResource(home=str(home))}
                defs = build_definitions(**resources)
                if day == MONDAY:  # the history, as published on Monday evening
                    defs.resolve_job_def("reference_refresh").execute_in_process(
                        instance=instance, partition_key=REGION, run_config={"loggers": _run_config(day)["loggers"]})
                    run_partition_range(defs, REGION, f"{day:%Y-%m}", f"{day:%Y-%m}", instance=instance,
                                        run_config=_run_config(day))
                    continue
                defs.resolve_job_def("nightly_refresh").execute_in_process(  # what the nightly schedule launches
                    instance=instance, partition_key=key(f"{day:%Y-%m}", REGION), tags={SESSION_TAG: day.isoformat()},
                    run_config=_run_config(day))
                clock = ClockResource(now=_evening(day).isoformat())
                with dg.build_sensor_context(instance=instance, cursor=cursor, sensor_name=sensor.name,
                                             resources={**resources, "clock": clock}) as context:
                    result = sensor(context)
                cursor = result.cursor or cursor
                for request in result.run_requests or []:  # what the daemon launches for each request
                    requests.append(str(request.partition_key))
                    defs.resolve_job_def("nightly_refresh").execute_in_process(
                        instance=instance, partition_key=request.partition_key, run_config=_run_config(day),
                        tags={**request.tags, "dagster/run_key": request.run_key})
                if day == DAYS[-1]:
                    with dg.build_sensor_context(instance=instance, cursor=cursor, sensor_name=sensor.name,
                                                 resources={**resources, "clock": clock}) as context:
                        again = sensor(context)
                    skip = again.skip_reason.skip_message if again.skip_reason else "requested again"
        with ticklake.connect(home) as con:
            ledger = con.execute("SELECT detected_at, symbol, date, field, stored_value, source_value "
                                 "FROM reconciliation_log ORDER BY date, symbol, field").fetchall()
            [(old,)] = con.execute("SELECT close FROM klines_daily_as_of(?) WHERE symbol = ? AND trade_date = ?",
                                   [_evening(DAYS[1]), symbol, MONDAY]).fetchall()
            [(new,)] = con.execute("SELECT close FROM klines_daily WHERE symbol = ? AND trade_date = ?",
                                   [symbol, MONDAY]).fetchall()
    return Walkthrough(symbol, requests, ledger, old, new, skip)


def describe(w: Walkthrough) -> list[str]:
    lines = [f"Restatement walk-through (three simulated evenings, {REGION} {w.symbol} restated two days after "
             f"publication):",
             f"  Wednesday: reconciliation_{REGION.lower()} found {len(w.ledger)} changed field(s) and requested "
             f"{', '.join(w.requested) or 'nothing'}; reconciliation_log:"]
    lines += [f"    {at:%Y-%m-%d %H:%M} {sym} {day} {field:<9} stored {old} -> source {new}"
              for at, sym, day, field, old, new in w.ledger]
    lines += [f"  after the correction: klines_daily close {w.close_latest}; klines_daily_as_of(Tuesday evening) "
              f"close {w.close_as_of_tuesday} (the superseded version, kept in klines_daily_history)",
              f"  evaluating the sensor again: {w.skip_reason}"]
    return lines
