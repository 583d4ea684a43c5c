"""Operations: what the pipeline stored and when."""

from __future__ import annotations

from ticklake.dictionary.core import Dataset, Field
from ticklake.dictionary.fields import BY_REGION, LINEAGE, REGION, RUN_ID, SYMBOL

LAKE_PARTITIONS = Dataset(
    name="lake_partitions",
    description=(
        "One row per logical lake partition (one source's rows of a region, or of a region and month): what it "
        "holds and which run committed it. Committed in the same transaction as the partition's rows, so it "
        "never describes rows that are not visible, nor misses rows that are."
    ),
    domain="operations",
    fields=(
        Field("dataset", "string", "Dataset (lake table) the partition belongs to"),
        REGION,
        Field("partition", "string", "The partition within the region: a month (YYYY-MM) or '-' for per-region "
                                     "datasets"),
        Field("source", "string", "Source whose rows these are (each source's rows are replaced on their own)"),
        Field("path", "string", "The partition's address: <dataset>/region=<R>[/month=<M>]/<source> (which Parquet "
                                "files hold its rows is DuckLake's business: ducklake_list_files)"),
        Field("rows", "int64", "Rows in the partition", unit="rows", min_value=0),
        Field("symbols", "int64", "Distinct symbols in the partition", unit="symbols", min_value=0),
        Field("first_date", "date", "Earliest date (the dataset's date column) in the partition", nullable=True),
        Field("last_date", "date", "Latest date (the dataset's date column) in the partition", nullable=True),
        Field("sessions", "int64", "Exchange sessions of the partition's period that have closed", unit="sessions",
              min_value=0),
        Field("sessions_with_rows", "int64", "Sessions that hold at least one row", unit="sessions", min_value=0),
        Field("complete", "bool", "Every session of the partition's period has closed (a past month)"),
        Field("missing_codes", "int64", "Requested codes the source did not answer in the run that wrote it; "
                                        "their previously stored rows were kept", unit="codes", min_value=0),
        Field("file_bytes", "int64", "Always null since the lake is a DuckLake (one partition is no longer one "
                                     "file); kept so scripts that select it still run", unit="bytes", min_value=0,
              nullable=True),
        Field("file_mtime_ns", "int64", "Always null since the lake is a DuckLake (DuckLake's own snapshots replace "
                                        "the drift detection it served); kept for scripts", unit="ns since epoch",
              nullable=True),
        RUN_ID,
        Field("committed_at", "timestamp", "When the partition was committed to the lake (the wall clock, also "
                                            "in a run replayed at another instant)", unit="UTC",
              lineage=True),
    ),
    key=("dataset", "region", "partition", "source"),
    sort_by=("dataset", "region", "partition", "source"),
    in_lake=False,
    example="SELECT region, partition, rows, complete, missing_codes FROM lake_partitions "
            "WHERE dataset = 'klines_daily' ORDER BY region, partition",
)

RECONCILIATION_LOG = Dataset(
    name="reconciliation_log",
    description=(
        "The restatement ledger: one row per field the source changed after it was stored, found by the T+1 "
        "reconciliation sensors re-fetching each region's last sessions, and every bar that arrived late. A "
        "correction is recorded once (its identity is the key), and the sensor requests the re-materialization "
        "of exactly the partitions it touches; the superseded values stay readable in the dataset's history."
    ),
    domain="operations",
    fields=(
        Field("dataset", "string", "Dataset the difference is in (klines_daily)"),
        REGION,
        SYMBOL,
        Field("date", "date", "The row's date (trade_date for klines)"),
        Field("field", "string", "The field that differs (close, volume, ...), or `bar` for a bar stored nowhere yet "
                                 "(a late bar)"),
        Field("stored_value", "float64", "The value stored when the difference was found (null: no bar stored)",
              nullable=True),
        Field("source_value", "float64", "The value the source answers now (null for a `bar` row)", nullable=True),
        Field("partition", "string", "The month and region of the row's lake partition (2024-06|US); for "
                                     "klines_daily also the Dagster partition a correction re-materializes "
                                     "(fundamentals_daily's Dagster partitions are regions)"),
        Field("detected_at", "timestamp", "When the reconciliation first found it", unit="UTC", lineage=True),
        *LINEAGE,
    ),
    key=("dataset", "region", "symbol", "date", "field", "source_value"),
    lake_keys=BY_REGION,
    sort_by=("region", "dataset", "date", "symbol", "field"),
    write_mode="snapshot",  # upsert by the correction's identity: found again, recorded once
    date_column="date",
    example="SELECT detected_at, region, symbol, date, field, stored_value, source_value FROM reconciliation_log "
            "ORDER BY detected_at DESC",
)

QUARANTINE = Dataset(
    name="quarantine",
    description=(
        "Rows a source sent that broke a hard rule of the data dictionary (impossible OHLC, a negative volume, a "
        "duplicate key with conflicting values, a date outside the run's window or off the calendar, a bad code): "
        "kept here with the rule, the reason and the raw values, never written to their dataset. The other rows "
        "of the page are written; the step fails instead when the rejected share exceeds "
        "TICKLAKE_MAX_REJECTED_SHARE. A quarantined row's code keeps what is stored for that date."
    ),
    domain="operations",
    fields=(
        Field("dataset", "string", "Dataset the row was meant for"),
        REGION,
        Field("code", "string", "The row's instrument code as sent (not held to the symbol rule: it is evidence)",
              nullable=True),
        Field("date", "date", "The row's date (trade_date for klines)", nullable=True),
        Field("rule", "string", "The dictionary rule it broke (`low <= min(open, close)`, `volume >= 0`, ...)"),
        Field("reason", "string", "What was wrong, in words, with the offending values"),
        Field("raw", "string", "The row's values as received, JSON"),
        *LINEAGE,
    ),
    key=("dataset", "region", "code", "date", "rule", "raw"),
    lake_keys=BY_REGION,
    sort_by=("region", "dataset", "date", "code", "rule"),
    write_mode="snapshot",  # the same bad row sent again is recorded once
    date_column="date",
    example="SELECT ingested_at, dataset, region, code, date, rule, reason FROM quarantine ORDER BY ingested_at DESC",
)
