"""Frames the dictionary describes, built the same way everywhere: lineage stamps, the stored sort order and
Arrow-backed string columns. Pure: no I/O."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ticklake.dictionary.core import Dataset


def string_array(values: Sequence[str], counts: Sequence[int] | None = None) -> pd.arrays.ArrowStringArray:
    """A pandas "string" column holding values[i] repeated counts[i] times, built in Arrow (no Python loop)."""
    counts = [1] * len(values) if counts is None else counts
    indices = pa.array(np.repeat(np.arange(len(values), dtype=np.int32), counts))
    dictionary = pa.array(list(values), type=pa.large_string())
    return pd.arrays.ArrowStringArray(pa.DictionaryArray.from_arrays(indices, dictionary).cast(pa.large_string()))


def sort_table(table: pa.Table, dataset: Dataset) -> pa.Table:
    """Rows in the dataset's sort order, so the same data always gives the same Parquet bytes."""
    if not dataset.sort_by or table.num_rows < 2:
        return table
    return table.take(pc.sort_indices(table, sort_keys=[(c, "ascending") for c in dataset.sort_by]))


def with_lineage(frame: pd.DataFrame, source: str, run_id: str, now: dt.datetime) -> pd.DataFrame:
    """`frame` with the lineage columns (source, ingested_at, run_id) every stored row carries."""
    n = len(frame)
    stamp = np.full(n, pd.Timestamp(now).tz_convert("UTC").value // 1_000_000, dtype=np.int64)
    return frame.assign(
        source=string_array([source], [n]),
        ingested_at=pd.to_datetime(stamp, unit="ms", utc=True).astype("datetime64[ms, UTC]"),
        run_id=string_array([run_id], [n]),
    )
