"""Tenant deliveries (issue 19, item 2): one asset per tenant product, `deliveries/<tenant>/<dataset>`, partitioned by
region, and the `tenant_deliveries` job that runs every delivery of a region.

Each asset is partitioned by the pipeline's regions (TICKLAKE_REGIONS), the partitions of the tables it reads, so that
Dagster maps a delivery exactly onto its region: klines_daily's region dimension
(MultiToSingleDimensionPartitionMapping)
and the region partitions of klines_daily_adjusted, fx_daily, security_master and fundamentals_daily (identity).
Dagster 1.13 refuses both alternatives a partition set of only the granted regions would need: that mapping requires
the single-dimension definition to *equal* the multi-partitioned asset's dimension, and an asset job requires every
asset it selects to share one partitions definition (so one job could not hold tenants granted different regions).
A region outside the tenant's grant is therefore a partition that is never delivered: its step writes nothing and
materializes nothing (the query builder would refuse it in any case).

A delivery runs after its region's golden copy and adjusted bars: the same automation condition as
`klines_daily_adjusted` (eager, even with missing raw months), on every table the product reads.
"""


import warnings
from zoneinfo import ZoneInfo

import dagster as dg

from assets.adjusted import REDERIVE_ON_UPSTREAM_UPDATE
from assets.clock import RunClock
from assets.partitions import REGION, region_partitions
from resources.storage import StorageResource
from ticklake.dictionary.analytics import KLINES_DAILY_ADJUSTED
from ticklake.dictionary.fundamentals import FUNDAMENTALS_DAILY, FX_DAILY
from ticklake.dictionary.market_data import KLINES_DAILY
from ticklake.dictionary.reference_data import SECURITY_MASTER
from ticklake.markets import MARKETS
from ticklake.products.delivery import Delivery, deliver, region_folder
from ticklake.products.query import converted
from ticklake.products.tenants import Tenant, Tenants

GROUP = "deliveries"
JOB = "tenant_deliveries"
MAX_LISTED = 50


def asset_key(tenant: str, dataset: str) -> dg.AssetKey:
    return dg.AssetKey([GROUP, tenant, dataset])


def _region_of_klines() -> dg.AssetDep:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*MultiToSingleDimensionPartitionMapping",
                                category=dg.BetaWarning)
        return dg.AssetDep(KLINES_DAILY.name, partition_mapping=dg.MultiToSingleDimensionPartitionMapping(REGION))


def read_tables(tenant: Tenant, dataset: str) -> list[str]:
    """The lake tables a product's delivery waits for: its own table; for daily bars both the golden copy and the
    adjusted bars (a delivery runs after both, whichever it reads); for a tenant on USD the tables the conversion
    reads (the security master and fundamentals for a row's currency, fx_daily for the rate)."""
    product = tenant.products[dataset]
    tables = [product.table.name]
    if product.table.name in (KLINES_DAILY.name, KLINES_DAILY_ADJUSTED.name):
        tables = [KLINES_DAILY.name, KLINES_DAILY_ADJUSTED.name]
    if any(converted(tenant, product.table.field(f)) for f in product.fields):
        tables += [SECURITY_MASTER.name, FUNDAMENTALS_DAILY.name, FX_DAILY.name]
    return list(dict.fromkeys(tables))


def _deps(tenant: Tenant, dataset: str) -> list[dg.AssetDep | str]:
    return [_region_of_klines() if t == KLINES_DAILY.name else t for t in read_tables(tenant, dataset)]


def _describe(tenant: Tenant, dataset: str) -> str:
    product = tenant.products[dataset]
    outside = [r for r in region_partitions.get_partition_keys() if r not in tenant.regions]
    unrun = [r for r in tenant.regions if r not in region_partitions.get_partition_keys()]
    return (f"{tenant.description + ' ' if tenant.description else ''}Tenant {tenant.name}'s {dataset} (read from "
            f"{product.table.name}): {', '.join(product.fields)}; {tenant.window.describe()}; {tenant.prices} prices "
            f"in {tenant.currency} currency; {tenant.format} files and a manifest.json under "
            f"{tenant.target}/{dataset}/region=<R>/. Granted regions: {', '.join(tenant.regions)}"
            + (f"; {', '.join(outside)} outside the grant: never delivered" if outside else "")
            + (f"; {', '.join(unrun)} granted but not run by the pipeline (TICKLAKE_REGIONS): no partition"
               if unrun else "") + ".")


