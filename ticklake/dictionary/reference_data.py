"""Reference data: calendars, the security master, corporate actions."""

from __future__ import annotations

from ticklake.dictionary.core import Dataset, Field, Macro, RowRule
from ticklake.dictionary.fields import (
    BY_REGION,
    CURRENCY,
    EXCHANGE,
    INDUSTRY,
    LINEAGE,
    NAME,
    REGION,
    SECTOR,
    SYMBOL,
    VALID_FROM,
    VALID_TO,
)

SECURITY_TYPE = Field("security_type", "string", "Instrument type as the source reports it (stock)")

SECURITIES = Dataset(
    name="securities",
    description=(
        "Security master per region: every code the source has listed, with the dates ticklake first and "
        "last saw it in the source's symbol list. Defines the universe fetched for klines."
    ),
    domain="reference_data",
    fields=(
        REGION,
        SYMBOL,
        NAME,
        SECURITY_TYPE,
        EXCHANGE,
        Field("first_seen", "date", "Exchange-local date of the first symbol list that contained the code"),
        Field("last_seen", "date", "Exchange-local date of the latest symbol list that contained the code"),
        Field("in_latest_list", "bool", "Whether the most recent symbol list still contains the code"),
        *LINEAGE,
    ),
    key=("region", "symbol"),
    lake_keys=BY_REGION,
    sort_by=("region", "symbol"),
    example="SELECT symbol, name, exchange, in_latest_list FROM securities WHERE region = 'HK'",
)

TRADING_CALENDAR = Dataset(
    name="trading_calendar",
    description=(
        "Trading calendar per region, one row per calendar day (so any date joins to an answer; a missing row "
        "means outside the known range, never 'closed'). `is_session` is authoritative and comes from "
        "exchange_calendars (ticklake.markets), the calendar every fetch and check of the pipeline already runs "
        "on: it reaches back decades and is versioned with the code. `source_is_session` is what the source's "
        "holiday list (iTick /symbol/v2/holidays plus weekends) says, kept as a cross-check: a disagreement is a "
        "warning listing the dates, never dropped. Null for years the source publishes no holidays."
    ),
    domain="reference_data",
    fields=(
        REGION,
        Field("date", "date", "Calendar date in the exchange's own time zone"),
        Field("is_session", "bool", "Whether the exchange trades that day (authoritative: exchange_calendars)"),
        Field("source_is_session", "bool", "Whether the source's holiday list makes that day a session (a "
                                           "weekday not listed as a holiday); null for years it publishes none",
              nullable=True),
        *LINEAGE,
    ),
    key=("region", "date"),
    lake_keys=BY_REGION,
    sort_by=("region", "date"),
    date_column="date",
    example=("SELECT count(*) AS sessions FROM trading_calendar WHERE region = 'HK' AND is_session "
             "AND date BETWEEN DATE '2024-01-01' AND DATE '2024-06-30'"),
)

LISTING_DATE = Field("listing_date", "date", "Exchange-local first trading date, from the source's IPO list "
                                             "(/stock/ipo); null when the listing predates what the source reports",
                     nullable=True)
DELISTING_DATE = Field("delisting_date", "date", "First exchange-local date the symbol list no longer contained the "
                                                 "code (it left between the previous observation and this date); "
                                                 "null while it is listed", nullable=True)

SECURITY_MASTER = Dataset(
    name="security_master",
    description=(
        "Point-in-time security master per region: each day's symbol list folded into validity intervals "
        "[valid_from, valid_to) per symbol, with its descriptors and listing and delisting dates. A change of "
        "any descriptor closes the interval and opens a new one; a symbol that vanishes from the list gets a new "
        "interval whose delisting_date is that day; nothing is deleted, so 'what was known on D' stays "
        "answerable. Listing dates are folded in as a column (not a dataset of their own): the IPO list is small, "
        "the date describes the symbol like its name does, and one table answers 'the universe on D' "
        "(see universe_on). Sector, industry and currency come from the latest /stock/info snapshot in "
        "fundamentals_daily (null until the budgeted refresh first reaches the symbol)."
    ),
    domain="reference_data",
    fields=(REGION, SYMBOL, VALID_FROM, VALID_TO, NAME, EXCHANGE, SECURITY_TYPE, SECTOR, INDUSTRY, CURRENCY,
            LISTING_DATE, DELISTING_DATE, *LINEAGE),
    key=("region", "symbol", "valid_from"),
    lake_keys=BY_REGION,
    sort_by=("region", "symbol", "valid_from"),
    write_mode="intervals",
    rules=(RowRule("valid_to", ">", ("valid_from",)), RowRule("delisting_date", ">", ("listing_date",))),
    date_column="valid_from",
    versioned=True,
    example=("SELECT symbol, valid_from, valid_to, name, listing_date, delisting_date FROM security_master "
             "WHERE region = 'US' ORDER BY symbol, valid_from"),
)

