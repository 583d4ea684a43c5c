"""The production profile's backfill with 1 and 2 Celery workers: wall time, and iTick calls per minute used
against the quota the simulator enforces (its own 429s and every machine's audit log say whether it was kept).

    .venv/bin/python -m benchmarks.distributed [--symbols 40] [--plan 20] [--window 2] [--workers 1,2]

Real services on this machine: PostgreSQL (Dagster's instance, the shared quota and the lake lock),
RabbitMQ (steps), Redis (step results) and moto's S3 server (the lake's data; its catalog in PostgreSQL). A
third process reads the lake all along: every read must be one whole snapshot. The quota window is compressed
(`--window` seconds instead of 60) so that a run is quota-bound in seconds; per-minute figures are scaled to it.
Writes benchmarks/results/distributed-<symbols>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

from itick_sim import SimSettings, Simulator, serve
from tests.conftest import FROZEN_NOW
from tests.distributed import Cluster, WholeSnapshots, audited_calls, backfill, busiest_window, run_configs
from tests.services import postgres_database, s3_server

TOKEN = "bench-token-not-a-secret"
REGIONS = ["US", "HK", "JP"]
YEAR = ("2023-07", "2024-06")


def one(workers: int, symbols: int, plan: int, window: float, codes_per_call: int) -> dict:
    server = serve(Simulator(SimSettings(now=FROZEN_NOW, symbols_per_region=symbols, calls_per_window=plan,
                                         window_seconds=window, tokens=frozenset({TOKEN}))))
    try:
        with tempfile.TemporaryDirectory() as base, postgres_database() as pg, s3_server() as s3:
            cluster = Cluster.create(Path(base), postgres_url=pg, storage_url=s3.url("bench"), itick_url=server.url,
                                     token=TOKEN, plan=plan, regions=REGIONS, start_date="2023-07-01",
                                     s3_env=s3.env)
            try:
                for i in range(workers):
                    cluster.start_worker(f"worker-{i}")
                cluster.start_daemon()
                cluster.wait_ready()
                config = run_configs(FROZEN_NOW.isoformat(), {"window_seconds": window, "quota_margin_s": 0.15 * window,
                                                              "max_codes_per_call": codes_per_call})
                reader = WholeSnapshots(Path(base) / "analyst", pg, s3.url("bench"))  # a third process reads
                reader.start()
                result = backfill(cluster, REGIONS, *YEAR, config)
                reader.stop.set()
                reader.join(30)
            finally:
                cluster.stop()
            if result.failed:
                raise SystemExit(f"runs failed: {json.dumps(result.failed, indent=1)[:4000]}")
            starts = audited_calls(cluster)
    finally:
        server.close()
    counters = server.simulator.counters.snapshot()
    span = (starts[-1] - starts[0]) if len(starts) > 1 else 0.0
    return {
        "workers": workers, "reference_s": round(result.reference_s, 2), "klines_s": round(result.klines_s, 2),
        "wall_s": round(result.reference_s + result.klines_s, 2), "calls": len(starts),
        "server_429": counters["rate_limited"],
        "busiest_window_calls": busiest_window(starts, window), "plan_per_window": plan,
        # Calls per window over the span the calls took: at iTick's 60 s window this is calls per minute.
        "mean_calls_per_window": round(len(starts) / span * window, 2) if span else 0.0,
        "share_of_quota_used": round(len(starts) / span * window / plan, 3) if span else 0.0,
        # the analyst beside the backfill: reads of whole snapshots (bars = their lake_partitions rows), torn ones
        "reader_reads": len(reader.reads), "reader_torn": len(reader.torn), "reader_errors": reader.errors[:3],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=40, help="symbols per region")
    parser.add_argument("--plan", type=int, default=20, help="calls per window the simulator grants (ITICK_PLAN)")
    parser.add_argument("--window", type=float, default=2.0, help="seconds per quota window (iTick: 60)")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--codes-per-call", type=int, default=2, help="ITICK_MAX_CODES")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    rows = [one(int(n), args.symbols, args.plan, args.window, args.codes_per_call) for n in args.workers.split(",")]
    print(f"backfill: {len(REGIONS)} regions x 12 months x {args.symbols} symbols, {args.codes_per_call} codes per "
          f"call, queued runs started by the daemon; quota "
          f"{args.plan} calls per {args.window:g} s window")
    print(f"{'workers':>7} {'wall s':>7} {'ref s':>6} {'klines s':>8} {'calls':>6} {'429s':>5} "
          f"{'busiest window':>14} {'calls/window':>12} {'quota used':>10}")
    for r in rows:
        print(f"{r['workers']:>7} {r['wall_s']:>7.1f} {r['reference_s']:>6.1f} {r['klines_s']:>8.1f} {r['calls']:>6} "
              f"{r['server_429']:>5} {r['busiest_window_calls']:>8}/{r['plan_per_window']:<5} "
              f"{r['mean_calls_per_window']:>12.1f} {r['share_of_quota_used']:>10.0%}")
    out = args.json or Path(__file__).parent / "results" / f"distributed-{args.symbols}.json"
    out.write_text(json.dumps({"machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
                               "settings": vars(args) | {"json": str(out)}, "runs": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
