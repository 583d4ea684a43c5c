"""The types of the data dictionary: a field, a lake key, a row rule and a dataset.

Pandera schemas (ticklake/dictionary/schemas.py), DuckDB/DuckLake DDL (ticklake/storage/ddl.py), Arrow schemas
(ticklake/storage/frames.py), Dagster table-schema metadata (assets/metadata.py) and the table reference
(docs/tables.md) are all derived from the `Dataset`s built from these, so a field is added, renamed or
re-described in exactly one place, and the write path handles every dataset by what it declares here.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import pandas as pd
import pyarrow as pa

LogicalType = Literal["string", "date", "float64", "int64", "timestamp", "bool"]

# Logical type -> (pandas dtype, Arrow type, DuckDB type, Dagster column type). Timestamps are UTC instants.
_TYPES: dict[str, tuple[str, pa.DataType, str, str]] = {
    "string": ("string", pa.string(), "VARCHAR", "string"),
    "date": ("datetime64[ms]", pa.date32(), "DATE", "date"),
    "float64": ("float64", pa.float64(), "DOUBLE", "float"),
    "int64": ("int64", pa.int64(), "BIGINT", "int"),
    "timestamp": ("datetime64[ms, UTC]", pa.timestamp("ms", tz="UTC"), "TIMESTAMPTZ", "timestamp"),
    "bool": ("bool", pa.bool_(), "BOOLEAN", "bool"),
}

# How a run's rows reach a dataset's lake partition (one file per partition and source):
# - "replace": the run hands over the partition's complete contents (klines: stored rows merged with what the
#   source answered); everything else of that source in the partition is replaced.
# - "snapshot": dated snapshots appended per as-of date; a row replaces only the stored row with the same key
#   (re-running a day is idempotent, a budgeted refresh of some symbols keeps the others' rows).
# - "intervals": a history of validity intervals [valid_from, valid_to) per entity (the key without
#   `valid_from`); an observation closes intervals whose values changed or whose entity vanished, and opens new
#   ones. Nothing is ever deleted, so "as known on D" stays answerable.
WriteMode = Literal["replace", "snapshot", "intervals"]
WRITE_MODES: tuple[str, ...] = ("replace", "snapshot", "intervals")

# Domains group datasets in the Dagster UI and the table reference.
Domain = Literal["market_data", "reference_data", "fundamentals", "analytics", "operations"]
DOMAINS: dict[str, str] = {
    "market_data": "Market data: what traded, as the source reported it",
    "reference_data": "Reference data: calendars, the security master, corporate actions",
    "fundamentals": "Fundamentals: valuation snapshots and FX",
    "analytics": "Analytics: derived for analysts, re-derivable at any time from the tables above",
    "operations": "Operations: what the pipeline stored and when",
}


@dataclass(frozen=True)
class Field:
    name: str
    type: LogicalType
    description: str
    unit: str | None = None
    nullable: bool = False
    min_value: float | None = None  # inclusive lower bound, enforced by Pandera
    max_value: float | None = None  # inclusive upper bound, enforced by Pandera
    strictly_positive: bool = False
    lineage: bool = False  # describes where/when the row came from, not the market
    pattern: str | None = None  # a regular expression the whole value must match, enforced by Pandera

    @property
    def pandas_dtype(self) -> str:
        if self.type == "bool" and self.nullable:
            return "boolean"  # numpy's bool has no null; pandas' masked boolean does
        return _TYPES[self.type][0]

    @property
    def arrow_type(self) -> pa.DataType:
        return _TYPES[self.type][1]

    @property
    def duckdb_type(self) -> str:
        return _TYPES[self.type][2]

    @property
    def dagster_type(self) -> str:
        return _TYPES[self.type][3]

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


_OPS: dict[str, tuple[Callable, str]] = {"<=": (operator.le, "min"), ">=": (operator.ge, "max"),
                                         "<": (operator.lt, "min"), ">": (operator.gt, "max")}


@dataclass(frozen=True)
class RowRule:
    """A rule across fields of one row: `column op other` for every one of `others` (where none is null).

    Declared once, it is enforced by Pandera before a write and can be rendered as SQL for lake checks.
    """

    column: str
    op: Literal["<=", ">=", "<", ">"]
    others: tuple[str, ...]

    @property
    def name(self) -> str:
        right = self.others[0] if len(self.others) == 1 else f"{_OPS[self.op][1]}({', '.join(self.others)})"
        return f"{self.column} {self.op} {right}"

    def holds(self, frame: pd.DataFrame) -> pd.Series:
        """True per row where the rule holds or a value it compares is null."""
        compare = _OPS[self.op][0]
        ok = pd.Series(True, index=frame.index)
        left = frame[self.column]
        for other in self.others:
            right = frame[other]
            ok &= compare(left, right).fillna(True).astype(bool) | left.isna() | right.isna()
        return ok

    @property
    def sql(self) -> str:
        return " AND ".join(f'("{self.column}" {self.op} "{o}" OR "{o}" IS NULL OR "{self.column}" IS NULL)'
                            for o in self.others)


@dataclass(frozen=True)
class Dataset:
    name: str  # lake folder and lake table name
    description: str
    fields: tuple[Field, ...]
    key: tuple[str, ...]  # unique per row (within one source; across sources for an arbitrated dataset)
    domain: Domain = "market_data"
    lake_keys: tuple[LakeKey, ...] = ()  # hive folders in the lake (empty: lake-only table)
    sort_by: tuple[str, ...] = ()
    write_mode: WriteMode = "replace"
    rules: tuple[RowRule, ...] = ()
    date_column: str | None = None  # the date a row is about (trade_date, as_of): partition windows use it
    in_lake: bool = True
    example: str | None = None  # an analyst query shown in the table reference
    # Point in time: every version a write supersedes (restated or removed) is kept in `<name>_history`, so
    # `<name>_as_of(ts)` answers "as known at ts" (see `history_of`).
    versioned: bool = False
    history_for: str | None = None  # set on a history dataset: the dataset whose superseded versions it keeps
    # One version per key across sources (the golden copy): `source` names each row's winner, and a write replaces
    # a partition's rows whichever source won them (its lake_partitions row and address say `GOLDEN`).
    arbitrated: bool = False
    # The write path records what a write of a versioned dataset changes in the ledger; a raw layer's changes
    # reach it through the golden copy they change instead (recorded once, not once per layer).
    restatements_recorded: bool = True

    def __post_init__(self) -> None:
        names = [f.name for f in self.fields]
        unknown = [c for c in (*self.key, *self.sort_by, *(k.column for k in self.lake_keys),
                               *(c for r in self.rules for c in (r.column, *r.others)),
                               *([self.date_column] if self.date_column else [])) if c not in names]
        if unknown or len(set(names)) != len(names):
            raise ValueError(f"{self.name}: unknown or duplicate columns {unknown or names}")
        if self.write_mode not in WRITE_MODES:
            raise ValueError(f"{self.name}: write_mode {self.write_mode!r} is not one of {WRITE_MODES}")
        if self.write_mode == "intervals" and not {"valid_from", "valid_to"} <= set(names):
            raise ValueError(f"{self.name}: an intervals dataset needs valid_from and valid_to fields")
        if self.in_lake and "source" not in names:
            raise ValueError(f"{self.name}: a lake dataset needs a `source` field (one file per source)")

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

    @property
    def entity(self) -> tuple[str, ...]:
        """What one history of intervals describes: the key without `valid_from` (the key itself otherwise)."""
        return tuple(c for c in self.key if c != "valid_from")

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


GOLDEN = "golden"  # the partition label of an arbitrated dataset's rows (every source's winners)


SUPERSEDED_AT = Field("superseded_at", "timestamp", "When this version stopped being the known one: the instant of "
                      "the run that restated or removed it (the new version's ingested_at)", unit="UTC", lineage=True)
SUPERSEDED_BY = Field("superseded_by", "string", "Dagster run that restated or removed this version", lineage=True)


def history_of(dataset: Dataset) -> Dataset:
    """The dataset keeping every superseded version of `dataset`'s rows: its fields plus when and by which run a
    version stopped being the known one, keyed by the row's key and the version's `ingested_at`, laid out like
    the dataset itself. Written in the same commit as the rows that supersede them."""
    return Dataset(
        name=f"{dataset.name}_history",
        description=(f"Every superseded version of a `{dataset.name}` row (restated by the source, or removed), with "
                     f"when it stopped being the known one. Together with `{dataset.name}` it answers 'as known at "
                     f"T': `{dataset.name}_as_of(T)`. Nothing here is ever deleted."),
        fields=(*dataset.fields, SUPERSEDED_AT, SUPERSEDED_BY),
        key=(*dataset.key, "ingested_at"),
        domain=dataset.domain,
        lake_keys=dataset.lake_keys,
        sort_by=(*dataset.sort_by, "ingested_at"),
        write_mode="snapshot",  # upsert by (key, ingested_at): a retried commit adds nothing twice
        rules=dataset.rules,
        date_column=dataset.date_column,
        example=f"SELECT * FROM {dataset.name}_history ORDER BY superseded_at DESC LIMIT 20",
        history_for=dataset.name,
        arbitrated=dataset.arbitrated,
    )


def as_of_macro(dataset: Dataset) -> Macro:
    """`<name>_as_of(ts)`: the rows of `dataset` as they were known at instant `ts`: current versions stored by
    then, plus superseded versions that were still the known ones then."""
    columns = ", ".join(f'"{c}"' for c in dataset.columns)
    return Macro(
        name=f"{dataset.name}_as_of",
        params=("ts",),
        sql=(f"SELECT {columns} FROM {dataset.name} WHERE ingested_at <= ts "
             f"UNION ALL SELECT {columns} FROM {dataset.name}_history "
             f"WHERE ingested_at <= ts AND superseded_at > ts"),
        description=(f"`{dataset.name}` as known at the instant `ts` (a TIMESTAMPTZ): what a backtest run at `ts` "
                     "would have read. Restatements made later are not visible; rows first stored later are absent."),
        domain=dataset.domain,
        example=f"SELECT count(*) FROM {dataset.name}_as_of(TIMESTAMPTZ '2024-06-28 00:00:00+00')",
    )


@dataclass(frozen=True)
class Macro:
    """A documented DuckDB table macro analysts call, created in the lake with the tables
    (`SELECT * FROM universe_on('US', DATE '2020-01-02')`): one answer to a recurring question, written once."""

    name: str
    params: tuple[str, ...]
    sql: str  # the SELECT the macro returns; params are referenced by name
    description: str
    domain: Domain
    example: str

    @property
    def create_sql(self) -> str:
        return f"CREATE OR REPLACE MACRO {self.name}({', '.join(self.params)}) AS TABLE {self.sql}"
