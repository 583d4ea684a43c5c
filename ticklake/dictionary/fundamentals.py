"""Fundamentals: valuation snapshots and FX."""

from __future__ import annotations

from ticklake.dictionary.core import Dataset, Field
from ticklake.dictionary.fields import (
    AS_OF,
    CURRENCY,
    EXCHANGE,
    INDUSTRY,
    LINEAGE,
    NAME,
    REGION,
    SECTOR,
    SYMBOL,
    TRADE_DATE,
    by_region_and_month,
)

FUNDAMENTALS_DAILY = Dataset(
    name="fundamentals_daily",
    description=(
        "Valuation snapshot per symbol and exchange-local date, as the source's company profile stated it that "
        "day (market cap, shares outstanding, P/E). Refreshed within a call budget, stalest first, so a symbol "
        "has a row on the dates it was refreshed, not on every date: take the latest row on or before a date."
    ),
    domain="fundamentals",
    fields=(
        REGION,
        SYMBOL,
        AS_OF,
        Field("market_cap", "float64", "Market capitalisation (last close x shares outstanding)",
              unit="listing currency", strictly_positive=True),
        Field("shares_outstanding", "float64", "Shares outstanding, after every split up to as_of", unit="shares",
              strictly_positive=True),
        Field("pe", "float64", "Price / earnings ratio (null when the source gives none, e.g. no earnings)",
              nullable=True),
        CURRENCY,
        NAME,
        EXCHANGE,
        SECTOR,
        INDUSTRY,
        *LINEAGE,
    ),
    key=("region", "symbol", "as_of"),
    lake_keys=by_region_and_month("as_of"),
    sort_by=("region", "symbol", "as_of"),
    write_mode="snapshot",
    date_column="as_of",
    versioned=True,
    example="SELECT symbol, as_of, market_cap, pe FROM fundamentals_daily WHERE region = 'US' "
            "QUALIFY row_number() OVER (PARTITION BY symbol ORDER BY as_of DESC) = 1",
)

FX_DAILY = Dataset(
    name="fx_daily",
    description=(
        "Daily FX closes that turn a region's local-currency values into USD: one row per currency its "
        "securities use and FX trading day (Mon-Fri, dated in UTC). usd_per_unit is how many US dollars one "
        "unit of the currency buys: the close of XXXUSD, or 1 / the close of USDXXX. USD itself has no rows "
        "(its rate is 1)."
    ),
    domain="fundamentals",
    fields=(
        REGION,
        CURRENCY,
        TRADE_DATE,
        Field("usd_per_unit", "float64", "US dollars per one unit of `currency` at the day's close", unit="USD",
              strictly_positive=True),
        Field("pair", "string", "The quoted pair it comes from (USDJPY, EURUSD)", pattern=r"^[A-Z]{6}$"),
        Field("pair_close", "float64", "The pair's close as quoted (quote currency per base currency unit)",
              strictly_positive=True),
        *LINEAGE,
    ),
    key=("region", "currency", "trade_date"),
    lake_keys=by_region_and_month("trade_date"),
    sort_by=("region", "currency", "trade_date"),
    write_mode="snapshot",  # an upsert by key: a run's window replaces those days and keeps the rest
    date_column="trade_date",
    example="SELECT trade_date, usd_per_unit, pair FROM fx_daily WHERE region = 'JP' AND currency = 'JPY' "
            "ORDER BY trade_date DESC LIMIT 5",
)
