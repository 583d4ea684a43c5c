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
