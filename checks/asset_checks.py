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
from ticklake import markets
from ticklake.storage import Lakehouse

MAX_LISTED = 50


def _unique_key(con: duckdb.DuckDBPyConnection, lake: Lakehouse) -> dg.AssetCheckResult:
    dupes = con.execute(
        "SELECT region, symbol, trade_date, count(*) AS n FROM klines_daily GROUP BY ALL HAVING n > 1 LIMIT 20"
    ).fetchall()
    return dg.AssetCheckResult(
        asset_key=klines_daily.key, check_name="klines_daily_unique_key", passed=not dupes,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"duplicate_keys": dg.MetadataValue.int(len(dupes)),
                  "examples": dg.MetadataValue.text("\n".join(f"{r} {s} {d}: {n} rows" for r, s, d, n in dupes)
                                                    or "none")},
    )


def _on_calendar(con: duckdb.DuckDBPyConnection, lake: Lakehouse) -> dg.AssetCheckResult:
    dates: dict[str, dict] = {}
    for region, day, n in con.execute("SELECT region, trade_date, count(*) FROM klines_daily GROUP BY ALL").fetchall():
        dates.setdefault(region, {})[day] = n
    off = []
    for region, counts in sorted(dates.items()):
        sessions = set(markets.sessions(region, min(counts), max(counts)))
        off += [(region, day, n) for day, n in sorted(counts.items()) if day not in sessions]
    return dg.AssetCheckResult(
        asset_key=klines_daily.key, check_name="klines_daily_on_calendar", passed=not off,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"dates_off_calendar": dg.MetadataValue.int(len(off)),
                  "examples": dg.MetadataValue.text(", ".join(f"{r} {d} ({n} rows)" for r, d, n in off[:20])
                                                    or "none")},
    )


def _lake_matches_warehouse(con: duckdb.DuckDBPyConnection, lake: Lakehouse) -> dg.AssetCheckResult:
    """`lake_partitions` (what each commit recorded) against the rows the lake holds, per month, region and source.
    They commit in one transaction, so a difference means someone wrote around the pipeline."""
    stored = {f"{region}/{month}/{source}": n for region, month, source, n in con.execute(
        "SELECT region, strftime(trade_date, '%Y-%m'), source, count(*) FROM klines_daily GROUP BY ALL").fetchall()}
    recorded = {f"{region}/{month}/{source}": n for region, month, source, n in con.execute(
        "SELECT region, partition, source, rows FROM lake_partitions WHERE dataset = 'klines_daily'").fetchall()}
    problems = [f"{name}: {stored.get(name, 0)} rows stored, {recorded.get(name, 0)} recorded in lake_partitions"
                for name in sorted(set(stored) | set(recorded)) if stored.get(name, 0) != recorded.get(name, 0)]
    return dg.AssetCheckResult(
        asset_key=klines_daily.key, check_name="klines_daily_lake_matches_warehouse", passed=not problems,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"partitions": dg.MetadataValue.int(len(recorded)),
                  "mismatches": dg.MetadataValue.int(len(problems)),
                  "details": dg.MetadataValue.text("\n".join(problems[:MAX_LISTED]) or "none")},
    )


def _inside_listing_window(con: duckdb.DuckDBPyConnection, lake: Lakehouse) -> dg.AssetCheckResult:
    """Bars before a symbol's listing date or on/after its delisting date (latest known state of the security
    master): a stray row, or a listing date the source has wrong. A warning listing them; nothing is removed."""
    outside = con.execute(
        "WITH latest AS (SELECT region, symbol, listing_date, delisting_date FROM security_master "
        "  QUALIFY row_number() OVER (PARTITION BY region, symbol ORDER BY valid_from DESC, ingested_at DESC) = 1) "
        "SELECT k.region, k.symbol, count(*), min(k.trade_date), max(k.trade_date), any_value(l.listing_date), "
        "  any_value(l.delisting_date) "
        "FROM klines_daily k JOIN latest l USING (region, symbol) "
        "WHERE k.trade_date < l.listing_date OR k.trade_date >= l.delisting_date "
        "GROUP BY ALL ORDER BY 1, 2").fetchall()
    listed = con.execute("SELECT count(DISTINCT (region, symbol)) FROM security_master").fetchall()[0][0]
    return dg.AssetCheckResult(
        asset_key=klines_daily.key, check_name="klines_daily_inside_listing_window", passed=not outside,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"symbols_outside": dg.MetadataValue.int(len(outside)),
                  "symbols_in_master": dg.MetadataValue.int(listed),
                  "details": dg.MetadataValue.text("\n".join(
                      f"{r} {s}: {n} bar(s) {lo}..{hi} outside listed {ld or '-'} .. delisted {dd or '-'}"
                      for r, s, n, lo, hi, ld, dd in outside[:MAX_LISTED]) or "none")},
    )


def _securities_not_empty(con: duckdb.DuckDBPyConnection, lake: Lakehouse) -> dg.AssetCheckResult:
    counts = dict(con.execute("SELECT region, count(*) FROM securities GROUP BY 1").fetchall())
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
            yield _CHECKS[key][1](con, lake)


ASSET_CHECKS = [warehouse_wide_checks]
CHECK_KEYS = list(_CHECKS)
