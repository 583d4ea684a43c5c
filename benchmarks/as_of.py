"""Point in time at scale: the "as known at T" query against the latest view, and what reconciliation costs a night.

    .venv/bin/python -m benchmarks.as_of --symbols 5000 --sessions 2200 --restated 0.03

1. A lake of symbols x sessions daily bars (11M rows at the defaults) with a share of them restated once
   (their earlier version in klines_daily_history), laid out as the pipeline loads it (DuckDB, clustered by
   region, year, symbol, date). Synthetic values: the query cost depends on the layout and the sizes, not on
   where the numbers came from. Timed, p50/p99: a symbol's history and a date's cross-section, from the latest
   view (`klines_daily`) and as known at an instant before the restatements (`klines_daily_as_of(ts)`).
2. One reconciliation of a `--reconcile-symbols` region against the simulator over loopback: the calls it
   makes for TICKLAKE_RECONCILE_SESSIONS sessions, and those calls per night for four regions at each plan.

JSON goes to benchmarks/results/as-of-<rows>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time
from pathlib import Path

import ticklake
from benchmarks.stats import percentile
from ticklake.datasets.context import RunContext
from ticklake.sources.quota import PLAN_CALLS_PER_MINUTE
from ticklake.storage import open_lakehouse

RESULTS = Path(__file__).resolve().parent / "results"
LOADED = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)  # every first version was stored by then
RESTATED = dt.datetime(2024, 6, 20, tzinfo=dt.UTC)  # the restatements were applied then


def build(path: Path, symbols: int, sessions: int, restated: float) -> int:
    """The synthetic lake under home `path`: klines_daily (latest) and klines_daily_history (the versions restated)."""
    lake = open_lakehouse(path)
    with lake.writer() as con:  # creates every table and macro of the dictionary
        con.execute(f"""
            CREATE TEMP TABLE bars AS
            SELECT 'US' AS region, 'S' || lpad(s::VARCHAR, 5, '0') AS symbol,
                   DATE '2016-01-04' + (d + (d // 5) * 2)::INTEGER AS trade_date,
                   10 + (hash(s, d) % 1000) / 100.0 AS close, s, d
            FROM range({symbols}) t(s), range({sessions}) u(d)""")
        restate = f"(hash(s, d, 7) % 10000) < {int(restated * 10000)}"
        columns = ("region, symbol, trade_date, close AS open, close * 1.01 AS high, close * 0.99 AS low, close, "
                   "1000.0 AS volume, close * 1000 AS turnover, TIMESTAMPTZ '2024-01-01 00:00:00+00' AS bar_ts, "
                   "'itick' AS source")
        con.execute(f"""
            INSERT INTO klines_daily BY NAME
            SELECT {columns},
                   CASE WHEN {restate} THEN TIMESTAMPTZ '{RESTATED.isoformat()}'
                        ELSE TIMESTAMPTZ '{LOADED.isoformat()}' END AS ingested_at, 'run' AS run_id
            FROM bars ORDER BY region, date_trunc('year', trade_date), symbol, trade_date""")
        con.execute(f"""
            INSERT INTO klines_daily_history BY NAME
            SELECT {columns.replace("close AS open", "close * 0.98 AS open")}, TIMESTAMPTZ '{LOADED.isoformat()}'
                   AS ingested_at, 'run' AS run_id, TIMESTAMPTZ '{RESTATED.isoformat()}' AS superseded_at,
                   'correction' AS superseded_by
            FROM bars WHERE {restate} ORDER BY region, date_trunc('year', trade_date), symbol, trade_date""")
        con.execute("CHECKPOINT")
        return con.execute("SELECT count(*) FROM klines_daily").fetchall()[0][0]


def time_queries(path: Path, iterations: int) -> dict[str, dict]:
    at = (RESTATED - dt.timedelta(days=1)).isoformat()
    with ticklake.connect(path) as con:
        symbol = "S00042"
        day = con.execute("SELECT max(trade_date) FROM klines_daily").fetchall()[0][0]
        queries = {
            "symbol_history_latest": ("SELECT trade_date, close FROM klines_daily WHERE region = 'US' AND symbol = ? "
                                      "ORDER BY trade_date", [symbol]),
            "symbol_history_as_of": ("SELECT trade_date, close FROM klines_daily_as_of(?) WHERE region = 'US' "
                                     "AND symbol = ? ORDER BY trade_date", [at, symbol]),
            "cross_section_latest": ("SELECT symbol, close FROM klines_daily WHERE region = 'US' AND trade_date = ? "
                                     "ORDER BY symbol", [day]),
            "cross_section_as_of": ("SELECT symbol, close FROM klines_daily_as_of(?) WHERE region = 'US' AND "
                                    "trade_date = ? ORDER BY symbol", [at, day]),
        }
        out = {}
        for name, (sql, params) in queries.items():
            rows = len(con.execute(sql, params).df())
            for _ in range(5):
                con.execute(sql, params).df()
            samples = []
            for _ in range(iterations):
                started = time.perf_counter()
                con.execute(sql, params).df()
                samples.append((time.perf_counter() - started) * 1000)
            out[name] = {"rows": rows, "p50_ms": round(percentile(samples, 50), 2),
                         "p99_ms": round(percentile(samples, 99), 2)}
            print(f"{name:<24} p50 {out[name]['p50_ms']:>7.2f} ms  p99 {out[name]['p99_ms']:>7.2f} ms  ({rows} rows)",
                  flush=True)
    for shape in ("symbol_history", "cross_section"):
        out[f"{shape}_ratio_p99"] = round(out[f"{shape}_as_of"]["p99_ms"] / out[f"{shape}_latest"]["p99_ms"], 2)
    return out


def reconciliation_calls(symbols: int, home: Path) -> dict:
    """One reconciliation of a region of `symbols` codes against the simulator over loopback: its calls."""
    from itick_sim import SimSettings, Simulator, serve
    from resources.itick import ITickResource
    from resources.storage import StorageResource
    from ticklake import markets, settings
    from ticklake.datasets.security_master import refresh_securities
    from ticklake.quality.reconciliation import reconcile_klines

    now = dt.datetime(2024, 6, 28, 23, 0, tzinfo=dt.UTC)
    with serve(Simulator(SimSettings(now=now, regions=("US",), symbols_per_region=symbols))) as server:
        itick = ITickResource(base_url=server.url, token="benchmark-token", home=str(home), plan="1000000")
        storage = StorageResource(home=str(home))
        source = itick.source()
        refresh_securities(RunContext(storage.lakehouse(), "bench", now, source), "US")
        k = settings.reconcile_sessions()
        sessions = markets.sessions("US", now.date() - dt.timedelta(days=14), now.date())[-k:]
        started = time.perf_counter()
        result = reconcile_klines(RunContext(storage.lakehouse(), "bench", now, itick.source()),
                                  "US", sessions=sessions)
        seconds = time.perf_counter() - started
    calls = result.fetch.calls
    return {"symbols": symbols, "sessions": k, "calls_per_region": calls, "seconds": round(seconds, 2),
            "calls_per_night_4_regions": 4 * calls,
            **{f"quota_minutes_4_regions_{plan}": round(4 * calls / per_min, 1)
               for plan, per_min in PLAN_CALLS_PER_MINUTE.items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--symbols", type=int, default=5000)
    parser.add_argument("--sessions", type=int, default=2200)
    parser.add_argument("--restated", type=float, default=0.03)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--reconcile-symbols", type=int, default=5000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ticklake-as-of-") as tmp:
        started = time.perf_counter()
        rows = build(Path(tmp) / "lake-home", args.symbols, args.sessions, args.restated)
        print(f"built {rows:,} rows, {args.restated:.0%} restated, in {time.perf_counter() - started:.1f} s",
              flush=True)
        queries = time_queries(Path(tmp) / "lake-home", args.iterations)
        reconcile = reconciliation_calls(args.reconcile_symbols, Path(tmp) / "home")
        print(json.dumps(reconcile), flush=True)
    result = {"rows": rows, "restated_share": args.restated, "queries": queries, "reconciliation": reconcile}
    target = RESULTS / f"as-of-{rows}.json"
    target.write_text(json.dumps(result, indent=2) + "\n")
    print(f"as-of / latest p99: symbol history {queries['symbol_history_ratio_p99']}x, cross-section "
          f"{queries['cross_section_ratio_p99']}x (target <= 2x) -> {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
