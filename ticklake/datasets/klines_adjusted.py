"""`klines_daily_adjusted`: backward split adjustment of the raw bars, re-derived only where its inputs changed.

adjusted price = raw price x F(symbol, day), adjusted volume = raw volume / F, where F is the product of the
factors (ratio_from / ratio_to) of every split of the symbol with an ex-date after the day; F = 1 from the last
ex-date on, so the latest prices are the raw ones. F is computed per symbol as a step function (one cumulative
product in a fixed order), so the same inputs give bit-identical adjusted values on every run.

Change detection: the whole region is recomputed in DuckDB from the lake's `klines_daily` and
`corporate_actions`, compared value by value with the stored `klines_daily_adjusted`, and only the month files
holding a difference are written; unchanged rows inside them keep their lineage (the replace write mode carries
it forward). A late split therefore re-derives that symbol's rows (in every month before its ex-date) and
nothing else: other symbols' rows come back byte-identical with their ingested_at and run_id.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd

from ticklake.datasets.context import RunContext
from ticklake.datasets.corporate_actions import split_misses, unrecorded_jumps
from ticklake.dictionary.analytics import KLINES_DAILY_ADJUSTED
from ticklake.dictionary.schemas import validate
from ticklake.storage.frames import fetch_frame, to_arrow
from ticklake.storage.write_modes import contents
from ticklake.storage.writes import Part, commit

PRICES = ("open", "high", "low", "close")
MONTHS_PER_COMMIT = 24  # bounds memory: a late split can touch every month of a region's history
_VALUES = (*PRICES, "volume", "turnover", "adjustment_factor")


def factor_steps(splits: pd.DataFrame) -> pd.DataFrame:
    """Splits (symbol, ex_date, factor) -> the adjustment factor per symbol as steps: `factor` applies to
    trade dates in [since, until) (since null: from the start); days on or after the last ex-date get 1."""
    columns = {"symbol": "string", "since": "datetime64[ms]", "until": "datetime64[ms]", "factor": "float64"}
    if splits.empty:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in columns.items()})
    ordered = splits.sort_values(["symbol", "ex_date"], ascending=[True, False], kind="stable")
    steps = []
    for symbol, group in ordered.groupby("symbol", sort=True):
        cumulative = np.cumprod(group["factor"].to_numpy(dtype="float64"))  # newest split first, fixed order
        until = group["ex_date"].to_numpy()
        since = np.concatenate([until[1:], [np.datetime64("NaT")]])
        steps.append(pd.DataFrame({"symbol": symbol, "since": since, "until": until, "factor": cumulative}))
    return pd.concat(steps, ignore_index=True).astype(columns)


def adjust(raw: pd.DataFrame, splits: pd.DataFrame) -> pd.DataFrame:
    """Pure, for one region: raw bars (region, symbol, trade_date, OHLCV, turnover) -> adjusted columns. The
    same arithmetic as the lake derivation (`_ADJUSTED_SQL`); tests and small callers use this one."""
    with duckdb.connect() as con:
        con.register("raw_bars", raw)
        con.register("steps", factor_steps(splits))
        return fetch_frame(con.execute(_ADJUSTED_SQL.format(raw="raw_bars")))


_ADJUSTED_SQL = """
SELECT r.region, r.symbol, r.trade_date,
       r.open * f AS open, r.high * f AS high, r.low * f AS low, r.close * f AS close,
       r.volume / f AS volume, r.turnover, f AS adjustment_factor
FROM (SELECT r.*, coalesce(s.factor, 1.0) AS f
      FROM {raw} r LEFT JOIN steps s
        ON r.symbol = s.symbol AND r.trade_date < s.until AND (s.since IS NULL OR r.trade_date >= s.since)) r
ORDER BY r.region, r.symbol, r.trade_date
"""

_CHANGED_SQL = """
SELECT strftime(coalesce(n.trade_date, o.trade_date), '%Y-%m') AS month, coalesce(n.symbol, o.symbol) AS symbol,
       count(*) AS rows
FROM new_rows n FULL OUTER JOIN old_rows o ON n.symbol = o.symbol AND n.trade_date = o.trade_date
WHERE n.symbol IS NULL OR o.symbol IS NULL OR {differs}
GROUP BY ALL
"""


@dataclass
class AdjustResult:
    region: str
    sources: list[str] = field(default_factory=list)
    rows: int = 0  # adjusted rows of the region after the run
    months_written: list[str] = field(default_factory=list)
    symbols_rederived: set[str] = field(default_factory=set)  # symbols with at least one added/changed/removed row
    rows_changed: int = 0  # added + changed + removed rows
    diff: dict[str, int] = field(default_factory=lambda: {"added": 0, "changed": 0, "removed": 0, "unchanged": 0})
    split_misses: list[str] = field(default_factory=list)  # recorded splits the raw closes do not show
    splits_unverified: list[str] = field(default_factory=list)  # no raw bar on (or before) the ex-date
    unrecorded_jumps: list[str] = field(default_factory=list)  # split-sized raw moves without a recorded split
    seconds: dict[str, float] = field(default_factory=dict)


def derive_adjusted(ctx: RunContext, region: str) -> AdjustResult:
    """Bring the region's `klines_daily_adjusted` in line with its raw bars and splits, per source (a source's
    bars are adjusted by that source's splits), writing only the months that differ."""
    result = AdjustResult(region)
    with ctx.lake.reader() as con:
        result.sources = [s for (s,) in con.execute(
            "SELECT DISTINCT source FROM klines_daily WHERE region = ? ORDER BY 1", [region]).fetchall()]
    for source in result.sources:
        _derive_source(ctx, result, source)
    return result


