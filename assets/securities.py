"""`securities`: the per-region security master that defines the klines universe."""



import dagster as dg

from assets.clock import RunClock
from assets.metadata import dataset_asset, fetch_metadata, preview, snapshot_metadata
from assets.partitions import region_partitions
from resources.itick import ITickResource
from resources.storage import StorageResource
from ticklake.datasets.klines import refresh_securities
from ticklake.dictionary import SECURITIES
from ticklake.storage.ddl import partition_address


@dg.asset(
    partitions_def=region_partitions,
    **dataset_asset(SECURITIES),
)
def securities(context: dg.AssetExecutionContext, config: RunClock,
               itick: ITickResource, storage: StorageResource
               ) -> dg.MaterializeResult:
    region, run_id = context.partition_key, context.run.run_id
    source = itick.source(tags={"run_id": run_id, "asset": "securities"})
    lake = storage.lakehouse()
    result = refresh_securities(source, lake, region=region, run_id=run_id,
                                now=config.instant(), log=context.log.info)
    if result.rejected:
        context.log.warning(f"{region}: refused {len(result.rejected)} symbol-list entr(ies): "
                            + "; ".join(result.rejected[:20]))
    master = result.master
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(master)),
            "listed_now": dg.MetadataValue.int(result.listed),
            "no_longer_listed": dg.MetadataValue.int(int((~master["in_latest_list"]).sum())),
            "as_of": dg.MetadataValue.text(result.as_of.isoformat()),
            "entries_refused": dg.MetadataValue.int(len(result.rejected)),
            **({"refused": dg.MetadataValue.text("\n".join(result.rejected[:50]))} if result.rejected else {}),
            **{f"rows_{k}": dg.MetadataValue.int(v) for k, v in result.diff.items()},
            **fetch_metadata(result.fetch),
            "source": dg.MetadataValue.text(source.name),
            "lake_path": dg.MetadataValue.text(partition_address(SECURITIES, dict(region=region,
                                                                                source=source.name))),
            "preview": preview(master),
            **snapshot_metadata(lake),
        }
    )