def delivery_metadata(result: Delivery) -> dict[str, dg.MetadataValue]:
    """A delivery's figures: rows, bytes, time, files, what changed, the snapshot and where the manifest is."""
    months = result.months_changed
    return {
        "dagster/row_count": dg.MetadataValue.int(result.rows),
        "bytes": dg.MetadataValue.int(result.bytes),
        "seconds": dg.MetadataValue.float(result.seconds["total_s"]),
        **{k: dg.MetadataValue.float(v) for k, v in result.seconds.items() if k != "total_s"},
        "rows_per_s": dg.MetadataValue.float(round(result.rows / result.seconds["total_s"], 1)
                                             if result.seconds["total_s"] else 0.0),
        "files": dg.MetadataValue.int(result.files),
        "files_written": dg.MetadataValue.int(len(result.written)),
        "files_unchanged": dg.MetadataValue.int(len(result.unchanged)),
        "files_removed": dg.MetadataValue.int(len(result.removed)),
        "months_changed": dg.MetadataValue.int(len(months)),
        "months_changed_list": dg.MetadataValue.text(", ".join(months[:MAX_LISTED]) or "none"),
        "manifest_written": dg.MetadataValue.bool(result.manifest_written),
        "lake_snapshot_id": dg.MetadataValue.int(result.snapshot_id),
        "manifest_snapshot_id": dg.MetadataValue.int(result.manifest_snapshot_id),
        "manifest": dg.MetadataValue.text(result.manifest),
        "format": dg.MetadataValue.text(result.format),
        "table": dg.MetadataValue.text(result.table),
    }


def delivery_asset(tenant: Tenant, dataset: str) -> dg.AssetsDefinition:
    """The asset delivering one tenant product, partitioned by region."""
    key = asset_key(tenant.name, dataset)

    @dg.asset(
        key=key,
        group_name=GROUP,
        partitions_def=region_partitions,
        deps=_deps(tenant, dataset),
        automation_condition=REDERIVE_ON_UPSTREAM_UPDATE,
        kinds={tenant.format, "s3" if tenant.target.startswith("s3://") else "file"},
        description=_describe(tenant, dataset),
        metadata={"tenant": tenant.name, "dataset": dataset, "format": tenant.format,
                  "regions_granted": ", ".join(tenant.regions), "target": f"{tenant.target}/{dataset}"},
        output_required=False,  # a region outside the grant: nothing delivered, nothing materialized
    )
    def _deliver(context: dg.AssetExecutionContext, config: RunClock, storage: StorageResource):
        region = context.partition_key
        if region not in tenant.regions:
            context.log.info(f"{region} is outside tenant {tenant.name}'s grant ({', '.join(tenant.regions)}): "
                             "nothing to deliver")
            return
        now = config.instant()
        today = now.astimezone(ZoneInfo(MARKETS[region].timezone)).date()  # the rolling window ends on it
        with storage.lakehouse().reader() as con:
            result = deliver(tenant, dataset, region, today=today, con=con, now=now)
        context.log.info(f"{tenant.name}/{dataset}/region={region}: {result.rows:,} rows in {result.files} file(s), "
                         f"{len(result.written)} written, {len(result.unchanged)} unchanged, {len(result.removed)} "
                         f"removed; months changed: {', '.join(result.months_changed) or 'none'} "
                         f"({region_folder(tenant, dataset, region)})")
        yield dg.MaterializeResult(metadata=delivery_metadata(result))

    return _deliver


def delivery_assets(tenants: Tenants) -> list[dg.AssetsDefinition]:
    """One asset per tenant and granted dataset, in the tenants file's order."""
    return [delivery_asset(t, d) for t in tenants for d in t.products]


def deliveries_job(assets: list[dg.AssetsDefinition]) -> list:
    """`tenant_deliveries`: every tenant's delivery of one region (none without tenants)."""
    if not assets:
        return []
    return [dg.define_asset_job(JOB, selection=dg.AssetSelection.assets(*assets),
                                description="Every tenant's delivery of one region: its files and manifest.json, "
                                            "cut from one lake snapshot")]
