"""The Parquet lake: one file per partition in hive layout, replaced atomically.

    <home>/lake/klines_daily/region=US/date=2024-01-02/data.parquet
    <home>/lake/securities/region=US/data.parquet

A partition is written to a temporary name in its own folder, fsynced, then `os.replace`d over
`data.parquet`, so readers see either the old or the new file, never a torn one, and a run that dies
leaves the previous version in place. Rows are sorted by the dataset's sort key and written with fixed
settings, so the same data always gives the same bytes.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ticklake.dictionary import Dataset

FILE_NAME = "data.parquet"
HIVE_KEYS = {"trade_date": "date"}  # column -> folder key where they differ
_TMP_PREFIX = ".tmp-"


def _format(value: object) -> str:
    if isinstance(value, pd.Timestamp):
        value = value.date()
    text = value.isoformat() if isinstance(value, dt.date) else str(value)
    if not text or "/" in text or text in {".", ".."} or "\x00" in text:
        raise ValueError(f"invalid partition value {value!r}")
    return text


class Lake:
    def __init__(self, root: Path):
        self.root = Path(root)

    def dataset_dir(self, dataset: Dataset) -> Path:
        return self.root / dataset.name

    def partition_path(self, dataset: Dataset, **values: object) -> Path:
        if set(values) != set(dataset.partition_columns):
            raise ValueError(f"{dataset.name} partitions by {dataset.partition_columns}, got {tuple(values)}")
        path = self.dataset_dir(dataset)
        for column in dataset.partition_columns:
            path /= f"{HIVE_KEYS.get(column, column)}={_format(values[column])}"
        return path / FILE_NAME

    def glob(self, dataset: Dataset) -> str:
        """A DuckDB/Arrow glob over every partition file of `dataset`."""
        depth = "/".join("*" for _ in dataset.partition_columns)
        return str(self.dataset_dir(dataset) / depth / FILE_NAME)

    @staticmethod
    def to_arrow(dataset: Dataset, frame: pd.DataFrame) -> pa.Table:
        ordered = frame.sort_values(list(dataset.sort_by), kind="stable") if dataset.sort_by else frame
        return pa.Table.from_pandas(ordered[dataset.columns], schema=dataset.arrow_schema, preserve_index=False)

    def write(self, dataset: Dataset, table: pa.Table, **values: object) -> Path:
        """Atomically replace one partition with `table` (already in the dataset's Arrow schema)."""
        if table.schema.remove_metadata() != dataset.arrow_schema.remove_metadata():
            raise TypeError(f"{dataset.name}: table schema does not match the data dictionary")
        target = self.partition_path(dataset, **values)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{_TMP_PREFIX}{uuid.uuid4().hex}")
        try:
            with open(tmp, "wb") as sink:
                pq.write_table(table, sink, compression="zstd", row_group_size=1_000_000,
                               write_statistics=True, use_dictionary=True)
                sink.flush()
                os.fsync(sink.fileno())
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        _fsync_dir(target.parent)
        return target

    def read(self, dataset: Dataset, **values: object) -> pd.DataFrame | None:
        path = self.partition_path(dataset, **values)
        if not path.exists():
            return None
        return self.from_arrow(dataset, pq.read_table(path, schema=dataset.arrow_schema))

    @staticmethod
    def from_arrow(dataset: Dataset, table: pa.Table) -> pd.DataFrame:
        frame = table.to_pandas(types_mapper={pa.string(): pd.StringDtype()}.get, date_as_object=False)
        for f in dataset.fields:
            if f.type == "date":
                frame[f.name] = frame[f.name].astype("datetime64[ms]")
        return frame

    def delete(self, dataset: Dataset, **values: object) -> bool:
        path = self.partition_path(dataset, **values)
        if path.exists():
            path.unlink()
            return True
        return False


def _fsync_dir(path: Path) -> None:
    # Makes the rename itself durable on POSIX; a no-op where directories cannot be opened.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
