"""What Great Expectations costs in a 3-month klines backfill, per run shape (issue 20, item 3).

    .venv/bin/python -m benchmarks.ge_backfill [--symbols 20] [--months 3]

Two runs over the same months, each in a fresh home on the simulator:
* `nightly_refresh` through `automation.jobs.run_partition_range` (what the schedules and the demo run), and
* the run an asset backfill launched from the UI makes: Dagster's implicit asset job with `klines_daily` and every
  check of it (`get_check_keys_for_assets`, as `build_run_requests_with_backfill_policies` does), over the range.
Then `warehouse_checks` on what it stored. Prints each run's wall time and each step's duration, from the instance's
step events.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

import dagster as dg

FROZEN_NOW = dt.datetime(2024, 6, 28, 23, 0, tzinfo=dt.UTC)
TOKEN = "bench-token-not-a-secret"


def _months(last: str, count: int) -> list[str]:
    months = [last]
    while len(months) < count:
        first = dt.date.fromisoformat(months[0] + "-01") - dt.timedelta(days=1)
        months.insert(0, f"{first:%Y-%m}")
    return months


def step_seconds(instance: dg.DagsterInstance, run_id: str) -> dict[str, float]:
    started: dict[str, float] = {}
    took: dict[str, float] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or entry.step_key is None:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            started[entry.step_key] = entry.timestamp
        elif event.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
            took[entry.step_key] = entry.timestamp - started.get(entry.step_key, entry.timestamp)
    return took


def measure(shape: str, symbols: int, months: list[str]) -> dict:
    from assets.partitions import key
    from automation.jobs import run_partition_range
    from definitions import build_definitions
    from itick_sim import SimSettings, Simulator, serve
    from resources.clock import ClockResource
    from resources.itick import ITickResource
    from resources.storage import StorageResource

    server = serve(Simulator(SimSettings(now=FROZEN_NOW, symbols_per_region=symbols)))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            home = str(Path(tmp) / "home")
            defs = build_definitions(
                itick=ITickResource(base_url=server.url, token=TOKEN, home=home, plan="100000"),
                storage=StorageResource(home=home), clock=ClockResource())
            run_config = {"ops": {"klines_daily": {"config": {"now": FROZEN_NOW.isoformat()}}}}
            instance = dg.DagsterInstance.ephemeral()
            defs.resolve_job_def("reference_refresh").execute_in_process(instance=instance, partition_key="US")
            started = time.perf_counter()
            if shape == "nightly_refresh":
                result = run_partition_range(defs, "US", months[0], months[-1], instance=instance,
                                             run_config=run_config)
            else:
                from assets.klines import klines_daily

                graph = defs.resolve_asset_graph()
                checks = graph.get_check_keys_for_assets({klines_daily.key})
                job = defs.resolve_implicit_global_asset_job_def().get_subset(
                    asset_selection={klines_daily.key}, asset_check_selection=checks)
                result = job.execute_in_process(instance=instance, raise_on_error=False, run_config=run_config,
                                                tags={"dagster/asset_partition_range_start": str(key(months[0], "US")),
                                                      "dagster/asset_partition_range_end": str(key(months[-1], "US"))})
            wall = time.perf_counter() - started
            figures = {"shape": shape, "wall_s": round(wall, 2), "checks": len(result.get_asset_check_evaluations()),
                       "steps": {k: round(v, 2) for k, v in step_seconds(instance, result.run_id).items()}}
            started = time.perf_counter()
            checks_run = defs.resolve_job_def("warehouse_checks").execute_in_process(instance=instance,
                                                                                     raise_on_error=False)
            figures["warehouse_checks"] = {
                "wall_s": round(time.perf_counter() - started, 2),
                "steps": {k: round(v, 2) for k, v in step_seconds(instance, checks_run.run_id).items()}}
            return figures
    finally:
        server.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--months", type=int, default=3)
    parser.add_argument("--shape", choices=["nightly_refresh", "asset_backfill", "both"], default="both")
    args = parser.parse_args(argv)
    months = _months(f"{FROZEN_NOW:%Y-%m}", args.months)
    shapes = ["nightly_refresh", "asset_backfill"] if args.shape == "both" else [args.shape]
    for shape in shapes:
        figures = measure(shape, args.symbols, months)
        steps = ", ".join(f"{k} {v:.2f}s" for k, v in figures["steps"].items())
        print(f"{shape:<16} {months[0]}..{months[-1]} US x {args.symbols} symbols: {figures['wall_s']:.2f}s wall, "
              f"{figures['checks']} check results; steps: {steps}")
        checks = figures["warehouse_checks"]
        steps = ", ".join(f"{k} {v:.2f}s" for k, v in checks["steps"].items())
        print(f"{'  then warehouse_checks':<16} {checks['wall_s']:.2f}s wall; steps: {steps}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
