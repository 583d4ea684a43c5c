"""`fundamentals_daily` (within a call budget), `fx_daily` and the derived `valuation_daily`, per region.

They run in their own job (`fundamentals_refresh`), never in `nightly_refresh`: klines never wait on
fundamentals. The budget (TICKLAKE_FUNDAMENTALS_BUDGET calls per region and run) bounds how long a run holds
the shared quota; the client's limiter keeps every call within the plan.
"""


import dagster as dg

from assets.clock import RunClock
from assets.factory import run_context
from assets.metadata import dataset_asset, fetch_metadata, preview, snapshot_metadata
from assets.partitions import region_partitions
from resources.itick import ITickResource
from resources.storage import StorageResource
from ticklake import settings
from ticklake.datasets.fundamentals import (
    MARKET_CAP_TOLERANCE,
    derive_valuation,
    listed_codes,
    market_cap_misses,
    refresh_fundamentals,
    refresh_fx,
    stored_valuation,
)
from ticklake.dictionary.analytics import VALUATION_DAILY
from ticklake.dictionary.fundamentals import FUNDAMENTALS_DAILY, FX_DAILY
from ticklake.sources.quota import calls_per_minute
from ticklake.storage.ddl import partition_address

MARKET_CAP_CHECK = "market_cap_matches_close_x_shares"
MAX_LISTED = 50


@dg.asset(
    partitions_def=region_partitions,
    deps=["securities"],
    **dataset_asset(FUNDAMENTALS_DAILY),
    check_specs=[dg.AssetCheckSpec(
        MARKET_CAP_CHECK, asset="fundamentals_daily",
        description=f"Each snapshot this run stored: market cap = close x shares outstanding within "
                    f"{MARKET_CAP_TOLERANCE:.0%}, the close being klines_daily's on as_of or the last bar before it; "
                    "misses are listed (a warning)")],
)
def fundamentals_daily(context: dg.AssetExecutionContext, config: RunClock, itick: ITickResource,
                       storage: StorageResource) -> dg.MaterializeResult:
    region = context.partition_key
    ctx = run_context(context, config, storage, itick, asset="fundamentals_daily")
    source, lake = ctx.source, ctx.lake
    codes = listed_codes(lake, region)
    if not codes:
        raise RuntimeError(f"{region}: the security master lists no symbol; materialize `securities` first")
    budget = settings.fundamentals_budget(calls_per_minute(itick.plan) * 60 / itick.window_seconds)
    result = refresh_fundamentals(ctx, region, codes=codes, budget=budget)
    with lake.reader() as con:
        check = market_cap_misses(con, region, result.as_of, result.as_of)
    misses = [f"{r.symbol} {r.as_of:%Y-%m-%d}: market cap {r.market_cap:,.0f} vs close {r.close} x "
              f"{r.shares_outstanding:,.0f} shares ({r.deviation:+.2%})" for r in check.misses.itertuples()]
    after = result.after
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(result.rows)),
            "as_of": dg.MetadataValue.text(result.as_of.isoformat()),
            "budget": dg.MetadataValue.int(result.plan.budget),
            "refreshed": dg.MetadataValue.int(len(result.plan.refresh)),
            "skipped": dg.MetadataValue.int(len(result.plan.skipped)),
            "already_fresh": dg.MetadataValue.int(len(result.plan.fresh)),
            "unknown_codes": dg.MetadataValue.int(len(result.unknown)),
            "never_fetched": dg.MetadataValue.int(after.never_fetched),
            "oldest_as_of": dg.MetadataValue.text(after.oldest_as_of.isoformat() if after.oldest_as_of else "none"),
            "staleness_days": dg.MetadataValue.int(after.days if after.days is not None else -1),
            "refreshed_codes": dg.MetadataValue.text(", ".join(result.plan.refresh[:MAX_LISTED]) or "none"),
            "skipped_codes": dg.MetadataValue.text(", ".join(result.plan.skipped[:MAX_LISTED]) or "none"),
            **{f"rows_{k}": dg.MetadataValue.int(v) for k, v in result.diff.items()},
            **fetch_metadata(result.fetch),
            "source": dg.MetadataValue.text(source.name),
            "lake_path": dg.MetadataValue.text(partition_address(
                FUNDAMENTALS_DAILY, {"region": region, "month": f"{result.as_of:%Y-%m}", "source": source.name})),
            "preview": preview(result.rows),
            **snapshot_metadata(lake),
        },
        check_results=[dg.AssetCheckResult(
            check_name=MARKET_CAP_CHECK, passed=check.passed, severity=dg.AssetCheckSeverity.WARN,
            metadata={"checked": dg.MetadataValue.int(check.checked),
                      "misses": dg.MetadataValue.int(len(misses)),
                      "tolerance": dg.MetadataValue.float(MARKET_CAP_TOLERANCE),
                      "details": dg.MetadataValue.text("\n".join(misses[:MAX_LISTED]) or "none"),
                      "without_a_recent_bar": dg.MetadataValue.text(", ".join(check.unverified[:MAX_LISTED])
                                                                    or "none")})],
    )


