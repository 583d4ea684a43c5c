"""Nightly cost of every asset of one region, and the analysts' reference/fundamentals queries.

    .venv/bin/python -m benchmarks.reference --symbols 12                       # the demo's size
    .venv/bin/python -m benchmarks.reference --symbols 5000 --history-months 24 --pe-history-days 1260

Each asset is materialized once, in dependency order, the way the nightly schedules run them (one Dagster run
per asset and partition, a real instance, the simulator on loopback, no client quota so the local cost is
measured alone). A night's cost depends on what is stored: `--history-months` backfills klines first (untimed),
and `--pe-history-days` seeds that many days of valuation snapshots per symbol before the night (untimed;
synthetic values from the stored closes, since /stock/info only answers for today), so the derived assets work
on a realistic history. It prints calls and seconds per asset and what those calls cost in quota minutes at each
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
import pandas as pd

import ticklake
from assets.partitions import key
from benchmarks.stats import percentile
from itick_sim import SimSettings, Simulator, serve
from resources.itick import ITickResource
from resources.storage import StorageResource
from ticklake import markets
from ticklake.sources.quota import PLAN_CALLS_PER_MINUTE

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


def _months_before(month: str, count: int) -> tuple[str, str] | None:
    first = pd.Period(month, "M") - count
    return (str(first), str(pd.Period(month, "M") - 1)) if count > 0 else None


def _seed_pe_history(home: Path, region: str, days: int) -> int:
    """Synthetic daily valuation snapshots for the `days` before the night, from the stored closes (market cap =
    close x a fixed share count, P/E = close / a fixed EPS per symbol), so the P/E band has history to read."""
    from ticklake.storage import open_lakehouse

    with open_lakehouse(home).connection() as con:
        con.execute(
            "INSERT INTO fundamentals_daily BY NAME SELECT region, symbol, trade_date AS as_of, "
            "close * 1e8 AS market_cap, 1e8 AS shares_outstanding, close / (1 + hash(symbol) % 7) AS pe, "
            "'USD' AS currency, symbol AS name, NULL AS exchange, NULL AS sector, NULL AS industry, source, "
            "ingested_at, run_id FROM klines_daily WHERE region = ? AND trade_date >= ? AND trade_date < ?",
            [region, (NOW - dt.timedelta(days=days)).date(), NOW.date() - dt.timedelta(days=7)])
        return con.execute("SELECT count(*) FROM fundamentals_daily").fetchall()[0][0]


def run_assets(symbols: int, region: str, home: Path, history_months: int = 0, pe_history_days: int = 0
               ) -> tuple[dict[str, dict], dict]:
    from automation.jobs import run_partition_range
    from definitions import build_definitions

    month = f"{markets.last_completed_session(region, NOW):%Y-%m}"
    figures: dict[str, dict] = {}
    setup: dict[str, float | int] = {}
    with serve(Simulator(SimSettings(now=NOW, regions=(region, "GB"), symbols_per_region=symbols,
                                     history_start=dt.date(2000, 1, 3)))) as server:
        itick = ITickResource(base_url=server.url, token="benchmark-token", home=str(home), plan="1000000")
        storage = StorageResource(home=str(home))
        defs = build_definitions(itick=itick, storage=storage)
        assets = {k.to_user_string(): a for a in defs.assets if isinstance(a, dg.AssetsDefinition) for k in a.keys}
        with dg.DagsterInstance.ephemeral() as instance:

            def materialize(name: str) -> dg.ExecuteInProcessResult:
                return dg.materialize(list(assets.values()), selection=[name], instance=instance,
                                      resources={"itick": itick, "storage": storage},
                                      partition_key=_partition_key(assets[name], region, month),
                                      run_config={**QUIET, "ops": {assets[name].node_def.name: {
                                          "config": {"now": NOW.isoformat()}}}})

            started = time.perf_counter()
            history = _months_before(month, history_months)
            if history:  # what a night finds stored: the symbol list and the klines history
                materialize("securities")
                run_partition_range(defs, region, *history, instance=instance,
                                    run_config={**QUIET, "ops": {"klines_daily": {"config": {"now": NOW.isoformat()}}}})
                materialize("corporate_actions")
                materialize("klines_daily_adjusted")  # derived once, as earlier nights would have
            if pe_history_days:
                setup["pe_history_rows"] = _seed_pe_history(home, region, pe_history_days)
                materialize("valuation_daily")  # the history derived once, as earlier nights would have
            setup["seconds"] = round(time.perf_counter() - started, 1)
            print(f"setup: {history_months} months of klines, {pe_history_days} days of P/E history "
                  f"({setup['seconds']} s)", flush=True)
            for name in (n for n in ORDER if n in assets):
                started = time.perf_counter()
                result = materialize(name)
                seconds = time.perf_counter() - started
                calls = _calls(result)
                figures[name] = {"seconds": round(seconds, 2), "api_calls": calls,
                                 **{f"quota_min_{plan}": round(calls / per_min, 1)
                                    for plan, per_min in PLAN_CALLS_PER_MINUTE.items()}}
                print(f"{name:<24} {seconds:>8.2f} s {calls:>7} calls", flush=True)
    return figures, setup


def cookbook(region: str) -> dict[str, str]:
    """The cookbook's queries (docs/analyst.md), for one region (a symbol with a split is picked at run time)."""
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


def time_queries(home: Path, region: str, iterations: int) -> dict[str, dict]:
    out: dict[str, dict] = {}
    with ticklake.connect(home) as con:
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
    parser.add_argument("--history-months", type=int, default=0, help="klines stored before the night")
    parser.add_argument("--pe-history-days", type=int, default=0, help="valuation snapshots stored before the night")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ticklake-reference-") as tmp:
        home = Path(tmp)
        assets, setup = run_assets(args.symbols, args.region, home, args.history_months, args.pe_history_days)
        queries = time_queries(home, args.region, args.iterations)
    result = {"symbols": args.symbols, "region": args.region, "now": NOW.isoformat(),
              "history_months": args.history_months, "pe_history_days": args.pe_history_days, "setup": setup,
              "assets": assets,
              "total": {"seconds": round(sum(a["seconds"] for a in assets.values()), 2),
                        "api_calls": sum(a["api_calls"] for a in assets.values())},
              "queries": queries}
    target = args.json or RESULTS / f"reference-{args.symbols}-{args.history_months}m.json"
    target.write_text(json.dumps(result, indent=2) + "\n")
    print(f"total {result['total']['seconds']} s, {result['total']['api_calls']} calls -> {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
