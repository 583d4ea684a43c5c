"""Several nights of the fundamentals refresh of one big region on a tight plan: within budget, zero 429s.

    .venv/bin/python -m benchmarks.fundamentals_budget --symbols 5000 --plan free --budget 1200 --nights 5

The plan's quota is enforced by the simulator (a 429 beyond it) and respected by the client's limiter; time is
compressed (`--window-s`, the quota window standing for a minute) so nights of the free plan take seconds. Each
night is a new simulator frozen one day later over the same home, and `fundamentals_daily` runs through Dagster
like its nightly schedule. It prints, per night, the calls, 429s, refreshed and never-fetched symbols and the
staleness the asset's metadata reports; JSON goes to benchmarks/results/fundamentals-budget-<symbols>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import tempfile
import time
from pathlib import Path

import dagster as dg

from itick_sim import SimSettings, Simulator, serve
from resources.itick import ITickResource
from resources.storage import StorageResource
from ticklake.sources.quota import calls_per_minute

FIRST_NIGHT = dt.datetime(2024, 6, 24, 23, 0, tzinfo=dt.UTC)
RESULTS = Path(__file__).resolve().parent / "results"
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
FIGURES = ("api_calls", "api_rate_limited", "refreshed", "skipped", "never_fetched", "staleness_days", "budget")


def night(symbols: int, region: str, now: dt.datetime, home: Path, plan: str, window_s: float,
          first: bool) -> dict:
    from definitions import build_definitions

    limit = calls_per_minute(plan)
    settings = SimSettings(now=now, regions=(region,), symbols_per_region=symbols, calls_per_window=limit,
                           window_seconds=window_s)
    with serve(Simulator(settings)) as server:
        itick = ITickResource(base_url=server.url, token="benchmark-token", home=str(home), plan=plan,
                              window_seconds=window_s)
        storage = StorageResource(home=str(home))
        defs = build_definitions(itick=itick, storage=storage)
        assets = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)]
        with dg.DagsterInstance.ephemeral() as instance:
            if first:
                dg.materialize(assets, selection=["securities"], partition_key=region, instance=instance,
                               resources={"itick": itick, "storage": storage}, run_config=QUIET)
            started = time.perf_counter()
            result = dg.materialize(
                assets, selection=["fundamentals_daily"], partition_key=region, instance=instance,
                resources={"itick": itick, "storage": storage},
                run_config={**QUIET, "ops": {"fundamentals_daily": {"config": {"now": now.isoformat()}}}})
            seconds = time.perf_counter() - started
        [event] = result.get_asset_materialization_events()
        metadata = event.step_materialization_data.materialization.metadata
        served_429 = server.simulator.counters.rate_limited
    figures = {name: int(metadata[name].value) for name in FIGURES}
    return {"night": now.date().isoformat(), "seconds": round(seconds, 2), **figures, "served_429": served_429}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--symbols", type=int, default=5000)
    parser.add_argument("--region", default="US")
    parser.add_argument("--plan", default="free")
    parser.add_argument("--budget", type=int, default=1200, help="TICKLAKE_FUNDAMENTALS_BUDGET for the run")
    parser.add_argument("--nights", type=int, default=0, help="default: enough to refresh every symbol once")
    parser.add_argument("--window-s", type=float, default=0.05, help="seconds standing for the plan's minute")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    nights = args.nights or math.ceil(args.symbols / max(args.budget, 1)) + 1
    os.environ["TICKLAKE_FUNDAMENTALS_BUDGET"] = str(args.budget)
    rows = []
    with tempfile.TemporaryDirectory(prefix="ticklake-fundamentals-") as tmp:
        for i in range(nights):
            row = night(args.symbols, args.region, FIRST_NIGHT + dt.timedelta(days=i), Path(tmp), args.plan,
                        args.window_s, first=i == 0)
            rows.append(row)
            print(json.dumps(row), flush=True)
    per_minute = calls_per_minute(args.plan)
    result = {
        "symbols": args.symbols, "region": args.region, "plan": args.plan, "calls_per_minute": per_minute,
        "budget": args.budget, "window_s": args.window_s, "nights": rows,
        "quota_minutes_per_night_at_real_speed": round(args.budget / per_minute, 1),
        "nights_to_refresh_all": math.ceil(args.symbols / max(args.budget, 1)),
        "total_429": sum(r["api_rate_limited"] for r in rows),
    }
    target = args.json or RESULTS / f"fundamentals-budget-{args.symbols}.json"
    target.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{result['nights_to_refresh_all']} nights to refresh {args.symbols} symbols at {args.budget} calls "
          f"({result['quota_minutes_per_night_at_real_speed']} min of the {args.plan} plan's quota each); "
          f"429s: {result['total_429']} -> {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