UNIVERSE_ON = Macro(
    name="universe_on",
    params=("region_code", "day"),
    sql=(
        "SELECT region, symbol, name, exchange, security_type, listing_date, delisting_date "
        "FROM security_master WHERE region = region_code "
        "QUALIFY row_number() OVER (PARTITION BY region, symbol ORDER BY valid_from DESC, ingested_at DESC) = 1 "
        "AND (listing_date IS NULL OR listing_date <= day) "
        "AND (delisting_date IS NULL OR delisting_date > day)"
    ),
    description=(
        "The symbols of a region's universe on `day`, by the latest known state of each symbol: listed on or "
        "before `day` (a null listing_date means listed before the known history) and not delisted on or before "
        "it. Delisted symbols stay in the master, so a backtest over past dates carries no survivorship bias."
    ),
    domain="reference_data",
    example="SELECT symbol, name FROM universe_on('US', DATE '2020-01-02') ORDER BY symbol",
)


UNIVERSE_AS_OF = Macro(
    name="universe_as_of",
    params=("region_code", "day", "ts"),
    sql=(
        "SELECT region, symbol, name, exchange, security_type, listing_date, delisting_date "
        "FROM security_master_as_of(ts) WHERE region = region_code "
        "QUALIFY row_number() OVER (PARTITION BY region, symbol ORDER BY valid_from DESC, ingested_at DESC) = 1 "
        "AND (listing_date IS NULL OR listing_date <= day) "
        "AND (delisting_date IS NULL OR delisting_date > day)"
    ),
    description=(
        "`universe_on` as it was known at the instant `ts`: the universe a backtest run at `ts` would have used "
        "for `day`, before later delistings, listing dates or renames were learned."
    ),
    domain="reference_data",
    example="SELECT symbol FROM universe_as_of('US', DATE '2020-01-02', TIMESTAMPTZ '2024-06-01 00:00:00+00')",
)


CORPORATE_ACTIONS = Dataset(
    name="corporate_actions",
    description=(
        "Splits per region as the source publishes them (`/stock/split`), the ratio parsed to a price factor. "
        "Rows upsert by key: a split once published stays, and a split the source later stops listing is kept "
        "(absence is not data; the refresh reports it as `not_in_feed`). Backward-adjusts `klines_daily_adjusted`."
    ),
    domain="reference_data",
    fields=(
        REGION,
        SYMBOL,
        Field("ex_date", "date", "First session the price trades on the new share basis (the source's `d`, epoch "
                                 "ms, taken as a date in the exchange's time zone)"),
        Field("action", "string", "Kind of corporate action: `split` (a reverse split/consolidation is a split "
                                  "with ratio_from > ratio_to)", pattern=r"^split$"),
        Field("ratio", "string", "The ratio exactly as the source sent it, `from:to` (\"1:10\")"),
        Field("ratio_from", "float64", "Old shares that become `ratio_to` new ones", unit="shares",
              strictly_positive=True),
        Field("ratio_to", "float64", "New shares that `ratio_from` old ones become", unit="shares",
              strictly_positive=True),
        Field("factor", "float64", "Price multiplier of the split, ratio_from / ratio_to: a price quoted before the "
                                   "ex-date times factor is the same value on the new share basis (1:2 -> 0.5, "
                                   "10:1 -> 10); volumes divide by it", unit="ratio", strictly_positive=True),
        NAME,
        *LINEAGE,
    ),
    key=("region", "symbol", "ex_date", "action"),
    lake_keys=BY_REGION,
    sort_by=("region", "symbol", "ex_date", "action"),
    write_mode="snapshot",
    date_column="ex_date",
    example="SELECT symbol, ex_date, ratio, factor FROM corporate_actions WHERE region = 'US' "
            "AND ex_date >= DATE '2020-01-01' ORDER BY ex_date",
)
