"""Operations: what the pipeline stored and when."""

from __future__ import annotations

from ticklake.dictionary.core import Dataset, Field
from ticklake.dictionary.fields import BY_REGION, LINEAGE, REGION, RUN_ID, SOURCE_PATTERN, SYMBOL

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

SOURCE_FILES = Dataset(
    name="source_files",
    description=(
        "Every file a vendor delivered, as its drop sensor saw it: its name and content hash, what it held and "
        "what became of it. A file seen again with the same hash changes nothing; the same name with new content "
        "is a correction (status `restated`). A refused file says why here and never changes the lake."
    ),
    domain="operations",
    fields=(
        Field("name", "string", "The file's name in its drop (relative to the drop's root)"),
        Field("sha256", "string", "SHA-256 of the file's bytes, as delivered", pattern=r"^[0-9a-f]{64}$"),
        Field("bytes", "int64", "Size of the file as delivered", unit="bytes", min_value=0),
        Field("rows", "int64", "Data rows the file held (0 when it could not be read)", unit="rows", min_value=0),
        Field("regions", "string", "Regions the file's rows belong to, comma-separated", nullable=True),
        Field("first_date", "date", "Earliest session in the file", nullable=True),
        Field("last_date", "date", "Latest session in the file", nullable=True),
        Field("status", "string", "accepted (loaded), restated (a corrected file, loaded), duplicate (seen before, "
                                  "nothing changed) or refused (nothing loaded)"),
        Field("reason", "string", "Why a file was refused, or what a restated one changed; null otherwise",
              nullable=True),
        Field("rows_quarantined", "int64", "Rows of the file that broke a rule and went to `quarantine`",
              unit="rows", min_value=0),
        Field("received_at", "timestamp", "When the sensor first saw this content", unit="UTC", lineage=True),
        *LINEAGE,
    ),
    key=("source", "name", "sha256"),
    sort_by=("source", "received_at", "name"),
    write_mode="snapshot",  # one row per content: seen again, recorded once
    example="SELECT received_at, source, name, status, rows, reason FROM source_files ORDER BY received_at DESC",
)

GOLDEN_EXCEPTIONS = Dataset(
    name="golden_exceptions",
    description=(
        "The exception queue of the golden copy: one row per bar and field where the sources disagree beyond the "
        "tolerance of the sources file, or where one source has a split the other lacks. Meanwhile the golden bar "
        "takes the priority source's value. An override (`ticklake override`) resolves it; a later arbitration "
        "where the sources agree closes it."
    ),
    domain="operations",
    fields=(
        REGION,
        SYMBOL,
        Field("trade_date", "date", "The session of the disputed bar"),
        Field("field", "string", "The disputed field (open, high, low, close, volume) or `split_ratio`"),
        Field("source_values", "string", "Each source's value, JSON ({\"itick\": 12.5, \"quandl\": 12.9}; null: "
                                         "the source has no value)"),
        Field("rel_diff", "float64", "Relative difference between the values, against the priority source's",
              nullable=True, min_value=0),
        Field("tolerance", "float64", "The relative tolerance that was exceeded (from the sources file)",
              nullable=True, min_value=0),
        Field("chosen_source", "string", "The source whose value the golden bar takes while the exception is open"),
        Field("rule", "string", "The rule applied: priority, or override once resolved"),
        Field("status", "string", "open, overridden (a person decided) or closed (the sources agree again)"),
        Field("opened_at", "timestamp", "When the disagreement was first found", unit="UTC"),
        Field("updated_at", "timestamp", "When the status last changed", unit="UTC"),
        Field("override_id", "string", "The override that resolved it", nullable=True),
        *LINEAGE,
    ),
    key=("region", "symbol", "trade_date", "field"),
    lake_keys=BY_REGION,
    sort_by=("region", "trade_date", "symbol", "field"),
    write_mode="snapshot",
    date_column="trade_date",
    example="SELECT region, symbol, trade_date, field, source_values, rel_diff FROM golden_exceptions "
            "WHERE status = 'open' ORDER BY trade_date DESC",
)

