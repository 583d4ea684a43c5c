"""`security_master`: the point-in-time security master (validity intervals per symbol) per region."""


import dagster as dg

from assets.clock import RunClock
from assets.metadata import dataset_asset, fetch_metadata, preview, snapshot_metadata
from assets.partitions import region_partitions
from resources.itick import ITickResource
from resources.storage import StorageResource
from ticklake.datasets.security_master import refresh_security_master
from ticklake.dictionary.reference_data import SECURITY_MASTER
from ticklake.storage.ddl import partition_address


@dg.asset(
    partitions_def=region_partitions,
    **dataset_asset(SECURITY_MASTER),
)
def security_master(context: dg.AssetExecutionContext, config: RunClock,
                    itick: ITickResource, storage: StorageResource
                    ) -> dg.MaterializeResult:
    region, run_id = context.partition_key, context.run.run_id
    source = itick.source(tags={"run_id": run_id, "asset": "security_master"})
    lake = storage.lakehouse()
    result = refresh_security_master(source, lake, region=region, run_id=run_id,
                                     now=config.instant(), log=context.log.info)
    current = result.current
    if result.rejected:
        context.log.warning(f"{region}: refused {len(result.rejected)} symbol-list entr(ies): "
                            + "; ".join(result.rejected[:20]))
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(result.frame)),
            "as_of": dg.MetadataValue.text(result.as_of.isoformat()),
            "symbols_known": dg.MetadataValue.int(len(current)),
            "listed_now": dg.MetadataValue.int(result.listed),
            "delisted": dg.MetadataValue.int(int(current["delisting_date"].notna().sum())),
            "delisted_today": dg.MetadataValue.text(", ".join(result.delisted_today) or "none"),
            "with_listing_date": dg.MetadataValue.int(result.with_listing_date),
            "ipos_reported": dg.MetadataValue.int(result.ipos),
            "entries_refused": dg.MetadataValue.int(len(result.rejected)),
            **{f"intervals_{k}": dg.MetadataValue.int(v) for k, v in result.diff.items()},
            **fetch_metadata(result.fetch),
            "source": dg.MetadataValue.text(source.name),
            "lake_path": dg.MetadataValue.text(partition_address(SECURITY_MASTER, dict(region=region,
                                                                                source=source.name))),
            "preview": preview(current),
            **snapshot_metadata(lake),
        }
    )
