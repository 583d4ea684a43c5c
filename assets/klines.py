"""`klines_daily`: raw daily OHLCV per trading date x region, fetched with the fewest calls the API allows."""


import datetime as dt
from pathlib import Path

import dagster as dg

from assets.metadata import fetch_metadata, preview, snapshot_metadata, table_schema
from assets.partitions import REGION, date_region_partitions, dates_by_region
from assets.securities import securities
from resources.itick import ITickResource
from resources.storage import StorageResource
from ticklake import markets
from ticklake.dictionary import KLINES_DAILY
from ticklake.ingest import DIFF_KEYS, IngestResult, ingest_daily_bars, universe
from ticklake.sources import FetchReport
from ticklake.warehouse import Publication, Warehouse

ROWS_CHECK = "stored_rows_match_lake"
COVERAGE_CHECK = "every_session_has_bars"


@dg.asset(
    partitions_def=date_region_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[dg.AssetDep(securities, partition_mapping=dg.MultiToSingleDimensionPartitionMapping(REGION))],
    group_name="market_data",
    kinds={"parquet", "duckdb"},
    description=KLINES_DAILY.description,
    metadata={"dagster/column_schema": table_schema(KLINES_DAILY), "dagster/table_name": "warehouse.klines_daily"},
    check_specs=[
        dg.AssetCheckSpec(ROWS_CHECK, asset="klines_daily", blocking=True,
                          description="Warehouse rows for the run's partitions equal the rows written to the lake"),
        dg.AssetCheckSpec(COVERAGE_CHECK, asset="klines_daily",
                          description="Every session in the run got bars from the source (a silent source warns)"),
    ],
)
def klines_daily(context: dg.AssetExecutionContext, itick: ITickResource, storage: StorageResource):
    lake, warehouse = storage.lake(), storage.warehouse()
    source = itick.source(tags={"run_id": context.run_id, "asset": "klines_daily"})
    results: list[IngestResult] = []
    for region, dates in dates_by_region(context.partition_keys).items():
        results.append(ingest_daily_bars(
            source, lake, warehouse, region=region, dates=dates, codes=universe(lake, region),
            run_id=context.run_id, now=dt.datetime.now(dt.UTC), log=context.log.info,
        ))
    published = warehouse.publish()  # analysts see the whole step at once, never a region or page of it
    yield _materialization(results, source.spent(), source_name=source.name,
                           lake_dir=lake.dataset_dir(KLINES_DAILY), published=published)
    yield _rows_check(results, warehouse)
    yield _coverage_check(results)


def _materialization(results: list[IngestResult], fetch: FetchReport, source_name: str,
                     lake_dir: Path, published: Publication) -> dg.MaterializeResult:
    rows = sum(r.rows for r in results)
    diff = {k: sum(r.diff[k] for r in results) for k in DIFF_KEYS}
    sessions = sorted({d for r in results for d in r.sessions})
    metadata = {
        "dagster/row_count": dg.MetadataValue.int(rows),
        "symbols": dg.MetadataValue.int(sum(r.symbols for r in results)),
        "sessions": dg.MetadataValue.int(len(sessions)),
        "first_session": dg.MetadataValue.text(sessions[0].isoformat() if sessions else "-"),
        "last_session": dg.MetadataValue.text(sessions[-1].isoformat() if sessions else "-"),
        "non_session_dates": dg.MetadataValue.int(sum(len(r.non_sessions) for r in results)),
        "sessions_not_closed": dg.MetadataValue.int(sum(len(r.not_closed) for r in results)),
        "lake_path": dg.MetadataValue.path(str(lake_dir)),
        "is_session": dg.MetadataValue.bool(bool(sessions)),
        **{f"rows_{k}": dg.MetadataValue.int(v) for k, v in diff.items()},
        "source": dg.MetadataValue.text(source_name),
        "preview": preview(next((r.preview for r in results if r.preview is not None), None)),
        **fetch_metadata(fetch),
        **snapshot_metadata(published),
    }
    return dg.MaterializeResult(metadata=metadata)


def _rows_check(results: list[IngestResult], warehouse: Warehouse) -> dg.AssetCheckResult:
    mismatches = []
    with warehouse.reader() as con:  # the pipeline's own file: what this run stored
        for r in results:
            if not r.sessions:
                continue
            stored = dict(con.execute(
                "SELECT trade_date, count(*) FROM klines_daily WHERE region = ? AND trade_date IN "
                "(SELECT UNNEST(?::DATE[])) GROUP BY 1", [r.region, r.sessions]).fetchall())
            mismatches += [f"{r.region} {d}: lake {n} vs warehouse {stored.get(d, 0)}"
                           for d, n in r.rows_by_date.items() if stored.get(d, 0) != n]
    return dg.AssetCheckResult(
        check_name=ROWS_CHECK, passed=not mismatches, severity=dg.AssetCheckSeverity.ERROR,
        metadata={"mismatches": dg.MetadataValue.int(len(mismatches)),
                  "details": dg.MetadataValue.text("\n".join(mismatches[:50]) or "none")},
    )


def _coverage_check(results: list[IngestResult]) -> dg.AssetCheckResult:
    empty = [f"{r.region} {d} ({markets.market(r.region).calendar})" for r in results
             for d, n in r.rows_by_date.items() if n == 0]
    empty += [f"{r.region} {d}: session not closed yet, nothing fetched" for r in results for d in r.not_closed]
    return dg.AssetCheckResult(
        check_name=COVERAGE_CHECK, passed=not empty, severity=dg.AssetCheckSeverity.WARN,
        metadata={"sessions_without_bars": dg.MetadataValue.int(len(empty)),
                  "details": dg.MetadataValue.text("\n".join(empty[:50]) or "none")},
    )