GOLDEN_OVERRIDES = Dataset(
    name="golden_overrides",
    description=(
        "Every decision a person made about a golden bar: choose a source or give a value, with a reason and an "
        "author, optionally until an expiry date. Never deleted: a revoked or expired override keeps its row, so "
        "the audit trail is complete. When one expires, the bar is re-derived from the sources."
    ),
    domain="operations",
    fields=(
        Field("override_id", "string", "The override's identity (printed when it is made)"),
        REGION,
        SYMBOL,
        Field("trade_date", "date", "The session of the bar"),
        Field("field", "string", "The field decided (open, high, low, close, volume), or `bar` for all of them"),
        Field("chosen_source", "string", "The source whose value is taken (null when a value is given)",
              nullable=True),
        Field("value", "float64", "The value given (null when a source is chosen)", nullable=True),
        Field("reason", "string", "Why, in the author's words"),
        Field("author", "string", "Who decided"),
        Field("created_at", "timestamp", "When the override was made", unit="UTC"),
        Field("expires_on", "date", "First exchange-local date it no longer applies; null: until revoked",
              nullable=True),
        Field("status", "string", "active, expired or revoked"),
        Field("status_at", "timestamp", "When the status last changed", unit="UTC"),
        *LINEAGE,
    ),
    key=("override_id",),
    lake_keys=BY_REGION,
    sort_by=("region", "created_at", "override_id"),
    write_mode="snapshot",
    date_column="trade_date",
    example="SELECT created_at, author, region, symbol, trade_date, field, chosen_source, value, reason, status "
            "FROM golden_overrides ORDER BY created_at DESC",
)

API_AUDIT = Dataset(
    name="api_audit",
    description=(
        "Every request to the read API (`ticklake serve`), refused ones included: who asked (the tenant and its "
        "key's id, never the key), for what (dataset, fields, symbols, regions, dates, format), and what it got "
        "(status, the rule broken, rows, bytes, latency, cache, the lake snapshot the answer was cut from). Buffered "
        "by the serving process and appended in batches (every TICKLAKE_API_AUDIT_FLUSH_MS, default 5 s), so a row "
        "is visible seconds after its request; a process killed without shutting down loses at most its last batch."
    ),
    domain="operations",
    fields=(
        Field("requested_at", "timestamp", "When the request arrived", unit="UTC"),
        Field("trace_id", "string", "The request's trace id (its X-Trace-Id response header)"),
        Field("tenant", "string", "The tenant whose key was presented; null when there was none or it matched no "
                                  "tenant", nullable=True),
        Field("key_id", "string", "The presented key's id (a prefix of its sha256, as the tenants file's "
                                  "ApiAccess.key_id), never the key; null when no tenant matched", nullable=True),
        Field("method", "string", "HTTP method"),
        Field("path", "string", "The path asked for (at most 200 characters)"),
        Field("dataset", "string", "The dataset asked for (/v1/<dataset>); null for other paths", nullable=True),
        Field("fields", "string", "The fields answered (comma-separated, in order); as asked when refused",
              nullable=True),
        Field("symbols", "string", "The symbols selected (comma-separated); null: every symbol the grant allows",
              nullable=True),
        Field("regions", "string", "The regions read (comma-separated); as asked when refused", nullable=True),
        Field("start", "date", "First date of the answer's window (the grant's when none was asked)", nullable=True),
        Field("end", "date", "Last date of the answer's window (the grant's when none was asked)", nullable=True),
        Field("format", "string", "json, csv or parquet; null when refused before it was read", nullable=True),
        Field("status", "int64", "HTTP status answered (200, 400, 401, 403, 404, 429, 500, 503)"),
        Field("rule", "string", "The rule a refused request broke, as its error answer says; null for a 200",
              nullable=True),
        Field("rows", "int64", "Rows answered", unit="rows", min_value=0, nullable=True),
        Field("bytes", "int64", "Bytes of the answer's body", unit="bytes", min_value=0, nullable=True),
        Field("latency_ms", "float64", "From the request's arrival to its answer being ready", unit="ms",
              min_value=0),
        Field("cache", "string", "hit or miss in the hot-data cache (in-process, or Redis with TICKLAKE_REDIS_URL); "
                                 "null when the request never got that far, off when the cache is off",
              nullable=True),
        Field("snapshot", "int64", "The lake snapshot the answer was cut from", nullable=True),
        Field("source", "string", "What wrote the row: `api`", lineage=True, pattern=SOURCE_PATTERN),
    ),
    key=("trace_id", "requested_at"),
    sort_by=("requested_at",),
    write_mode="snapshot",  # appended only (Lakehouse.append): never replaced
    example="SELECT requested_at, tenant, dataset, fields, status, rule, rows, latency_ms, cache FROM api_audit "
            "ORDER BY requested_at DESC LIMIT 20",
)