@dg.asset(
    partitions_def=region_partitions,
    deps=[fundamentals_daily],
    **dataset_asset(FX_DAILY),
)
def fx_daily(context: dg.AssetExecutionContext, config: RunClock, itick: ITickResource,
             storage: StorageResource) -> dg.MaterializeResult:
    region = context.partition_key
    ctx = run_context(context, config, storage, itick, asset="fx_daily")
    source, lake = ctx.source, ctx.lake
    result = refresh_fx(ctx, region)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(result.rows)),
            "currencies": dg.MetadataValue.text(", ".join(result.currencies) or "none (USD only)"),
            "first": dg.MetadataValue.text(result.first.isoformat() if result.first else "none"),
            "last": dg.MetadataValue.text(result.last.isoformat()),
            "months_written": dg.MetadataValue.text(", ".join(result.months) or "none"),
            **fetch_metadata(result.fetch),
            "source": dg.MetadataValue.text(source.name),
            "preview": preview(result.rows.tail(10)),
            **snapshot_metadata(lake),
        }
    )


# Its inputs are region partitions written together by fundamentals_refresh, so plain eager() fits: it re-derives
# a region after fundamentals_daily or fx_daily update outside that job (a run that also derives valuation_daily
# does not trigger it twice: any_deps_updated ignores updates from runs that targeted this asset too).
@dg.asset(
    partitions_def=region_partitions,
    deps=[fundamentals_daily, fx_daily],
    automation_condition=dg.AutomationCondition.eager(),
    **dataset_asset(VALUATION_DAILY),
)
def valuation_daily(context: dg.AssetExecutionContext, config: RunClock, storage: StorageResource
                    ) -> dg.MaterializeResult:
    region = context.partition_key
    ctx = run_context(context, config, storage, asset="valuation_daily")
    lake = ctx.lake
    result = derive_valuation(ctx, region)
    rows = result.rows
    stored, symbols = stored_valuation(lake, region)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(stored),
            "symbols": dg.MetadataValue.int(symbols),
            "rows_derived": dg.MetadataValue.int(len(rows)),
            "derived_since": dg.MetadataValue.text(
                "everything" if result.since is None and len(rows) else
                "nothing (inputs unchanged)" if result.since is None else result.since.isoformat()),
            "months_written": dg.MetadataValue.int(len(result.months)),
            "rows_without_fx": dg.MetadataValue.int(result.without_fx),
            "rows_with_pe_band": dg.MetadataValue.int(int(rows["pe_percentile"].notna().sum())),
            **{f"rows_{k}": dg.MetadataValue.int(v) for k, v in result.diff.items()},
            "preview": preview(rows.sort_values("as_of").tail(10)),
            **snapshot_metadata(lake),
        }
    )
