"""Fields several datasets share, described once, and the one accepted shape of an instrument code."""

from __future__ import annotations

from ticklake.dictionary.core import Field, LakeKey, RowRule

# Instrument codes travel in URLs, query strings, file paths and log lines, so only one safe shape is accepted
# anywhere (from a symbol list, in a client call, in a stored row). Every code shape of the iTick protocol fits:
# 700, 9988, 600519, 000001, AAPL, BRK.B, EURUSD, XAUUSD, BTCUSDT, SPX, NQ, legacy 700.HK. A comma (the batch
# separator), whitespace, '/', '&', '%' or '?' never does.
SYMBOL_MAX_LENGTH = 32
SYMBOL_PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9._-]{{0,{SYMBOL_MAX_LENGTH - 1}}}$"
SYMBOL_RULE = (f"1 to {SYMBOL_MAX_LENGTH} ASCII letters, digits, '.', '_' or '-', starting with a letter or digit "
               f"({SYMBOL_PATTERN})")
# Source names become lake file names (`<source>.parquet`), so they have a safe shape too.
SOURCE_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
CURRENCY_PATTERN = r"^[A-Z]{3}$"

REGION = Field("region", "string", "iTick market/region code, e.g. US, HK, SH, JP")
SYMBOL = Field("symbol", "string", "Instrument code as the source spells it within the region (700, AAPL)",
               pattern=SYMBOL_PATTERN)
SOURCE = Field("source", "string", "Source adapter that produced the row (itick, itick-sim); each source's rows "
                                   "live in their own lake file, so one source never replaces another's",
               lineage=True, pattern=SOURCE_PATTERN)
INGESTED_AT = Field(
    "ingested_at",
    "timestamp",
    "When this version of the row was first stored; unchanged by re-runs that fetch identical values",
    unit="UTC",
    lineage=True,
)
RUN_ID = Field("run_id", "string", "Dagster run that stored this version of the row", lineage=True)
LINEAGE = (SOURCE, INGESTED_AT, RUN_ID)

TRADE_DATE = Field("trade_date", "date", "Trading session date in the exchange's own time zone")
AS_OF = Field("as_of", "date", "Exchange-local date the snapshot was taken (the source's values as of that day)")
CURRENCY = Field("currency", "string", "ISO 4217 currency the prices and values are quoted in", nullable=True,
                 pattern=CURRENCY_PATTERN)
NAME = Field("name", "string", "Instrument name", nullable=True)
EXCHANGE = Field("exchange", "string", "Listing exchange (NASDAQ, HKEX, SSE, TSE)", nullable=True)
SECTOR = Field("sector", "string", "Sector as the source classifies it", nullable=True)
INDUSTRY = Field("industry", "string", "Industry as the source classifies it", nullable=True)
VALID_FROM = Field("valid_from", "date", "First exchange-local date this version was the known one")
VALID_TO = Field("valid_to", "date", "First date this version was no longer the known one; null while it still is",
                 nullable=True)

# Lake layouts: one file per region (small reference tables), or per region and month of a date column (one file
# per month keeps 20 years at 240 files per region, and a month costs the same API calls as a day).
BY_REGION = (LakeKey("region", "region"),)


def by_region_and_month(date_column: str) -> tuple[LakeKey, LakeKey]:
    return (LakeKey("region", "region"), LakeKey("month", date_column, grain="month"))


# The cross-field rules of any OHLC bar, raw or adjusted.
OHLC_RULES = (RowRule("low", "<=", ("open", "close")), RowRule("high", ">=", ("open", "close")),
              RowRule("low", "<=", ("high",)))


# How every daily-bar table (raw layer, golden copy, adjusted) is keyed, laid out and checked: one row per symbol and
# session, a month per partition, in symbol order, the OHLC rules.
DAILY_BAR_LAYOUT = {
    "key": ("region", "symbol", "trade_date"),
    "lake_keys": by_region_and_month("trade_date"),
    "sort_by": ("region", "symbol", "trade_date"),
    "write_mode": "replace",
    "rules": OHLC_RULES,
    "date_column": "trade_date",
}
