"""Warehouse-wide checks: they look at everything stored, not just the partitions a run wrote.

They read the pipeline's own file (`Warehouse.reader()`), the pipeline's truth, not the analysts' snapshot.
"""


from pathlib import Path

import dagster as dg

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


@dg.asset_check(asset=klines_daily, description="Every lake partition file holds exactly the rows the warehouse "
                                              "holds for it, and is the file the warehouse recorded")
def klines_daily_lake_matches_warehouse(storage: StorageResource) -> dg.AssetCheckResult:
    lake = storage.lake()
    files = {lake.relative(path): path for path in lake.partitions(KLINES_DAILY).values()}
    with storage.warehouse().reader() as con:
        in_lake: dict[str, int] = {}
        if files:  # row counts come from Parquet footers, not a scan
            in_lake = {lake.relative(Path(name)): n for name, n in con.execute(
                "SELECT filename, count(*) FROM read_parquet(?, hive_partitioning = false, filename = true) "
                "GROUP BY 1", [[str(p) for p in files.values()]]).fetchall()}
        stored = {f"klines_daily/region={region}/month={month}/data.parquet": n for region, month, n in con.execute(
            "SELECT region, strftime(trade_date, '%Y-%m'), count(*) FROM klines_daily GROUP BY ALL").fetchall()}
        recorded = {path: (size, mtime) for path, size, mtime in con.execute(
            "SELECT path, file_bytes, file_mtime_ns FROM lake_partitions WHERE dataset = 'klines_daily'").fetchall()}
    problems = []
    for path in sorted(set(files) | set(stored)):
        lake_rows, warehouse_rows = in_lake.get(path, 0), stored.get(path, 0)
        if lake_rows != warehouse_rows:
            problems.append(f"{path}: lake {lake_rows} rows vs warehouse {warehouse_rows}")
        elif path in files:
            stat = files[path].stat()
            if recorded.get(path) != (stat.st_size, stat.st_mtime_ns):
                problems.append(f"{path}: not the file the warehouse recorded (the next run reloads it)")
    return dg.AssetCheckResult(
        passed=not problems, severity=dg.AssetCheckSeverity.WARN,
        metadata={"partitions": dg.MetadataValue.int(len(files)),
                  "mismatches": dg.MetadataValue.int(len(problems)),
                  "details": dg.MetadataValue.text("\n".join(problems[:50]) or "none")},
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
