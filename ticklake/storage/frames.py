"""Between the dictionary's pandas frames and its Arrow tables (what the lake stores), with the same types both ways."""

from __future__ import annotations

import warnings

import duckdb
import pandas as pd
import pyarrow as pa

from ticklake.dictionary import Dataset


def to_arrow(dataset: Dataset, frame: pd.DataFrame) -> pa.Table:
    ordered = frame.sort_values(list(dataset.sort_by), kind="stable") if dataset.sort_by else frame
    return pa.Table.from_pandas(ordered[dataset.columns], schema=dataset.arrow_schema, preserve_index=False)


def from_arrow(dataset: Dataset, table: pa.Table) -> pd.DataFrame:
    frame = table.to_pandas(types_mapper={pa.string(): pd.StringDtype()}.get, date_as_object=False)
    for f in dataset.fields:
        if f.type == "date":
            frame[f.name] = frame[f.name].astype("datetime64[ms]")
        elif f.type == "bool" and f.nullable:
            frame[f.name] = frame[f.name].astype("boolean")
    return frame


def fetch_frame(result: duckdb.DuckDBPyConnection | duckdb.DuckDBPyRelation) -> pd.DataFrame:
    """`result.df()`, without the warning DuckDB 1.5's own conversion of TIMESTAMPTZ columns raises under pandas 3
    (it calls `DataFrame.drop(inplace=True)`, deprecated by PDEP-8): not ours to fix, and the frame is the same."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The inplace keyword in DataFrame.drop is deprecated",
                                category=pd.errors.Pandas4Warning)
        return result.df()
