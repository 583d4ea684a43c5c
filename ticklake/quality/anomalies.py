"""Soft anomalies in stored bars: worth a warning, never a rejection. Real markets move more than 10% in a day
(the S&P 500 rose 11.6% on 2008-10-13) and trade at zero volume; these only point at what to look at."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb

from ticklake import settings

# Close-to-close moves beyond the threshold on a day without a recorded split, and "stale" bars: open, high, low
# and close all equal to the previous close while volume was traded (a frozen price feed).
ANOMALIES_SQL = """
WITH bars AS (
  SELECT symbol, trade_date, open, high, low, close, volume,
         lag(close) OVER (PARTITION BY symbol ORDER BY trade_date) AS previous
  FROM klines_daily_by_source
  WHERE region = $region AND source = $source AND trade_date BETWEEN $first - 10 AND $last),
splits AS (SELECT symbol, ex_date FROM corporate_actions WHERE region = $region)
SELECT b.symbol, b.trade_date, b.previous, b.close, b.close / b.previous - 1 AS move,
       CASE WHEN abs(b.close / b.previous - 1) > $threshold THEN 'large move' ELSE 'stale price' END AS kind
FROM bars b ANTI JOIN splits s ON s.symbol = b.symbol AND s.ex_date = b.trade_date
WHERE b.trade_date BETWEEN $first AND $last AND b.previous IS NOT NULL
  AND (abs(b.close / b.previous - 1) > $threshold
       OR (b.volume > 0 AND b.open = b.previous AND b.high = b.previous AND b.low = b.previous
           AND b.close = b.previous))
ORDER BY kind, b.trade_date, b.symbol
"""


@dataclass(frozen=True)
class Anomaly:
    symbol: str
    trade_date: dt.date
    previous: float
    close: float
    move: float
    kind: str  # "large move" | "stale price"

    def __str__(self) -> str:
        return (f"{self.symbol} {self.trade_date} {self.kind}: {self.previous:g} -> {self.close:g} "
                f"({self.move:+.1%})")


def anomalies(con: duckdb.DuckDBPyConnection, *, region: str, source: str, first: dt.date, last: dt.date,
              threshold: float | None = None) -> list[Anomaly]:
    """Soft anomalies among the bars `source` said for a region dated [first, last] (its own series: moves against
    its bar before `first` too)."""
    threshold = settings.max_daily_move() if threshold is None else threshold
    rows = con.execute(ANOMALIES_SQL, {"region": region, "source": source, "first": first, "last": last,
                                       "threshold": threshold}).fetchall()
    return [Anomaly(*row) for row in rows]
