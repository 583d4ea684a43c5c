"""One raw asset per vendor file drop (`vendor_klines_<vendor>`), per month x region like `klines_daily`.

Materializing a partition loads every delivered file that covers it (ticklake.datasets.vendor_klines) and re-derives
the golden bars those rows touch in the same commit. The golden copy is the `klines_daily` table, so the step also
reports a materialization of `klines_daily` for those partitions: its page shows the re-derivation, and the
downstream automation (adjusted bars, valuation) reacts to it as to any other change of the golden copy. The
vendor costs no API calls: nothing here talks to iTick.
"""

import warnings

import dagster as dg

from assets.clock import RunClock
from assets.factory import run_context
from assets.golden import exceptions_check, exceptions_check_spec
from assets.listings import SECURITIES_KEY
from assets.metadata import snapshot_metadata
from assets.partitions import REGION, key, month_region_partitions, months_by_region
from resources.itick import ITickResource
from resources.storage import StorageResource
from ticklake.datasets.golden import RULES
from ticklake.datasets.vendor_klines import load_month
from ticklake.sources.declared import SourceSpec
from ticklake.sources.files.drop import read_drop

GOLDEN_KEY = dg.AssetKey("klines_daily")

def asset_name(spec: SourceSpec) -> str:
    return f"vendor_klines_{spec.name.replace('-', '_')}"

def vendor_klines_asset(spec: SourceSpec) -> dg.AssetsDefinition:
    """The raw asset of one vendor's file drop."""
    with warnings.catch_warnings():  # the same two beta APIs klines_daily acknowledges (assets/klines.py)
        warnings.filterwarnings("ignore", message=r".*(backfill_policy|MultiToSingleDimensionPartitionMapping)",
                                category=dg.BetaWarning)

        @dg.asset(
            name=asset_name(spec),
            group_name="market_data",
            kinds={"csv", "duckdb"},
            partitions_def=month_region_partitions,
            backfill_policy=dg.BackfillPolicy.single_run(),
            deps=[dg.AssetDep(SECURITIES_KEY, partition_mapping=dg.MultiToSingleDimensionPartitionMapping(REGION))],
            description=(f"{spec.name}'s file drop ({spec.format}, {', '.join(spec.regions)}; files arrive at "
                         f"{spec.drop}): every delivered file covering the month, as the vendor said it, into "
                         "klines_daily_by_source, and the golden klines_daily bars it touches re-derived in the same "
                         f"commit. The `vendor_drop_{spec.name}` sensor materializes the partitions a new file "
                         "covers."),
            metadata={"source": dg.MetadataValue.text(spec.name), "format": dg.MetadataValue.text(spec.format),
                      "drop": dg.MetadataValue.text(str(spec.drop))},
            check_specs=[exceptions_check_spec(asset_name(spec))],
        )
        def vendor_klines(context: dg.AssetExecutionContext, config: RunClock, storage: StorageResource,
                          itick: ITickResource):
            # no call to iTick: the resource only names the API source in the sources file's priority lists
            ctx = run_context(context, config, storage, itick, asset=asset_name(spec), fetch=False)
            loaded, parsed = [], {}  # each file read and parsed once, whatever the months it covers
            for region, months in months_by_region(context.partition_keys).items():
                for month in months:
                    loaded.append(load_month(ctx, spec, region, month, lambda name: read_drop(spec.drop, name),
                                             parsed))
            snapshot = snapshot_metadata(ctx.lake)
            for report in loaded:
                partition = key(report.month, report.region)
                golden = {f"golden_{rule}": dg.MetadataValue.int(report.golden.get(rule, 0)) for rule in RULES}
                own = {
                    "dagster/row_count": dg.MetadataValue.int(report.rows),
                    "files": dg.MetadataValue.text(", ".join(report.files) or "none"),
                    "rows_quarantined": dg.MetadataValue.int(report.quarantined),
                    "files_changed_since_received": dg.MetadataValue.text(", ".join(report.skipped) or "none"),
                    **golden, "exceptions": dg.MetadataValue.int(report.exceptions), **snapshot,
                }
                context.add_asset_metadata(own, partition_key=partition)
                if report.files:  # the golden copy changed with it: klines_daily's page and automation see it
                    context.log_event(dg.AssetMaterialization(
                        GOLDEN_KEY, partition=partition,
                        description=f"golden bars re-derived from {spec.name}'s files by {asset_name(spec)}",
                        metadata={**golden, "exceptions": dg.MetadataValue.int(report.exceptions),
                                  "source": dg.MetadataValue.text(spec.name), **snapshot}))
            yield dg.MaterializeResult()
            yield exceptions_check(ctx.lake, sorted({r.region for r in loaded}) or list(spec.regions))

    return vendor_klines
