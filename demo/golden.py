"""The demo's second source: a vendor file drop arbitrated into the golden copy, in the demo's own lake.

Before the first night it declares a Quandl-format vendor for US in `$TICKLAKE_HOME/sources.toml` (the default
sources file, so `python3 dev.py ui` shows the vendor's asset and sensor too). After it, it drops one vendor file of
the last complete US month, made by the simulator from the same bars it serves, with a few controlled divergences;
the `vendor_drop_quandl` sensor records it and its load job arbitrates it; then it prints the golden copy's summary
and one exception with the command that resolves it. Only on the embedded simulator: its vendor file describes the
simulator's market, not the real one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

import ticklake
from ticklake import markets, settings

VENDOR = "quandl"
REGION = "US"
SENSOR = f"vendor_drop_{VENDOR}"
JOB = f"vendor_klines_{VENDOR}_load"


def sources_text(drop: Path) -> str:
    return (f"# Written by the demo (python3 dev.py demo): a second source for US, arbitrated with iTick.\n"
            f'[sources.{VENDOR}]\nkind = "file_drop"\nformat = "quandl_eod"\nregions = ["{REGION}"]\n'
            f'drop = "{drop}"\n\n[arbitration]\npriority = ["itick", "{VENDOR}"]\nprice_tolerance_bps = 5.0\n'
            "volume_tolerance_pct = 1.0\n")


def declare(paths: settings.Paths, embedded: bool) -> Path | None:
    """Write the demo's sources file unless one is in use already; the drop folder, or None when skipped."""
    if not embedded or REGION not in settings.regions() or settings.sources_file() is not None:
        return None
    drop = paths.home / "drop" / VENDOR
    drop.mkdir(parents=True, exist_ok=True)
    (paths.home / "sources.toml").write_text(sources_text(drop))
    return drop


@dataclass
class Arbitrated:
    file: str
    partitions: list[str]
    rules: dict[str, int]
    exception: tuple | None  # (symbol, trade_date, field, source_values, chosen_source)


def drop_a_file(defs: dg.Definitions, instance: dg.DagsterInstance, drop: Path, now: dt.datetime,
                show_in_ui) -> Arbitrated | None:
    """One vendor file of the last complete US month into the drop, one sensor tick, its runs."""
    from itick_sim.vendor_files import Divergences, vendor_file
    from ticklake.sources.itick.config import embedded_simulator

    last = markets.last_completed_session(REGION, now)
    sessions = markets.sessions(REGION, dt.date(last.year, last.month, 1), last)
    itick = defs.resources["itick"]
    simulator = embedded_simulator(itick.sim_symbols_per_region, itick.sim_seed, 1, settings.regions())
    made = vendor_file(simulator, REGION, sessions[0], sessions[-1], divergences=Divergences(), seed=1)
    (drop / made.name).write_bytes(made.data)
    sensor = defs.resolve_sensor_def(SENSOR)
    with dg.build_sensor_context(instance=instance, sensor_name=SENSOR, resources=defs.resources) as context:
        result = sensor(context)
    requests = list(result.run_requests or [])
    for request in requests:
        run = defs.resolve_job_def(JOB).execute_in_process(
            instance=instance, partition_key=request.partition_key,
            tags={**request.tags, "dagster/run_key": request.run_key},
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}})
        show_in_ui(instance, run.run_id)
    with ticklake.connect(settings.home()) as con:
        rules = dict(con.execute("SELECT rule, count(*) FROM klines_daily WHERE region = ? GROUP BY 1",
                                 [REGION]).fetchall())
        exception = next(iter(con.execute(
            "SELECT symbol, trade_date, field, source_values, chosen_source FROM golden_exceptions WHERE status = "
            "'open' AND region = ? AND field <> 'split_ratio' ORDER BY rel_diff DESC LIMIT 1", [REGION]).fetchall()),
            None)
    return Arbitrated(made.name, [r.partition_key for r in requests], rules, exception)


def describe(arbitrated: Arbitrated, ticklake_command: str) -> list[str]:
    rules = arbitrated.rules
    lines = [f"Golden copy (docs/golden-copy.md): one vendor file, {arbitrated.file}, dropped into the {VENDOR} drop; "
             f"the {SENSOR} sensor loaded {', '.join(arbitrated.partitions) or 'nothing'}.",
             f"  {REGION} bars: {rules.get('agreed', 0)} agreed, {rules.get('single_source', 0)} single_source, "
             f"{rules.get('priority', 0)} priority (sources disagree: an open exception), "
             f"{rules.get('override', 0)} override"]
    if arbitrated.exception is not None:
        symbol, day, field, values, chosen = arbitrated.exception
        lines += [f"  exception: {symbol} {day} {field}: {values}; the golden bar takes {chosen} meanwhile",
                  "  resolve it (the vendor is right, say):",
                  f"    {ticklake_command} override {REGION} {symbol} {day} {field} --source {VENDOR} "
                  "--reason \"checked against the exchange's tape\" --author you",
                  f"  every open one: {ticklake_command} exceptions"]
    return lines
