"""`klines_daily_adjusted`: split-adjusted bars derived from raw klines and corporate actions, per region.

Partitioned by region, not month x region: a split changes every earlier month of its symbol, so the unit of
re-derivation spans months; the step compares the whole region and writes only the month files that differ.
"""

import warnings

import dagster as dg

from assets.clock import RunClock
from assets.corporate_actions import corporate_actions
from assets.factory import run_context
from assets.klines import klines_daily
from assets.metadata import dataset_asset, snapshot_metadata
from assets.partitions import REGION, region_partitions
from resources.storage import StorageResource
from ticklake.datasets.corporate_actions import JUMP_BAND, SHOWS_TOLERANCE, SPLIT_SIZES
from ticklake.datasets.klines_adjusted import AdjustResult, derive_adjusted
from ticklake.dictionary.analytics import KLINES_DAILY_ADJUSTED

SHOWN_CHECK = "recorded_splits_show_in_raw_prices"
JUMPS_CHECK = "no_unrecorded_split_sized_jumps"
MAX_LISTED = 50

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r".*MultiToSingleDimensionPartitionMapping", category=dg.BetaWarning)
    _klines_dep = dg.AssetDep(klines_daily, partition_mapping=dg.MultiToSingleDimensionPartitionMapping(REGION))

# Re-derive a region when any of its raw months or its splits update: Dagster's `eager()` without its "no missing
# dependency" gate. A region's adjusted bars depend on every month of its raw bars since TICKLAKE_START_DATE, and
# months nobody backfilled (or the current month before its first nightly run) stay missing for good, so plain
# eager() would never fire. Still waits while a raw month or the region itself is being written.
REDERIVE_ON_UPSTREAM_UPDATE = (
    dg.AutomationCondition.eager().without(~dg.AutomationCondition.any_deps_missing())
    .with_label("eager, even with missing raw months")
)


@dg.asset(
    partitions_def=region_partitions,
    deps=[_klines_dep, corporate_actions],
    automation_condition=REDERIVE_ON_UPSTREAM_UPDATE,
    **dataset_asset(KLINES_DAILY_ADJUSTED),
    check_specs=[
        dg.AssetCheckSpec(SHOWN_CHECK, asset="klines_daily_adjusted",
                          description=f"Every recorded split shows in the raw closes: close on the ex-date / the "
                                      f"previous bar's close is within {SHOWS_TOLERANCE:.0%} of the split's factor "
                                      "(a miss puts a false jump into the adjusted series)"),
        dg.AssetCheckSpec(JUMPS_CHECK, asset="klines_daily_adjusted",
                          description=f"No raw close-to-close move within {JUMP_BAND:.0%} of a split's size "
                                      f"(x{', x'.join(f'{s:.3g}' for s in SPLIT_SIZES)}) on a day without a recorded "
                                      "split (such a jump stays in the adjusted series)"),
    ],
)
def klines_daily_adjusted(context: dg.AssetExecutionContext, config: RunClock,
                          storage: StorageResource):
    region = context.partition_key
    ctx = run_context(context, config, storage, asset="klines_daily_adjusted")
    result = derive_adjusted(ctx, region)
    lake = ctx.lake
    yield dg.MaterializeResult(metadata={
        "dagster/row_count": dg.MetadataValue.int(result.rows),
        "symbols_rederived": dg.MetadataValue.int(len(result.symbols_rederived)),
        "symbols_rederived_list": dg.MetadataValue.text(", ".join(sorted(result.symbols_rederived)[:MAX_LISTED])
                                                        or "none"),
        "rows_changed": dg.MetadataValue.int(result.rows_changed),
        **{f"rows_{k}": dg.MetadataValue.int(v) for k, v in result.diff.items()},
        "months_written": dg.MetadataValue.int(len(result.months_written)),
        "sources": dg.MetadataValue.text(", ".join(result.sources) or "none"),
        **{k: dg.MetadataValue.float(v) for k, v in result.seconds.items()},
        "lake_path": dg.MetadataValue.text(f"{KLINES_DAILY_ADJUSTED.name}/region={region}"),
        **snapshot_metadata(lake),
    })
    yield from _checks(result)


def _checks(result: AdjustResult):
    yield dg.AssetCheckResult(
        check_name=SHOWN_CHECK, passed=not result.split_misses, severity=dg.AssetCheckSeverity.WARN,
        metadata={"misses": dg.MetadataValue.int(len(result.split_misses)),
                  "details": dg.MetadataValue.text("\n".join(result.split_misses[:MAX_LISTED]) or "none"),
                  "unverified": dg.MetadataValue.int(len(result.splits_unverified)),
                  "unverified_list": dg.MetadataValue.text("\n".join(result.splits_unverified[:MAX_LISTED])
                                                           or "none"),
                  "tolerance": dg.MetadataValue.float(SHOWS_TOLERANCE)})
    yield dg.AssetCheckResult(
        check_name=JUMPS_CHECK, passed=not result.unrecorded_jumps, severity=dg.AssetCheckSeverity.WARN,
        metadata={"jumps": dg.MetadataValue.int(len(result.unrecorded_jumps)),
                  "details": dg.MetadataValue.text("\n".join(result.unrecorded_jumps[:MAX_LISTED]) or "none"),
                  "band": dg.MetadataValue.float(JUMP_BAND)})
