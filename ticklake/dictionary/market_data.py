"""Market data: what traded, as the source reported it."""

from __future__ import annotations

from ticklake.dictionary.core import Dataset, Field
from ticklake.dictionary.fields import DAILY_BAR_LAYOUT, LINEAGE, REGION, SYMBOL, TRADE_DATE

# The bar's market values, described once: the raw layer and the golden copy carry the same ones.
OPEN = Field("open", "float64", "First traded price of the session", unit="listing currency", strictly_positive=True)
HIGH = Field("high", "float64", "Highest traded price of the session", unit="listing currency", strictly_positive=True)
LOW = Field("low", "float64", "Lowest traded price of the session", unit="listing currency", strictly_positive=True)
CLOSE = Field("close", "float64", "Last traded price of the session", unit="listing currency", strictly_positive=True)
VOLUME = Field("volume", "float64", "Quantity traded in the session", unit="shares", min_value=0)
TURNOVER = Field("turnover", "float64", "Value traded in the session (null: the source does not report it)",
                 unit="listing currency", min_value=0, nullable=True)
BAR_TS = Field("bar_ts", "timestamp", "Bar timestamp exactly as the source sent it (`t`); null for a source that "
                                      "sends exchange-local dates only (a vendor file)", unit="UTC", lineage=True,
               nullable=True)
BAR_FIELDS = (REGION, SYMBOL, TRADE_DATE, OPEN, HIGH, LOW, CLOSE, VOLUME, TURNOVER)
PRICE_FIELDS = ("open", "high", "low", "close")  # compared in basis points; volume in percent (the sources file)
COMPARED_FIELDS = (*PRICE_FIELDS, "volume")

KLINES_DAILY_BY_SOURCE = Dataset(
    name="klines_daily_by_source",
    description=("The raw layer: every source's own daily bars, as it said them, one row per source, symbol and "
                 "session, aligned to the region's trading dates. Arbitration reads it and never writes it; "
                 "`klines_daily` is the one arbitrated version."),
    domain="market_data",
    fields=(
        *BAR_FIELDS,
        Field("split_ratio", "float64", "Split ratio the source reported effective on the session (2 = a 2-for-1 "
                                        "split); null where it reports none", nullable=True, min_value=0),
        Field("dividend", "float64", "Cash dividend the source reported going ex on the session; null where it "
                                     "reports none", unit="listing currency", nullable=True, min_value=0),
        BAR_TS,
        Field("file", "string", "The delivery the bar came from (a vendor file's name); null for an API answer",
              lineage=True, nullable=True),
        Field("received_at", "timestamp", "When the answer or file carrying this version arrived", unit="UTC",
              lineage=True),
        *LINEAGE,
    ),
    **DAILY_BAR_LAYOUT,
    versioned=True,
    restatements_recorded=False,
    example="SELECT source, trade_date, close, volume FROM klines_daily_by_source WHERE region = 'US' AND "
            "symbol = 'AAPL' ORDER BY trade_date, source",
)

KLINES_DAILY = Dataset(
    name="klines_daily",
    description=("The golden copy: one arbitrated, raw (split-unadjusted) daily OHLCV bar per symbol and trading "
                 "session, built from every source's bars in `klines_daily_by_source`, each carrying which source "
                 "won and by which rule."),
    domain="market_data",
    fields=(
        *BAR_FIELDS,
        BAR_TS,
        Field("rule", "string", "How the bar was decided: agreed (the sources agree within tolerance), "
                                "single_source (one source has it), priority (they disagree: the priority source's "
                                "value, with an open exception) or override (a person decided)", lineage=True,
              nullable=True),
        Field("sources", "string", "The sources that had the bar, comma-separated in priority order", lineage=True,
              nullable=True),
        Field("max_rel_diff", "float64", "The largest relative difference between the sources' values of the bar "
                                         "(0: identical; null: a single source)", lineage=True, nullable=True,
              min_value=0),
        *LINEAGE,
    ),
    **DAILY_BAR_LAYOUT,
    versioned=True,
    arbitrated=True,
    example="SELECT trade_date, close, volume FROM klines_daily WHERE region = 'US' AND symbol = 'AAPL' "
            "ORDER BY trade_date",
)
