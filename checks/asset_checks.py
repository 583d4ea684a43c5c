"""Lake-wide checks: they look at everything stored, not just the partitions a run wrote.

They read the pipeline's own file (`Lakehouse.reader()`), the pipeline's truth, not the analysts' snapshot. The
four checks share one step (a multi-asset check that can run any subset): one process-local connection and one
step's bookkeeping instead of four. They run in the `warehouse_checks` job and its daily schedule, not in every
nightly run; the checks a klines run needs on what it wrote run inside that run's own step.
"""

from collections.abc import Callable

import dagster as dg
import duckdb

from assets.klines import klines_daily
from assets.listings import SECURITIES_KEY
from resources.storage import StorageResource
from ticklake.quality import lake_checks

MAX_LISTED = 50


def _unique_key(con: duckdb.DuckDBPyConnection) -> dg.AssetCheckResult:
    dupes = lake_checks.duplicate_keys(con)
    return dg.AssetCheckResult(
        asset_key=klines_daily.key, check_name="klines_daily_unique_key", passed=not dupes,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"duplicate_keys": dg.MetadataValue.int(len(dupes)),
                  "examples": dg.MetadataValue.text("\n".join(f"{r} {s} {d}: {n} rows" for r, s, d, n in dupes)
                                                    or "none")},
    )


def _on_calendar(con: duckdb.DuckDBPyConnection) -> dg.AssetCheckResult:
    off = lake_checks.off_calendar(con)
    return dg.AssetCheckResult(
        asset_key=klines_daily.key, check_name="klines_daily_on_calendar", passed=not off,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"dates_off_calendar": dg.MetadataValue.int(len(off)),
                  "examples": dg.MetadataValue.text(", ".join(f"{r} {d} ({n} rows)" for r, d, n in off[:20])
                                                    or "none")},
    )


def _lake_matches_warehouse(con: duckdb.DuckDBPyConnection) -> dg.AssetCheckResult:
    """`lake_partitions` (what each commit recorded) against the rows the lake holds, per month, region and source.
    They commit in one transaction, so a difference means someone wrote around the pipeline."""
    found = lake_checks.partition_rows(con)
    return dg.AssetCheckResult(
        asset_key=klines_daily.key, check_name="klines_daily_lake_matches_warehouse", passed=not found.mismatches,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"partitions": dg.MetadataValue.int(found.partitions),
                  "mismatches": dg.MetadataValue.int(len(found.mismatches)),
                  "details": dg.MetadataValue.text("\n".join(found.mismatches[:MAX_LISTED]) or "none")},
    )


def _inside_listing_window(con: duckdb.DuckDBPyConnection) -> dg.AssetCheckResult:
    """Bars before a symbol's listing date or on/after its delisting date (latest known state of the security
    master): a stray row, or a listing date the source has wrong. A warning listing them; nothing is removed."""
    outside, listed = lake_checks.outside_listing_window(con)
    return dg.AssetCheckResult(
        asset_key=klines_daily.key, check_name="klines_daily_inside_listing_window", passed=not outside,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"symbols_outside": dg.MetadataValue.int(len(outside)),
                  "symbols_in_master": dg.MetadataValue.int(listed),
                  "details": dg.MetadataValue.text("\n".join(
                      f"{r} {s}: {n} bar(s) {lo}..{hi} outside listed {ld or '-'} .. delisted {dd or '-'}"
                      for r, s, n, lo, hi, ld, dd in outside[:MAX_LISTED]) or "none")},
    )


def _securities_not_empty(con: duckdb.DuckDBPyConnection) -> dg.AssetCheckResult:
    counts = lake_checks.symbols_by_region(con)
    return dg.AssetCheckResult(
        asset_key=SECURITIES_KEY, check_name="securities_not_empty", passed=bool(counts) and all(counts.values()),
        severity=dg.AssetCheckSeverity.ERROR, metadata={"symbols_by_region": dg.MetadataValue.json(counts)},
    )


_CHECKS: dict[dg.AssetCheckKey, tuple[dg.AssetCheckSpec, Callable]] = {
    spec.key: (spec, run) for spec, run in (
        (dg.AssetCheckSpec("klines_daily_unique_key", asset=klines_daily,
                           description="No duplicate (region, symbol, trade_date) rows"), _unique_key),
        (dg.AssetCheckSpec("klines_daily_on_calendar", asset=klines_daily,
                           description="Every stored bar falls on a session of its exchange calendar"), _on_calendar),
        (dg.AssetCheckSpec("klines_daily_lake_matches_warehouse", asset=klines_daily,
                           description="lake_partitions records exactly the rows the lake holds, per month, region "
                                       "and source (they commit together: a difference means a write around the "
                                       "pipeline)"), _lake_matches_warehouse),
        (dg.AssetCheckSpec("klines_daily_inside_listing_window", asset=klines_daily,
                           description="Every stored bar lies inside its symbol's listing window (listing date to "
                                       "delisting date, from security_master); a warning listing the others"),
         _inside_listing_window),
        (dg.AssetCheckSpec("securities_not_empty", asset=SECURITIES_KEY,
                           description="The security master is not empty for any region it covers"),
         _securities_not_empty),
    )
}


@dg.multi_asset_check(specs=[spec for spec, _ in _CHECKS.values()], can_subset=True, name="warehouse_wide_checks",
                      description="Checks over everything the lake stores")
def warehouse_wide_checks(context: dg.AssetCheckExecutionContext, storage: StorageResource):
    lake = storage.lakehouse()
    with lake.reader() as con:
        for key in sorted(context.selected_asset_check_keys, key=lambda k: k.name):
            yield _CHECKS[key][1](con)


ASSET_CHECKS = [warehouse_wide_checks]
CHECK_KEYS = list(_CHECKS)
