"""Nightly cost of every asset of one region, and the analysts' reference/fundamentals queries.

    .venv/bin/python -m benchmarks.reference --symbols 12      # the demo's size
    .venv/bin/python -m benchmarks.reference --symbols 5000    # a 5,000-symbol region

Each asset is materialized once, in dependency order, the way the nightly schedules run them (one Dagster run
per asset and partition, a real instance, the simulator on loopback, no client quota so the local cost is
measured alone). It prints calls and seconds per asset and what those calls cost in quota minutes at each
plan, then times the cookbook queries (adjusted history of one symbol, the P/E band of a region, market cap in
USD, the universe on a date) on the published snapshot: p50/p99 over repeated runs. JSON goes to
benchmarks/results/reference-<symbols>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time
from pathlib import Path

import dagster as dg
import duckdb

from assets.partitions import key
from benchmarks.stats import percentile
from itick_sim import SimSettings, Simulator, serve
from resources.itick import ITickResource
from resources.storage import StorageResource
from ticklake import markets
from ticklake.quota import PLAN_CALLS_PER_MINUTE

NOW = dt.datetime(2024, 6, 28, 23, 0, tzinfo=dt.UTC)
RESULTS = Path(__file__).resolve().parent / "results"
# Dependency order of a night: reference data first, then klines, then fundamentals, then what derives from them.
ORDER = ("securities", "trading_calendar", "security_master", "corporate_actions", "klines_daily",
         "fundamentals_daily", "fx_daily", "klines_daily_adjusted", "valuation_daily")
CALL_METADATA = ("api_calls", "run_api_calls")
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _partition_key(asset: dg.AssetsDefinition, region: str, month: str) -> str | None:
    partitions = asset.partitions_def
    if partitions is None:
        return None
    if isinstance(partitions, dg.MultiPartitionsDefinition):
        return str(key(month, region))
    return region


def _calls(result: dg.ExecuteInProcessResult) -> int:
    for event in result.get_asset_materialization_events():
        metadata = event.step_materialization_data.materialization.metadata
        for name in CALL_METADATA:
            if name in metadata:
                return int(metadata[name].value)
    return 0


def run_assets(symbols: int, region: str, home: Path) -> dict[str, dict]:
    from definitions import build_definitions

    month = f"{markets.last_completed_session(region, NOW):%Y-%m}"
    figures: dict[str, dict] = {}
    with serve(Simulator(SimSettings(now=NOW, regions=(region, "GB"), symbols_per_region=symbols))) as server:
        itick = ITickResource(base_url=server.url, token="benchmark-token", home=str(home), plan="1000000")
        defs = build_definitions(itick=itick, storage=StorageResource(home=str(home)))
        assets = {a.key.to_user_string(): a for a in defs.assets if isinstance(a, dg.AssetsDefinition)}
        with dg.DagsterInstance.ephemeral() as instance:
            for name in (n for n in ORDER if n in assets):
                started = time.perf_counter()
                result = dg.materialize(list(assets.values()), selection=[name], instance=instance,
                                        resources={"itick": itick, "storage": StorageResource(home=str(home))},
                                        partition_key=_partition_key(assets[name], region, month),
                                        run_config=QUIET)
                seconds = time.perf_counter() - started
                calls = _calls(result)
                figures[name] = {"seconds": round(seconds, 2), "api_calls": calls,
                                 **{f"quota_min_{plan}": round(calls / per_min, 1)
                                    for plan, per_min in PLAN_CALLS_PER_MINUTE.items()}}
                print(f"{name:<24} {seconds:>8.2f} s {calls:>7} calls", flush=True)
    return figures


def cookbook(region: str) -> dict[str, str]:
    """The README cookbook's queries, for one region (a symbol with a split is picked at run time)."""
    return {
        "adjusted_history": f"SELECT trade_date, close, adjustment_factor FROM klines_daily_adjusted "
                            f"WHERE region = '{region}' AND symbol = $symbol ORDER BY trade_date",
        "pe_band": f"SELECT symbol, as_of, pe, pe_percentile FROM valuation_daily WHERE region = '{region}' "
                   f"AND as_of = (SELECT max(as_of) FROM valuation_daily WHERE region = '{region}') "
                   f"ORDER BY pe_percentile DESC",
        "market_cap_usd": f"SELECT symbol, market_cap_usd FROM valuation_daily WHERE region = '{region}' "
                          f"ORDER BY as_of DESC, market_cap_usd DESC LIMIT 20",
        "universe_on": f"SELECT * FROM universe_on('{region}', DATE '2020-01-02')",
    }


def time_queries(warehouse: Path, region: str, iterations: int) -> dict[str, dict]:
    out: dict[str, dict] = {}
    with duckdb.connect(str(warehouse), read_only=True) as con:
        symbol = con.execute("SELECT symbol FROM klines_daily WHERE region = ? GROUP BY 1 ORDER BY count(*) DESC "
                             "LIMIT 1", [region]).fetchone()
        for name, sql in cookbook(region).items():
            params = {"symbol": symbol[0]} if "$symbol" in sql else None
            try:
                con.execute(sql, params).fetchall()
            except duckdb.Error as exc:  # a table this build does not have yet
                out[name] = {"error": str(exc).splitlines()[0]}
                continue
            times = []
            for _ in range(iterations):
                started = time.perf_counter()
                rows = con.execute(sql, params).fetchall()
                times.append((time.perf_counter() - started) * 1000)
            out[name] = {"p50_ms": round(percentile(times, 50), 2), "p99_ms": round(percentile(times, 99), 2),
                         "rows": len(rows)}
            print(f"{name:<24} p50 {out[name]['p50_ms']:>7.2f} ms  p99 {out[name]['p99_ms']:>7.2f} ms  "
                  f"({len(rows)} rows)", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--symbols", type=int, default=12)
    parser.add_argument("--region", default="US")
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ticklake-reference-") as tmp:
        home = Path(tmp)
        assets = run_assets(args.symbols, args.region, home)
        queries = time_queries(home / "warehouse.duckdb", args.region, args.iterations)
    result = {"symbols": args.symbols, "region": args.region, "now": NOW.isoformat(), "assets": assets,
              "total": {"seconds": round(sum(a["seconds"] for a in assets.values()), 2),
                        "api_calls": sum(a["api_calls"] for a in assets.values())},
              "queries": queries}
    target = args.json or RESULTS / f"reference-{args.symbols}.json"
    target.write_text(json.dumps(result, indent=2) + "\n")
    print(f"total {result['total']['seconds']} s, {result['total']['api_calls']} calls -> {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
