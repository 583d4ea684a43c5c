"""SQL derived from the data dictionary: tables, comments, physical layout and partition filters.

A dataset's lake keys (region, month) are its *logical* partitions: the unit a run replaces. Its physical layout
serves the analysts' two shapes, one symbol's history and one date's cross-section (measured in
`benchmarks/scenarios/lakehouse.py`, figures in benchmarks/README.md, "Lakehouse"):

- DuckLake partitions by region and year: a symbol's ten years read ten files per region, a date's cross-section
  one. Month partitions made a symbol's history read 120 files; no year partition made a cross-section read all.
- Inside a year file rows run in (quarter, symbol, date) order (`SORTED BY`, which DuckLake applies on insert and
  when compaction merges a year's month files, and `cluster_order`): a cross-section's zone maps prune to its
  quarter, and a symbol's rows are four runs per file. Plain (symbol, date) order left a cross-section scanning the
  whole year (every row group holds every date); (month, symbol, date) made a symbol read 12 runs per file.
- Row groups of 8,192 rows (DuckDB's default is 122,880) so a symbol's run costs one small row group to decode,
  and zstd, so the lake stays within 1.1x of one compressed copy of its rows.
PARQUET_OPTIONS are lake-wide (DuckLake refuses table-scoped options on a table created in the same
transaction); they apply to every file written after they are set, compaction included.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ticklake.dictionary import Dataset
from ticklake.storage.catalog import ALIAS


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def create_table_sql(dataset: Dataset) -> str:
    columns = ",\n  ".join(
        f"{quote(f.name)} {f.duckdb_type}{'' if f.nullable else ' NOT NULL'}" for f in dataset.fields
    )
    return f"CREATE TABLE IF NOT EXISTS {quote(dataset.name)} (\n  {columns}\n)"


def comment_sql(dataset: Dataset) -> list[str]:
    statements = [f"COMMENT ON TABLE {quote(dataset.name)} IS {literal(dataset.description)}"]
    statements += [
        f"COMMENT ON COLUMN {quote(dataset.name)}.{quote(f.name)} IS {literal(f.doc)}" for f in dataset.fields
    ]
    return statements


PARQUET_OPTIONS = {"parquet_compression": "'zstd'", "parquet_row_group_size": "8192"}
BLOCK = "quarter"  # the date block a year file is sorted by before the symbol (see the module docstring)


def partitioning(dataset: Dataset) -> list[str]:
    """DuckLake partition expressions: region, and the year of a month-keyed date column."""
    out = []
    for key in dataset.lake_keys:
        out.append(f"year({quote(key.column)})" if key.grain == "month" else quote(key.column))
    return out


def sort_key(dataset: Dataset) -> list[str]:
    """The physical row order: the dataset's sort key with, for a month-keyed date column, its quarter inserted
    before the column preceding the date (region, quarter, symbol, trade_date). Partition columns lead (the quarter
    implies the year), so an insert writes one file per partition instead of one per open writer."""
    columns = [quote(c) for c in dataset.sort_by]
    month_keys = [k.column for k in dataset.lake_keys if k.grain == "month"]
    if month_keys and month_keys[0] in dataset.sort_by:
        at = max(dataset.sort_by.index(month_keys[0]) - 1, 0)
        columns.insert(at, f"date_trunc('{BLOCK}', {quote(month_keys[0])})")
    return columns


def layout_sql(dataset: Dataset) -> list[str]:
    statements = []
    if parts := partitioning(dataset):
        statements.append(f"ALTER TABLE {quote(dataset.name)} SET PARTITIONED BY ({', '.join(parts)})")
    if dataset.sort_by:
        statements.append(f"ALTER TABLE {quote(dataset.name)} SET SORTED BY ({', '.join(sort_key(dataset))})")
    if any(k.grain == "month" for k in dataset.lake_keys):  # the time series: lake-wide, see the docstring
        statements += [f"CALL {ALIAS}.set_option('{name}', {value})" for name, value in PARQUET_OPTIONS.items()]
    return statements


def cluster_order(dataset: Dataset) -> str:
    """Physical row order of an insert (`sort_key`): the order compaction keeps, so a file needs no re-sorting."""
    return ", ".join(sort_key(dataset)) or "ALL"


def partition_filter(dataset: Dataset, partitions: Sequence[Mapping[str, str]]) -> tuple[str, list]:
    """A WHERE clause selecting exactly the rows of the given logical partitions (by region, month, ...), and only
    the given source's rows where the values name one: a source's write never deletes another source's rows."""
    clauses, params = [], []
    for values in partitions:
        terms = []
        if "source" in values and not dataset.arbitrated:
            terms.append('"source" = ?')
            params.append(values["source"])
        for key in dataset.lake_keys:
            bounds = key.bounds(values[key.name])
            if bounds is None:
                terms.append(f"{quote(key.column)} = ?")
                params.append(values[key.name])
            else:
                terms.append(f"{quote(key.column)} BETWEEN ? AND ?")
                params += list(bounds)
        clauses.append("(" + (" AND ".join(terms) or "TRUE") + ")")
    return " OR ".join(clauses) or "FALSE", params


def partition_label(dataset: Dataset, values: Mapping[str, str]) -> str:
    """A partition's name within its region in `lake_partitions`: its month, or "-" when there is none."""
    rest = [values[k.name] for k in dataset.lake_keys if k.name != "region"]
    return "/".join(rest) or "-"


def partition_address(dataset: Dataset, values: Mapping[str, str]) -> str:
    """A logical partition as `lake_partitions.path` and run metadata name it: `klines_daily/region=US/month=
    2024-06/itick` (the rows of one source in one partition; DuckLake decides which Parquet files hold them)."""
    levels = [f"{k.name}={values[k.name]}" for k in dataset.lake_keys]
    return "/".join([dataset.name, *levels, values.get("source", "*")])


def status_filter(dataset: Dataset, partitions: Sequence[Mapping[str, str]]) -> tuple[str, list]:
    clauses, params = [], []
    for values in partitions:
        if dataset.arbitrated:  # one status row per partition, whichever source (or release) wrote it before
            clauses.append("(dataset = ? AND region = ? AND partition = ?)")
            params += [dataset.name, values.get("region", "-"), partition_label(dataset, values)]
            continue
        clauses.append("(dataset = ? AND region = ? AND partition = ? AND source = ?)")
        params += [dataset.name, values.get("region", "-"), partition_label(dataset, values), values["source"]]
    return " OR ".join(clauses) or "FALSE", params