def _derive_source(ctx: RunContext, result: AdjustResult, source: str) -> None:
    region, lake, log = result.region, ctx.lake, ctx.log
    started = time.perf_counter()
    with lake.reader() as con:
        splits = fetch_frame(con.execute(
            "SELECT symbol, ex_date, factor FROM corporate_actions WHERE region = ? AND source = ?", [region, source]))
        _register(con, region, source, splits)
        changed = fetch_frame(con.execute(_CHANGED_SQL.format(differs=" OR ".join(f"n.{c} IS DISTINCT FROM o.{c}"
                                                                      for c in _VALUES))))
        result.rows += con.execute("SELECT count(*) FROM new_rows").fetchall()[0][0]
        pairs = _pairs(con, splits)
    result.seconds["derive_and_compare_s"] = round(time.perf_counter() - started, 3)
    misses, unverified = split_misses(pairs, splits)
    result.split_misses += misses
    result.splits_unverified += unverified
    result.unrecorded_jumps += unrecorded_jumps(pairs, splits)
    if changed.empty:
        log(f"{region} {source}: adjusted bars already match the raw bars and splits; nothing written")
        return
    result.symbols_rederived |= set(changed["symbol"])
    months = sorted(set(changed["month"]))
    log(f"{region} {source}: re-deriving {changed['symbol'].nunique()} symbol(s) in {len(months)} month(s)")
    started = time.perf_counter()
    for i in range(0, len(months), MONTHS_PER_COMMIT):
        batch = months[i : i + MONTHS_PER_COMMIT]
        with lake.reader() as con:
            _register(con, region, source, splits)
            fresh = fetch_frame(con.execute("SELECT * FROM new_rows WHERE strftime(trade_date, '%Y-%m') IN "
                                f"({', '.join('?' for _ in batch)}) ORDER BY symbol, trade_date", batch))
        fresh = ctx.stamped(_typed(fresh), source)
        by_month = fresh.groupby(fresh["trade_date"].dt.strftime("%Y-%m"), sort=True)
        parts = []
        for month in batch:
            incoming = by_month.get_group(month) if month in by_month.groups else fresh.iloc[:0]
            values = {"region": region, "month": month, "source": source}
            frame, diff = contents(KLINES_DAILY_ADJUSTED, lake.read(KLINES_DAILY_ADJUSTED, **values),
                                   incoming.reset_index(drop=True))
            validate(frame, KLINES_DAILY_ADJUSTED)
            parts.append(Part(values, to_arrow(KLINES_DAILY_ADJUSTED, frame)))
            for k in result.diff:
                result.diff[k] += diff[k]
        commit(lake, KLINES_DAILY_ADJUSTED, parts, run_id=ctx.run_id, now=ctx.now)
        result.months_written += batch
    result.rows_changed = result.diff["added"] + result.diff["changed"] + result.diff["removed"]
    result.seconds["write_s"] = round(result.seconds.get("write_s", 0.0) + time.perf_counter() - started, 3)


def _register(con: duckdb.DuckDBPyConnection, region: str, source: str, splits: pd.DataFrame) -> None:
    """`new_rows` (the region's adjusted bars as derived now) and `old_rows` (as stored) for one source."""
    con.register("steps", factor_steps(splits))
    con.execute(f"""CREATE OR REPLACE TEMP VIEW raw_bars AS SELECT region, symbol, trade_date, open, high, low, close,
                    volume, turnover FROM klines_daily WHERE region = '{_sql(region)}' AND source = '{_sql(source)}'""")
    con.execute("CREATE OR REPLACE TEMP VIEW new_rows AS " + _ADJUSTED_SQL.format(raw="raw_bars"))
    con.execute(f"""CREATE OR REPLACE TEMP VIEW old_rows AS SELECT * FROM klines_daily_adjusted
                    WHERE region = '{_sql(region)}' AND source = '{_sql(source)}'""")


def _sql(text: str) -> str:
    return text.replace("'", "''")


def _pairs(con: duckdb.DuckDBPyConnection, splits: pd.DataFrame) -> pd.DataFrame:
    """Close and previous close of each raw bar that is on a recorded ex-date or moved by x0.6 or less, or x1.6 or
    more (every split size's band lies beyond): all the split checks need, without loading every bar."""
    con.register("recorded_splits", splits[["symbol", "ex_date"]])
    frame = fetch_frame(con.execute("""
        SELECT b.symbol, b.trade_date, b.close, b.prev_close FROM (
            SELECT symbol, trade_date, close, lag(close) OVER (PARTITION BY symbol ORDER BY trade_date) AS prev_close
            FROM raw_bars) b
        LEFT JOIN recorded_splits s ON b.symbol = s.symbol AND b.trade_date = s.ex_date
        WHERE s.symbol IS NOT NULL OR b.close / b.prev_close <= 0.6 OR b.close / b.prev_close >= 1.6
    """))
    return frame.astype({"trade_date": "datetime64[ms]"})


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.astype({"region": "string", "symbol": "string", "trade_date": "datetime64[ms]",
                         **dict.fromkeys(_VALUES, "float64")})
