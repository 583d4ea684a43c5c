"""Reference data: calendars, the security master, corporate actions."""

from __future__ import annotations

from ticklake.dictionary.core import Dataset, Field, LakeKey
from ticklake.dictionary.fields import EXCHANGE, LINEAGE, NAME, REGION, SYMBOL

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
        Field("security_type", "string", "Instrument type as the source reports it (stock)"),
        EXCHANGE,
        Field("first_seen", "date", "Exchange-local date of the first symbol list that contained the code"),
        Field("last_seen", "date", "Exchange-local date of the latest symbol list that contained the code"),
        Field("in_latest_list", "bool", "Whether the most recent symbol list still contains the code"),
        *LINEAGE,
    ),
    key=("region", "symbol"),
    lake_keys=(LakeKey("region", "region"),),
    sort_by=("region", "symbol"),
    example="SELECT symbol, name, exchange, in_latest_list FROM securities WHERE region = 'HK'",
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
    lake_keys=(LakeKey("region", "region"),),
    sort_by=("region", "symbol", "ex_date", "action"),
    write_mode="snapshot",
    date_column="ex_date",
    example="SELECT symbol, ex_date, ratio, factor FROM corporate_actions WHERE region = 'US' "
            "AND ex_date >= DATE '2020-01-01' ORDER BY ex_date",
)
