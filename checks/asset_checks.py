"""Warehouse-wide checks: they look at everything stored, not just the partitions a run wrote.

They read the pipeline's own file (`Warehouse.reader()`), the pipeline's truth, not the analysts' snapshot.
"""


import dagster as dg
import pandas as pd

from assets.klines import klines_daily
from assets.securities import securities
from resources.storage import StorageResource
from ticklake import markets
from ticklake.dictionary import KLINES_DAILY


@dg.asset_check(asset=klines_daily, blocking=False, description="No duplicate (region, symbol, trade_date) rows")
def klines_daily_unique_key(storage: StorageResource) -> dg.AssetCheckResult:
    with storage.warehouse().reader() as con:
        dupes = con.execute(
            "SELECT region, symbol, trade_date, count(*) AS n FROM klines_daily GROUP BY ALL HAVING n > 1 LIMIT 20"
        ).fetchdf()
    return dg.AssetCheckResult(
        passed=dupes.empty, severity=dg.AssetCheckSeverity.ERROR,
        metadata={"duplicate_keys": dg.MetadataValue.int(len(dupes)),
                  "examples": dg.MetadataValue.md(dupes.to_markdown(index=False) if len(dupes) else "none")},
    )


@dg.asset_check(asset=klines_daily, description="Every stored bar falls on a session of its exchange calendar")
def klines_daily_on_calendar(storage: StorageResource) -> dg.AssetCheckResult:
    with storage.warehouse().reader() as con:
        dates = con.execute("SELECT region, trade_date, count(*) FROM klines_daily GROUP BY ALL").fetchall()
    off = [(region, day, n) for region, day, n in dates if not markets.is_session(region, day)]
    return dg.AssetCheckResult(
        passed=not off, severity=dg.AssetCheckSeverity.ERROR,
        metadata={"dates_off_calendar": dg.MetadataValue.int(len(off)),
                  "examples": dg.MetadataValue.text(", ".join(f"{r} {d} ({n} rows)" for r, d, n in off[:20])
                                                    or "none")},
    )


@dg.asset_check(asset=klines_daily, description="Lake and warehouse hold the same number of bars per region")
def klines_daily_lake_matches_warehouse(storage: StorageResource) -> dg.AssetCheckResult:
    lake = storage.lake()
    with storage.warehouse().reader() as con:
        warehouse = dict(con.execute("SELECT region, count(*) FROM klines_daily GROUP BY 1").fetchall())
        in_lake = {}
        if next(lake.dataset_dir(KLINES_DAILY).glob("*/*/data.parquet"), None) is not None:
            in_lake = dict(con.execute(  # row counts come from Parquet footers, not a scan
                "SELECT region, count(*) FROM read_parquet(?, hive_partitioning = false) GROUP BY 1",
                [lake.glob(KLINES_DAILY)],
            ).fetchall())
    regions = sorted(set(warehouse) | set(in_lake))
    table = pd.DataFrame({"region": regions, "lake": [in_lake.get(r, 0) for r in regions],
                          "warehouse": [warehouse.get(r, 0) for r in regions]})
    return dg.AssetCheckResult(
        passed=bool((table["lake"] == table["warehouse"]).all()), severity=dg.AssetCheckSeverity.WARN,
        metadata={"counts": dg.MetadataValue.md(table.to_markdown(index=False) if len(table) else "empty")},
    )


@dg.asset_check(asset=securities, description="The security master is not empty for any region it covers")
def securities_not_empty(storage: StorageResource) -> dg.AssetCheckResult:
    with storage.warehouse().reader() as con:
        counts = dict(con.execute("SELECT region, count(*) FROM securities GROUP BY 1").fetchall())
    return dg.AssetCheckResult(
        passed=bool(counts) and all(counts.values()), severity=dg.AssetCheckSeverity.ERROR,
        metadata={"symbols_by_region": dg.MetadataValue.json(counts)},
    )


ASSET_CHECKS = [klines_daily_unique_key, klines_daily_on_calendar, klines_daily_lake_matches_warehouse,
                securities_not_empty]
