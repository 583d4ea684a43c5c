"""`corporate_actions`: splits per region from the source's split list (upserted by key)."""


import dagster as dg

from assets.clock import RunClock
from assets.metadata import dataset_asset, fetch_metadata, preview, snapshot_metadata
from assets.partitions import region_partitions
from resources.itick import ITickResource
from resources.storage import StorageResource
from ticklake.datasets.corporate_actions import refresh_corporate_actions
from ticklake.dictionary.reference_data import CORPORATE_ACTIONS
from ticklake.storage.ddl import partition_address


@dg.asset(
    partitions_def=region_partitions,
    **dataset_asset(CORPORATE_ACTIONS),
)
def corporate_actions(context: dg.AssetExecutionContext, config: RunClock,
                      itick: ITickResource, storage: StorageResource
                      ) -> dg.MaterializeResult:
    region, run_id = context.partition_key, context.run.run_id
    source = itick.source(tags={"run_id": run_id, "asset": "corporate_actions"})
    lake = storage.lakehouse()
    result = refresh_corporate_actions(source, lake, region=region, run_id=run_id,
                                       now=config.instant(), log=context.log.info)
    stored = result.stored
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(stored)),
            "splits_listed": dg.MetadataValue.int(result.listed),
            "symbols_with_splits": dg.MetadataValue.int(int(stored["symbol"].nunique()) if len(stored) else 0),
            "not_in_feed": dg.MetadataValue.int(len(result.not_in_feed)),
            **({"not_in_feed_list": dg.MetadataValue.text("\n".join(result.not_in_feed[:50]))}
               if result.not_in_feed else {}),
            **{f"rows_{k}": dg.MetadataValue.int(v) for k, v in result.diff.items()},
            **fetch_metadata(result.fetch),
            "source": dg.MetadataValue.text(source.name),
            "lake_path": dg.MetadataValue.text(partition_address(CORPORATE_ACTIONS, dict(region=region,
                                                                      source=source.name))),
            "preview": preview(stored.sort_values("ex_date", ascending=False) if len(stored) else stored),
            **snapshot_metadata(lake),
        }
    )
