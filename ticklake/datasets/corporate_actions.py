"""The corporate_actions dataset: the per-region refresh of splits, and the checks of recorded splits against the
raw prices. How a split ratio becomes a price factor is in ticklake.sources.splits."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ticklake.datasets.context import RunContext
from ticklake.dictionary.reference_data import CORPORATE_ACTIONS
from ticklake.sources.contract import FetchReport
from ticklake.sources.queries import SplitsQuery

# A recorded split "shows" when close(ex-date) / close(previous bar) is within this share of its factor. Daily
# moves are a few percent; 25% keeps a 2:3 split (0.667) apart from no split at all (1.0) and from 1:2 (0.5).
SHOWS_TOLERANCE = 0.25
# A raw close-to-close move within this share of one of these sizes, on a day without a recorded split, looks
# like an unrecorded split. 2:3 (0.667) and 3:2 are left out: moves of -33%/+50% are too often real news.
JUMP_BAND = 0.10
SPLIT_SIZES = (1 / 2, 1 / 3, 1 / 4, 1 / 5, 1 / 10, 2.0, 3.0, 4.0, 5.0, 10.0)


@dataclass
class CorporateActionsResult:
    region: str
    stored: pd.DataFrame  # the region's corporate_actions after the refresh
    listed: int  # splits in the source's answer
    diff: dict[str, int]
    not_in_feed: list[str] = field(default_factory=list)  # stored splits the source no longer lists (kept)
    fetch: FetchReport = field(default_factory=FetchReport)


def refresh_corporate_actions(ctx: RunContext, region: str) -> CorporateActionsResult:
    """Upsert the source's current split list into the region's corporate_actions."""
    splits = ctx.fetch(CORPORATE_ACTIONS, SplitsQuery(region))
    values = {"region": region, "source": ctx.source_name}
    old = ctx.lake.read(CORPORATE_ACTIONS, **values)
    not_in_feed: list[str] = []
    if old is not None and len(old):
        key = list(CORPORATE_ACTIONS.key)
        gone = old.merge(splits[key], on=key, how="left", indicator=True)
        gone = gone[gone["_merge"].eq("left_only")]
        not_in_feed = [f"{s} {d:%Y-%m-%d} {r}" for s, d, r in zip(gone["symbol"], gone["ex_date"], gone["ratio"],
                                                                  strict=True)]
        if not_in_feed:
            ctx.log(f"{region}: {len(not_in_feed)} stored split(s) no longer listed by the source (kept): "
                    f"{not_in_feed[:10]}")
    written = ctx.write(CORPORATE_ACTIONS, values, splits)
    return CorporateActionsResult(region, written.frame, len(splits), written.diff, not_in_feed, ctx.spent())


# -- checks of the recorded splits against the raw prices ---------------------------------------------------------

def split_misses(pairs: pd.DataFrame, splits: pd.DataFrame, tolerance: float = SHOWS_TOLERANCE
                 ) -> tuple[list[str], list[str]]:
    """(recorded splits the raw closes do not show, splits that cannot be verified: no bar on the ex-date or
    before it). `pairs`: symbol, trade_date, close, prev_close (the symbol's previous bar), at least on every
    ex-date; `splits`: symbol, ex_date, factor."""
    joined = splits.merge(pairs, left_on=["symbol", "ex_date"], right_on=["symbol", "trade_date"], how="left")
    unverified = joined[joined["close"].isna() | joined["prev_close"].isna()]
    seen = joined.drop(unverified.index)
    moved = seen["close"] / seen["prev_close"]
    off = seen[(moved / seen["factor"] - 1).abs() > tolerance]
    misses = [f"{s} {d:%Y-%m-%d}: factor {f:.4g}, close moved x{m:.4g}"
              for s, d, f, m in zip(off["symbol"], off["ex_date"], off["factor"], moved[off.index], strict=True)]
    return misses, [f"{s} {d:%Y-%m-%d}" for s, d in zip(unverified["symbol"], unverified["ex_date"], strict=True)]


def unrecorded_jumps(pairs: pd.DataFrame, splits: pd.DataFrame, band: float = JUMP_BAND) -> list[str]:
    """Raw close-to-close moves within `band` of a split's size (SPLIT_SIZES) on a day no split is recorded
    for the symbol."""
    moved = pairs["close"] / pairs["prev_close"]
    near = pd.Series(False, index=pairs.index)
    for size in SPLIT_SIZES:
        near |= (moved / size - 1).abs() <= band
    jumps = pairs[near.fillna(False)]
    recorded = set(zip(splits["symbol"], pd.to_datetime(splits["ex_date"]), strict=True))
    return [f"{s} {d:%Y-%m-%d}: close moved x{c / p:.4g}" for s, d, c, p in
            zip(jumps["symbol"], pd.to_datetime(jumps["trade_date"]), jumps["close"], jumps["prev_close"], strict=True)
            if (s, d) not in recorded]
