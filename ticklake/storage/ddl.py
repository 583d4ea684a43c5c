"""SQL derived from the data dictionary: tables, comments, physical layout and partition filters.

A dataset's lake keys (region, month) are its *logical* partitions: the unit a run replaces. Its physical DuckLake
partitioning is coarser, region and year, so a symbol's ten years read ten files per region while a date's
cross-section reads one; rows are inserted in (region, year, symbol, date) order so DuckDB's zone maps prune row
groups for both shapes, and `SORTED BY` makes compaction keep that order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ticklake.dictionary import Dataset


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


def partitioning(dataset: Dataset) -> list[str]:
    """DuckLake partition expressions: region, and the year of a month-keyed date column."""
    out = []
    for key in dataset.lake_keys:
        out.append(f"year({quote(key.column)})" if key.grain == "month" else quote(key.column))
    return out


def layout_sql(dataset: Dataset) -> list[str]:
    statements = []
    if parts := partitioning(dataset):
        statements.append(f"ALTER TABLE {quote(dataset.name)} SET PARTITIONED BY ({', '.join(parts)})")
    if dataset.sort_by:
        statements.append(f"ALTER TABLE {quote(dataset.name)} SET SORTED BY "
                          f"({', '.join(quote(c) for c in dataset.sort_by)})")
    return statements


def cluster_order(dataset: Dataset) -> str:
    """Physical row order of an insert: partition columns first (DuckLake then writes one file per partition
    instead of one per open writer), then the dataset's sort key."""
    columns = [quote(c) for c in dataset.sort_by]
    if "trade_date" in dataset.sort_by:
        columns.insert(dataset.sort_by.index("trade_date") - 1, "date_trunc('year', \"trade_date\")")
    return ", ".join(columns) or "ALL"


def partition_filter(dataset: Dataset, partitions: Sequence[Mapping[str, str]]) -> tuple[str, list]:
    """A WHERE clause selecting exactly the rows of the given logical partitions (by region, month, ...), and only
    the given source's rows where the values name one: a source's write never deletes another source's rows."""
    clauses, params = [], []
    for values in partitions:
        terms = []
        if "source" in values:
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
        clauses.append("(dataset = ? AND region = ? AND partition = ? AND source = ?)")
        params += [dataset.name, values["region"], partition_label(dataset, values), values["source"]]
    return " OR ".join(clauses) or "FALSE", params
