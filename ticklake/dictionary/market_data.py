"""Market data: what traded, as the source reported it."""

from __future__ import annotations

from ticklake.dictionary.core import Dataset, Field
from ticklake.dictionary.fields import LINEAGE, OHLC_RULES, REGION, SYMBOL, TRADE_DATE, by_region_and_month

KLINES_DAILY = Dataset(
    name="klines_daily",
    description="Raw (split-unadjusted) daily OHLCV bars, one row per symbol and trading session.",
    domain="market_data",
    fields=(
        REGION,
        SYMBOL,
        TRADE_DATE,
        Field("open", "float64", "First traded price of the session", unit="listing currency", strictly_positive=True),
        Field("high", "float64", "Highest traded price of the session", unit="listing currency",
              strictly_positive=True),
        Field("low", "float64", "Lowest traded price of the session", unit="listing currency", strictly_positive=True),
        Field("close", "float64", "Last traded price of the session", unit="listing currency",
              strictly_positive=True),
        Field("volume", "float64", "Quantity traded in the session", unit="shares", min_value=0),
        Field("turnover", "float64", "Value traded in the session", unit="listing currency", min_value=0),
        Field("bar_ts", "timestamp", "Bar timestamp exactly as the source sent it (`t`)", unit="UTC", lineage=True),
        *LINEAGE,
    ),
    key=("region", "symbol", "trade_date"),
    lake_keys=by_region_and_month("trade_date"),
    sort_by=("region", "symbol", "trade_date"),
    write_mode="replace",
    rules=OHLC_RULES,
    date_column="trade_date",
    versioned=True,
    example="SELECT trade_date, close, volume FROM klines_daily WHERE region = 'US' AND symbol = 'AAPL' "
            "ORDER BY trade_date",
)
