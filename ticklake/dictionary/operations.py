"""Operations: what the pipeline stored and when."""

from __future__ import annotations

from ticklake.dictionary.core import Dataset, Field
from ticklake.dictionary.fields import REGION, RUN_ID

LAKE_PARTITIONS = Dataset(
    name="lake_partitions",
    description=(
        "One row per lake partition file: what it holds and which run committed it. Written in the same "
        "transaction as the partition's warehouse rows, so it is both the per-partition status analysts and "
        "engineers read, and the record that lets the next run detect and repair lake/warehouse drift."
    ),
    domain="operations",
    fields=(
        Field("dataset", "string", "Dataset (warehouse table) the partition belongs to"),
        REGION,
        Field("partition", "string", "The partition within the region: a month (YYYY-MM) or '-' for per-region "
                                     "datasets"),
        Field("source", "string", "Source whose file this is (one file per partition and source)"),
        Field("path", "string", "Parquet file, relative to the lake root"),
        Field("rows", "int64", "Rows in the partition file", unit="rows", min_value=0),
        Field("symbols", "int64", "Distinct symbols in the partition", unit="symbols", min_value=0),
        Field("first_date", "date", "Earliest date (the dataset's date column) in the partition", nullable=True),
        Field("last_date", "date", "Latest date (the dataset's date column) in the partition", nullable=True),
        Field("sessions", "int64", "Exchange sessions of the partition's period that have closed", unit="sessions",
              min_value=0),
        Field("sessions_with_rows", "int64", "Sessions that hold at least one row", unit="sessions", min_value=0),
        Field("complete", "bool", "Every session of the partition's period has closed (a past month)"),
        Field("missing_codes", "int64", "Requested codes the source did not answer in the run that wrote it; "
                                        "their previously stored rows were kept", unit="codes", min_value=0),
        Field("file_bytes", "int64", "Size of the Parquet file when committed", unit="bytes", min_value=0),
        Field("file_mtime_ns", "int64", "Modification time of the Parquet file when committed (drift detection)",
              unit="ns since epoch"),
        RUN_ID,
        Field("committed_at", "timestamp", "When the partition was committed to the warehouse (the wall clock, also "
                                            "in a run replayed at another instant)", unit="UTC",
              lineage=True),
    ),
    key=("dataset", "region", "partition", "source"),
    sort_by=("dataset", "region", "partition", "source"),
    in_lake=False,
    example="SELECT region, partition, rows, complete, missing_codes FROM lake_partitions "
            "WHERE dataset = 'klines_daily' ORDER BY region, partition",
)
