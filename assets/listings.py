"""`securities` (the klines universe) and `security_master` (point-in-time validity intervals), per region: one
symbol list answer builds both, so a run that refreshes both makes one /symbol/list call per region. Either can
run alone (`--select securities`); the other keeps what it stores. Both are one step, named `security_master`:
run config goes to `{"ops": {"security_master": {"config": {"now": ...}}}}` for either."""

import dagster as dg

from assets.clock import RunClock
from assets.factory import Shown, refresh_metadata, run_context, warn_refused
from assets.metadata import dataset_asset
from assets.partitions import region_partitions
from resources.itick import ITickResource
from resources.storage import StorageResource
from ticklake.datasets.security_master import (
    SecuritiesResult,
    SecurityMasterResult,
    fetch_listings,
    refresh_securities,
    refresh_security_master,
)
from ticklake.dictionary import SECURITIES
from ticklake.dictionary.reference_data import SECURITY_MASTER
from ticklake.sources.contract import FetchReport

SECURITIES_KEY, SECURITY_MASTER_KEY = dg.AssetKey(SECURITIES.name), dg.AssetKey(SECURITY_MASTER.name)


def _show_securities(result: SecuritiesResult) -> Shown:
    master = result.master
    return Shown(len(master), master, {
        "listed_now": dg.MetadataValue.int(result.listed),
        "no_longer_listed": dg.MetadataValue.int(int((~master["in_latest_list"]).sum())),
        "as_of": dg.MetadataValue.text(result.as_of.isoformat()),
    })


def _show_security_master(result: SecurityMasterResult) -> Shown:
    current = result.current
    return Shown(len(result.frame), current, {
        "as_of": dg.MetadataValue.text(result.as_of.isoformat()),
        "symbols_known": dg.MetadataValue.int(len(current)),
        "listed_now": dg.MetadataValue.int(result.listed),
        "delisted": dg.MetadataValue.int(int(current["delisting_date"].notna().sum())),
        "delisted_today": dg.MetadataValue.text(", ".join(result.delisted_today) or "none"),
        "with_listing_date": dg.MetadataValue.int(result.with_listing_date),
        "ipos_reported": dg.MetadataValue.int(result.ipos),
    }, diff_prefix="intervals")


@dg.multi_asset(
    name="security_master",  # the step's (op's) name, which run config addresses
    partitions_def=region_partitions,
    can_subset=True,
    specs=[dg.AssetSpec(SECURITIES_KEY, skippable=True, **dataset_asset(SECURITIES)),
           dg.AssetSpec(SECURITY_MASTER_KEY, skippable=True, **dataset_asset(SECURITY_MASTER))],
)
def listings(context: dg.AssetExecutionContext, config: RunClock, itick: ITickResource,
                 storage: StorageResource):
    region, selected = context.partition_key, context.selected_asset_keys
    ctx = run_context(context, config, storage, itick, asset="+".join(k.to_user_string() for k in sorted(selected)))
    listed = fetch_listings(ctx, region, listing_dates=SECURITY_MASTER_KEY in selected)
    warn_refused(context, region, listed.attrs.get("rejected", []))
    fetched = ctx.spent()  # the one answer both are built from: its cost is shown on the first of them only
    if SECURITY_MASTER_KEY in selected:
        master = refresh_security_master(ctx, region, listed)
        yield dg.MaterializeResult(asset_key=SECURITY_MASTER_KEY, metadata=refresh_metadata(
            SECURITY_MASTER, ctx, region, master, _show_security_master(master), fetch=fetched))
    if SECURITIES_KEY in selected:
        universe = refresh_securities(ctx, region, listed)
        yield dg.MaterializeResult(asset_key=SECURITIES_KEY, metadata=refresh_metadata(
            SECURITIES, ctx, region, universe, _show_securities(universe),
            fetch=FetchReport() if SECURITY_MASTER_KEY in selected else fetched))
