"""`corporate_actions`: splits per region from the source's split list (upserted by key)."""

import dagster as dg

from assets.factory import MAX_REFUSED, Shown, reference_asset
from ticklake.datasets.corporate_actions import CorporateActionsResult, refresh_corporate_actions
from ticklake.dictionary.reference_data import CORPORATE_ACTIONS


def _show(result: CorporateActionsResult) -> Shown:
    stored = result.stored
    return Shown(len(stored), stored.sort_values("ex_date", ascending=False) if len(stored) else stored, {
        "splits_listed": dg.MetadataValue.int(result.listed),
        "symbols_with_splits": dg.MetadataValue.int(int(stored["symbol"].nunique()) if len(stored) else 0),
        "not_in_feed": dg.MetadataValue.int(len(result.not_in_feed)),
        **({"not_in_feed_list": dg.MetadataValue.text("\n".join(result.not_in_feed[:MAX_REFUSED]))}
           if result.not_in_feed else {}),
    })


corporate_actions = reference_asset(CORPORATE_ACTIONS, refresh_corporate_actions, _show)
