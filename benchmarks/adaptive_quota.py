"""Figures for the adaptive quota: wall time and 429s of one US kline fetch at plan=pro, at the server's own rate
and below it, against a simulator that grants 30 calls per window, over loopback HTTP in compressed time.

    .venv/bin/python -m benchmarks.adaptive_quota [--window 1.0] [--runs 3] [--codes 12]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import time

import pandas as pd

from itick_sim import SimSettings, Simulator, serve
from resources.itick import ITickResource
from ticklake import markets

SERVER_CALLS = 30
TOKEN = "bench-token-not-a-secret"
NOW = dt.datetime(2024, 6, 28, 23, 0, tzinfo=dt.UTC)


def fetch(plan: str, window: float, codes: int) -> dict:
    """One fetch of every US bar of 2024-Q2, one code and 7 sessions per call, from a fresh server and home."""
    server = serve(Simulator(SimSettings(now=NOW, symbols_per_region=codes, calls_per_window=SERVER_CALLS,
                                         window_seconds=window, max_codes_per_call=1)))
    try:
        with tempfile.TemporaryDirectory() as home:
            itick = ITickResource(base_url=server.url, token=TOKEN, home=home, plan=plan, window_seconds=window,
                                  quota_margin_s=0.2 * window, max_codes_per_call=1, max_bars_per_call=7,
                                  max_concurrency=4, fetch_processes=1, backoff_base_s=0.05)
            symbols = [s.code for s in server.simulator.universe("US")]
            sessions = markets.sessions("US", dt.date(2024, 4, 1), dt.date(2024, 6, 28))
            source = itick.source()
            started = time.perf_counter()
            bars = pd.concat([p.bars for p in source.daily_bars("US", symbols, sessions)], ignore_index=True)
            seconds = time.perf_counter() - started
            limit = itick.client().limiter.limit
            itick.client().close()
        return {"plan": plan, "seconds": seconds, "server_429": server.simulator.counters.rate_limited,
                "calls": source.spent().calls, "bars": len(bars), "final_limit": limit}
    finally:
        server.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=1.0, help="seconds per quota window, both sides")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--codes", type=int, default=12)
    args = parser.parse_args(argv)
    print(f"server: {SERVER_CALLS} calls per {args.window:g} s window; median of {args.runs} runs")
    print(f"{'ITICK_PLAN':>10} {'calls':>6} {'bars':>6} {'wall s':>7} {'429s':>5} {'final limit':>11}")
    for plan in ("pro", str(SERVER_CALLS), "25"):
        runs = [fetch(plan, args.window, args.codes) for _ in range(args.runs)]
        seconds = statistics.median(r["seconds"] for r in runs)
        errors = statistics.median(r["server_429"] for r in runs)
        last = runs[-1]
        print(f"{plan:>10} {last['calls']:>6} {last['bars']:>6} {seconds:>7.2f} {errors:>5g} {last['final_limit']:>11}")


if __name__ == "__main__":
    main()
