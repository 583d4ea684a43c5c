"""Analytics: derived for analysts, re-derivable at any time from the stored source data."""

from __future__ import annotations

from ticklake.dictionary.core import Dataset, Field
from ticklake.dictionary.fields import (
    AS_OF,
    CURRENCY,
    DAILY_BAR_LAYOUT,
    LINEAGE,
    REGION,
    SYMBOL,
    TRADE_DATE,
    by_region_and_month,
)

KLINES_DAILY_ADJUSTED = Dataset(
    name="klines_daily_adjusted",
    description=(
        "Split-adjusted (backward) daily bars derived from `klines_daily` and `corporate_actions`: prices times "
        "the product of the factors of every split after the trade date, volumes divided by it, so the latest "
        "prices equal the raw ones and a series is continuous across its ex-dates. Raw `klines_daily` is never "
        "changed. A split that arrives late re-derives only that symbol's rows; every other row keeps its lineage."
    ),
    domain="analytics",
    fields=(
        REGION,
        SYMBOL,
        TRADE_DATE,
        Field("open", "float64", "Split-adjusted first traded price of the session", unit="listing currency, "
              "latest share basis", strictly_positive=True),
        Field("high", "float64", "Split-adjusted highest price of the session", unit="listing currency, latest "
              "share basis", strictly_positive=True),
        Field("low", "float64", "Split-adjusted lowest price of the session", unit="listing currency, latest share "
              "basis", strictly_positive=True),
        Field("close", "float64", "Split-adjusted last price of the session", unit="listing currency, latest share "
              "basis", strictly_positive=True),
        Field("volume", "float64", "Quantity traded, in shares of the latest basis (raw volume / adjustment_factor)",
              unit="shares", min_value=0),
        Field("turnover", "float64", "Value traded in the session (a split does not change it: the raw value)",
              unit="listing currency", min_value=0),
        Field("adjustment_factor", "float64", "Product of the factors of every split with an ex-date after the "
              "trade date (1 after the last split): adjusted price = raw price x adjustment_factor", unit="ratio",
              strictly_positive=True),
        *LINEAGE,
    ),
    **DAILY_BAR_LAYOUT,
    example="SELECT a.trade_date, a.close AS adjusted_close, k.close AS raw_close, a.adjustment_factor "
            "FROM klines_daily_adjusted a JOIN klines_daily k USING (region, symbol, trade_date, source) "
            "WHERE a.region = 'US' AND a.symbol = 'AAPL' ORDER BY a.trade_date",
)

PE_BAND_YEARS = 5
PE_BAND_MIN_SNAPSHOTS = 20  # fewer stored P/Es in the window: the percentile is null, not a guess

VALUATION_DAILY = Dataset(
    name="valuation_daily",
    description=(
        "Valuation per symbol and snapshot date, derived from fundamentals_daily and fx_daily: market cap in "
        "local currency and in USD, P/E, and the P/E band (where today's P/E sits within the symbol's own "
        f"trailing {PE_BAND_YEARS} years of stored P/Es). Re-derived from those tables for the months whose inputs "
        "changed since the last run."
    ),
    domain="analytics",
    fields=(
        REGION,
        SYMBOL,
        AS_OF,
        CURRENCY,
        Field("market_cap", "float64", "Market capitalisation in the listing currency (fundamentals_daily)",
              unit="listing currency", strictly_positive=True),
        Field("usd_per_unit", "float64", "FX rate used: fx_daily's close on as_of, else the last one before it "
              "(1 for USD); null when fx_daily has none", unit="USD", nullable=True, strictly_positive=True),
        Field("fx_date", "date", "Date of the FX close used (null for USD or when there is none)", nullable=True),
        Field("market_cap_usd", "float64", "market_cap x usd_per_unit", unit="USD", nullable=True,
              strictly_positive=True),
        Field("pe", "float64", "Price / earnings ratio (fundamentals_daily)", nullable=True),
        Field("pe_percentile", "float64",
              f"P/E band: share of the symbol's stored non-null P/Es in (as_of - {PE_BAND_YEARS} years, as_of], "
              "this one included, that are <= this P/E (0..1; 1 = the highest of the window). Null when pe is null "
              f"or the window holds fewer than {PE_BAND_MIN_SNAPSHOTS} P/Es", nullable=True, min_value=0,
              max_value=1),
        Field("pe_history", "int64", f"Stored non-null P/Es in the trailing {PE_BAND_YEARS}-year window",
              min_value=0),
        *LINEAGE,
    ),
    key=("region", "symbol", "as_of"),
    lake_keys=by_region_and_month("as_of"),
    sort_by=("region", "symbol", "as_of"),
    write_mode="replace",
    date_column="as_of",
    example="SELECT symbol, as_of, pe, pe_percentile, market_cap_usd FROM valuation_daily WHERE region = 'HK' "
            "AND pe_percentile IS NOT NULL ORDER BY as_of DESC, pe_percentile LIMIT 20  -- P/E band; USD caps",
)
