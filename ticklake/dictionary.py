"""The data dictionary: every stored field described once.

Pandera schemas (checks/schemas.py), DuckDB DDL (ticklake/warehouse.py), Arrow/Parquet schemas
(ticklake/lake.py) and Dagster table-schema metadata are all derived from the `Dataset`s below,
so a field is added, renamed or re-described in exactly one place.
"""

from __future__ import annotations

import datetime as dt
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
class LakeKey:
    """One hive folder level of a dataset's lake layout, `<name>=<value>`, derived from a column.

    `grain="month"` groups a date column by calendar month ("2024-06"): one file per month and region keeps
    20 years of daily bars at 240 files per region, and a month costs the same API calls as a day.
    """

    name: str  # folder key, e.g. "region", "month"
    column: str  # the dataset column it derives from
    grain: Literal["value", "month"] = "value"

    def value(self, raw: object) -> str:
        """The folder value for a column value (a date becomes its month for grain "month")."""
        if self.grain == "month":
            if isinstance(raw, dt.date):  # also datetime and pandas Timestamp
                return f"{raw:%Y-%m}"
            month_bounds(str(raw))  # a month already: refuse anything else
            return str(raw)
        return str(raw)

    def bounds(self, value: str) -> tuple[dt.date, dt.date] | None:
        """The [first, last] dates a month folder covers; None for plain values."""
        return month_bounds(value) if self.grain == "month" else None


def month_bounds(month: str) -> tuple[dt.date, dt.date]:
    """ "2024-06" -> (2024-06-01, 2024-06-30); a clear error for anything else."""
    try:
        first = dt.date.fromisoformat(f"{month}-01")
    except ValueError:
        raise ValueError(f"not a month: {month!r} (expected YYYY-MM)") from None
    following = dt.date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return first, following - dt.timedelta(days=1)


@dataclass(frozen=True)
class Dataset:
    name: str  # lake folder and warehouse table name
    description: str
    fields: tuple[Field, ...]
    key: tuple[str, ...]  # unique per row
    lake_keys: tuple[LakeKey, ...] = ()  # hive folders in the lake (empty: warehouse-only table)
    sort_by: tuple[str, ...] = ()
    in_lake: bool = True

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
    lake_keys=(LakeKey("region", "region"), LakeKey("month", "trade_date", grain="month")),
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
    lake_keys=(LakeKey("region", "region"),),
    sort_by=("region", "symbol"),
)

LAKE_PARTITIONS = Dataset(
    name="lake_partitions",
    description=(
        "One row per lake partition file: what it holds and which run committed it. Written in the same "
        "transaction as the partition's warehouse rows, so it is both the per-partition status analysts and "
        "engineers read, and the record that lets the next run detect and repair lake/warehouse drift."
    ),
    fields=(
        Field("dataset", "string", "Dataset (warehouse table) the partition belongs to"),
        _REGION,
        Field("partition", "string", "The partition within the region: a month (YYYY-MM) or '-' for per-region "
                                     "datasets"),
        Field("path", "string", "Parquet file, relative to the lake root"),
        Field("rows", "int64", "Rows in the partition file", unit="rows", min_value=0),
        Field("symbols", "int64", "Distinct symbols in the partition", unit="symbols", min_value=0),
        Field("first_date", "date", "Earliest trade date in the partition", nullable=True),
        Field("last_date", "date", "Latest trade date in the partition", nullable=True),
        Field("sessions", "int64", "Exchange sessions of the partition's period that have closed", unit="sessions",
              min_value=0),
        Field("sessions_with_rows", "int64", "Sessions that hold at least one row", unit="sessions", min_value=0),
        Field("complete", "bool", "Every session of the partition's period has closed (a past month)"),
        Field("missing_codes", "int64", "Requested codes the source did not answer in the run that wrote it; "
                                        "their previously stored rows were kept", unit="codes", min_value=0),
        Field("file_bytes", "int64", "Size of the Parquet file when committed", unit="bytes", min_value=0),
        Field("file_mtime_ns", "int64", "Modification time of the Parquet file when committed (drift detection)",
              unit="ns since epoch"),
        _RUN_ID,
        Field("committed_at", "timestamp", "When the partition was committed to the warehouse", unit="UTC",
              lineage=True),
    ),
    key=("dataset", "region", "partition"),
    sort_by=("dataset", "region", "partition"),
    in_lake=False,
)

DATASETS: dict[str, Dataset] = {d.name: d for d in (KLINES_DAILY, SECURITIES, LAKE_PARTITIONS)}
