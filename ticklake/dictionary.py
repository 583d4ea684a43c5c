"""The data dictionary: every stored field described once.

Pandera schemas (checks/schemas.py), DuckDB DDL (ticklake/warehouse.py), Arrow/Parquet schemas
(ticklake/lake.py) and Dagster table-schema metadata are all derived from the `Dataset`s below,
so a field is added, renamed or re-described in exactly one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

LogicalType = Literal["string", "date", "float64", "int64", "timestamp", "bool"]

# Logical type -> (pandas dtype, Arrow type, DuckDB type). Timestamps are UTC instants.
_TYPES: dict[str, tuple[str, pa.DataType, str]] = {
    "string": ("string", pa.string(), "VARCHAR"),
    "date": ("datetime64[ms]", pa.date32(), "DATE"),
    "float64": ("float64", pa.float64(), "DOUBLE"),
    "int64": ("int64", pa.int64(), "BIGINT"),
    "timestamp": ("datetime64[ms, UTC]", pa.timestamp("ms", tz="UTC"), "TIMESTAMPTZ"),
    "bool": ("bool", pa.bool_(), "BOOLEAN"),
}


@dataclass(frozen=True)
class Field:
    name: str
    type: LogicalType
    description: str
    unit: str | None = None
    nullable: bool = False
    min_value: float | None = None  # inclusive lower bound, enforced by Pandera
    strictly_positive: bool = False
    lineage: bool = False  # describes where/when the row came from, not the market
    pattern: str | None = None  # a regular expression the whole value must match, enforced by Pandera

    @property
    def pandas_dtype(self) -> str:
        return _TYPES[self.type][0]

    @property
    def arrow_type(self) -> pa.DataType:
        return _TYPES[self.type][1]

    @property
    def duckdb_type(self) -> str:
        return _TYPES[self.type][2]

    @property
    def doc(self) -> str:
        return f"{self.description} [{self.unit}]" if self.unit else self.description


@dataclass(frozen=True)
class Dataset:
    name: str  # lake folder and warehouse table name
    description: str
    fields: tuple[Field, ...]
    key: tuple[str, ...]  # unique per row
    partition_columns: tuple[str, ...] = ()  # hive folders in the lake
    sort_by: tuple[str, ...] = ()

    @property
    def columns(self) -> list[str]:
        return [f.name for f in self.fields]

    @property
    def value_columns(self) -> list[str]:
        """Columns whose change is a restatement (everything but key and lineage)."""
        return [f.name for f in self.fields if not f.lineage and f.name not in self.key]

    @property
    def lineage_columns(self) -> list[str]:
        return [f.name for f in self.fields if f.lineage]

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no field {name!r}")

    @property
    def arrow_schema(self) -> pa.Schema:
        return pa.schema(
            [pa.field(f.name, f.arrow_type, nullable=f.nullable, metadata={"doc": f.doc}) for f in self.fields],
            metadata={"dataset": self.name, "doc": self.description},
        )


# Instrument codes travel in URLs, query strings, file paths and log lines, so only one safe shape is accepted
# anywhere (from a symbol list, in a client call, in a stored row). Every code shape of the iTick protocol fits:
# 700, 9988, 600519, 000001, AAPL, BRK.B, EURUSD, XAUUSD, BTCUSDT, SPX, NQ, legacy 700.HK. A comma (the batch
# separator), whitespace, '/', '&', '%' or '?' never does.
SYMBOL_MAX_LENGTH = 32
SYMBOL_PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9._-]{{0,{SYMBOL_MAX_LENGTH - 1}}}$"
SYMBOL_RULE = (f"1 to {SYMBOL_MAX_LENGTH} ASCII letters, digits, '.', '_' or '-', starting with a letter or digit "
               f"({SYMBOL_PATTERN})")

# Fields shared by every dataset fetched from a source.
_REGION = Field("region", "string", "iTick market/region code, e.g. US, HK, SH, JP")
_SYMBOL = Field("symbol", "string", "Instrument code as the source spells it within the region (700, AAPL)",
                pattern=SYMBOL_PATTERN)
_SOURCE = Field("source", "string", "Source adapter that produced the row (itick, itick-sim)", lineage=True)
_INGESTED_AT = Field(
    "ingested_at",
    "timestamp",
    "When this version of the row was first stored; unchanged by re-runs that fetch identical values",
    unit="UTC",
    lineage=True,
)
_RUN_ID = Field("run_id", "string", "Dagster run that stored this version of the row", lineage=True)

KLINES_DAILY = Dataset(
    name="klines_daily",
    description="Raw (split-unadjusted) daily OHLCV bars, one row per symbol and trading session.",
    fields=(
        _REGION,
        _SYMBOL,
        Field("trade_date", "date", "Trading session date in the exchange's own time zone"),
        Field("open", "float64", "First traded price of the session", unit="listing currency", strictly_positive=True),
        Field("high", "float64", "Highest traded price of the session", unit="listing currency",
              strictly_positive=True),
        Field("low", "float64", "Lowest traded price of the session", unit="listing currency", strictly_positive=True),
        Field("close", "float64", "Last traded price of the session", unit="listing currency",
              strictly_positive=True),
        Field("volume", "float64", "Quantity traded in the session", unit="shares", min_value=0),
        Field("turnover", "float64", "Value traded in the session", unit="listing currency", min_value=0),
        Field("bar_ts", "timestamp", "Bar timestamp exactly as the source sent it (`t`)", unit="UTC", lineage=True),
        _SOURCE,
        _INGESTED_AT,
        _RUN_ID,
    ),
    key=("region", "symbol", "trade_date"),
    partition_columns=("region", "trade_date"),
    sort_by=("region", "symbol", "trade_date"),
)

SECURITIES = Dataset(
    name="securities",
    description=(
        "Security master per region: every code the source has listed, with the dates ticklake first and "
        "last saw it in the source's symbol list. Defines the universe fetched for klines."
    ),
    fields=(
        _REGION,
        _SYMBOL,
        Field("name", "string", "Instrument name", nullable=True),
        Field("security_type", "string", "Instrument type as the source reports it (stock)"),
        Field("exchange", "string", "Listing exchange (NASDAQ, HKEX, SSE, TSE)", nullable=True),
        Field("first_seen", "date", "Exchange-local date of the first symbol list that contained the code"),
        Field("last_seen", "date", "Exchange-local date of the latest symbol list that contained the code"),
        Field("in_latest_list", "bool", "Whether the most recent symbol list still contains the code"),
        _SOURCE,
        _INGESTED_AT,
        _RUN_ID,
    ),
    key=("region", "symbol"),
    partition_columns=("region",),
    sort_by=("region", "symbol"),
)

DATASETS: dict[str, Dataset] = {d.name: d for d in (KLINES_DAILY, SECURITIES)}
