"""Analyst queries on the backfilled lake, opened read-only as analysts do (`ticklake.connect(home)`): p50/p99.

`params["home"]` is the backfill's TICKLAKE_HOME; the lake is the one the pipeline committed to (there is no
published copy any more). The lakehouse scenario (`benchmarks/scenarios/lakehouse.py`) measures the same shapes at
the issue-16 scale against a native DuckDB table.

Adding a query (say, for a later `klines_adjusted` or `valuation` table) is one `QuerySpec` in QUERIES:
its SQL uses `?` placeholders and `params` builds their values from the QueryContext.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmarks.stats import percentile


@dataclass(frozen=True)
class QueryContext:
    """Parameters drawn from the warehouse itself, so every scale queries data that exists."""

    region: str
    symbol: str  # a symbol with the longest history
    date: dt.date  # the latest session (the widest cross-section)
    symbols: tuple[str, ...]  # 100 symbols (a portfolio)
    year_start: dt.date
    year_end: dt.date


@dataclass(frozen=True)
class QuerySpec:
    name: str
    description: str
    sql: str
    params: Callable[[QueryContext], list[Any]]
    target_p99_ms: float | None = None
    requires: str = "klines_daily"  # skipped (not failed) when the warehouse lacks this table


QUERIES: list[QuerySpec] = [
    QuerySpec(
        "symbol_history", "one symbol's full history",
        "SELECT trade_date, open, high, low, close, volume, turnover FROM klines_daily "
        "WHERE region = ? AND symbol = ? ORDER BY trade_date",
        lambda c: [c.region, c.symbol], target_p99_ms=10.0,
    ),
    QuerySpec(
        "date_cross_section", "one date's cross-section (every symbol)",
        "SELECT symbol, open, high, low, close, volume, turnover FROM klines_daily "
        "WHERE region = ? AND trade_date = ? ORDER BY symbol",
        lambda c: [c.region, c.date], target_p99_ms=20.0,
    ),
    QuerySpec(
        "portfolio_year", "a year of bars for 100 symbols",
        "SELECT symbol, trade_date, close, volume FROM klines_daily "
        "WHERE region = ? AND symbol IN (SELECT UNNEST(?::VARCHAR[])) AND trade_date BETWEEN ? AND ? "
        "ORDER BY symbol, trade_date",
        lambda c: [c.region, list(c.symbols), c.year_start, c.year_end],
    ),
]


def context(con, region: str) -> QueryContext:
    symbol = con.execute("SELECT symbol FROM klines_daily WHERE region = ? GROUP BY symbol "
                         "ORDER BY count(*) DESC, symbol LIMIT 1", [region]).fetchone()[0]
    last = con.execute("SELECT max(trade_date) FROM klines_daily WHERE region = ?", [region]).fetchone()[0]
    symbols = [r[0] for r in con.execute(
        "SELECT symbol FROM klines_daily WHERE region = ? AND trade_date = ? ORDER BY hash(symbol) LIMIT 100",
        [region, last]).fetchall()]
    return QueryContext(region, symbol, last, tuple(symbols), last - dt.timedelta(days=365), last)


def fetch(con, sql: str, params: list[Any], mode: str) -> int:
    """Run and fully materialise the result the way an analyst would (a DataFrame by default)."""
    cursor = con.execute(sql, params)
    if mode == "df":
        return len(cursor.df())
    if mode == "arrow":
        return cursor.to_arrow_table().num_rows
    return len(cursor.fetchall())


def run(params: dict[str, Any]) -> dict[str, Any]:
    import ticklake

    home, region = params["home"], params["region"]
    warmup, iterations, mode = params["warmup"], params["iterations"], params.get("fetch", "df")
    con = ticklake.connect(home)
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = 'lake'")
                  .fetchall()}
        total_rows = con.execute("SELECT count(*) FROM klines_daily").fetchone()[0]
        ctx = context(con, region)
        out: dict[str, Any] = {}
        for spec in QUERIES:
            if spec.requires not in tables:
                out[spec.name] = {"skipped": f"no table {spec.requires}"}
                continue
            args = spec.params(ctx)
            open_started = time.perf_counter()
            rows = fetch(con, spec.sql, args, mode)
            first_ms = (time.perf_counter() - open_started) * 1000
            for _ in range(warmup):
                fetch(con, spec.sql, args, mode)
            samples = []
            for _ in range(iterations):
                t0 = time.perf_counter()
                fetch(con, spec.sql, args, mode)
                samples.append((time.perf_counter() - t0) * 1000)
            out[spec.name] = {
                "description": spec.description,
                "rows": rows,
                "first_ms": round(first_ms, 3),
                "p50_ms": round(percentile(samples, 50), 3),
                "p99_ms": round(percentile(samples, 99), 3),
                "max_ms": round(max(samples), 3),
                "target_p99_ms": spec.target_p99_ms,
                "iterations": iterations,
            }
    finally:
        con.close()
    return {"warehouse_rows": total_rows, "fetch": mode, "symbol": ctx.symbol,
            "date": ctx.date.isoformat(), "queries": out}
