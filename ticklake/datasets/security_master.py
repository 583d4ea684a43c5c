"""The point-in-time security master: each symbol-list observation folded into validity intervals.

An observation is the day's list (with listing dates where the source reports them) plus every symbol the
master holds open that the list no longer contains, marked delisted on that day. So every known symbol is in
every observation: an interval closes only because a value changed (a rename, a delisting, a listing date
learned), and the latest interval of a symbol is its current knowledge, which `universe_on` reads. Listing and
delisting dates, once known, are carried forward: the IPO list is a rolling window, and a vanished symbol stays
vanished on the following days (its delisting date stays the first day it was missed).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ticklake import settings
from ticklake.datasets.context import RunContext
from ticklake.dictionary.reference_data import SECURITIES, SECURITY_MASTER
from ticklake.sources.contract import FetchReport
from ticklake.sources.queries import ListingsQuery
from ticklake.storage.frames import fetch_frame
from ticklake.storage.write_modes import INTERVAL_COLUMNS

LISTED = ("region", "symbol", "name", "security_type", "exchange")  # what `securities` keeps of a listing
CARRIED = ("listing_date", "sector", "industry", "currency")
DESCRIBED = ("sector", "industry", "currency")  # from the latest /stock/info snapshot (fundamentals_daily)

# The latest descriptors per symbol from the region's valuation snapshots of the same source.
DESCRIPTORS_SQL = """
SELECT symbol, arg_max(sector, as_of) AS sector, arg_max(industry, as_of) AS industry,
       arg_max(currency, as_of) AS currency
FROM fundamentals_daily WHERE region = ? AND source = ? GROUP BY symbol
"""


def latest(stored: pd.DataFrame | None) -> pd.DataFrame:
    """The open interval of every symbol (its current knowledge); empty when nothing is stored."""
    if stored is None or stored.empty:
        return pd.DataFrame(columns=SECURITY_MASTER.columns)
    return stored[stored["valid_to"].isna()].reset_index(drop=True)


def observation(listed: pd.DataFrame, stored: pd.DataFrame | None, as_of: dt.date,
                descriptors: pd.DataFrame | None = None) -> pd.DataFrame:
    """Today's observation of every known symbol (value columns only): the listed ones, with listing dates and
    descriptors carried from the master where today's answers lack them, and the vanished ones marked delisted.
    `descriptors` (symbol, sector, industry, currency) are the latest the valuation snapshots know."""
    day = pd.Timestamp(as_of).as_unit("ms")
    columns = [c for c in SECURITY_MASTER.value_columns if c not in INTERVAL_COLUMNS]
    known = latest(stored)
    out = listed.assign(delisting_date=pd.NaT).astype({"delisting_date": "datetime64[ms]"})
    described = descriptors if descriptors is not None else pd.DataFrame(columns=["symbol", *DESCRIBED])
    out = out.merge(described[["symbol", *DESCRIBED]].astype("string"), on="symbol", how="left")
    for column in DESCRIBED:
        out[column] = out[column].astype("string")
    if known.empty:
        return out[["region", "symbol", *columns]].reset_index(drop=True)
    previous = known.set_index("symbol")
    for column in CARRIED:
        before = out["symbol"].map(previous[column]) if column in previous else None
        if before is not None:
            out[column] = out[column].fillna(before)
        out[column] = out[column].astype(SECURITY_MASTER.field(column).pandas_dtype)
    gone = known[~known["symbol"].isin(out["symbol"])].copy()
    gone["delisting_date"] = gone["delisting_date"].fillna(day).astype("datetime64[ms]")
    frame = pd.concat([out[["region", "symbol", *columns]], gone[["region", "symbol", *columns]]],
                      ignore_index=True)
    for column in ("region", "symbol", "name", "exchange", "security_type", *DESCRIBED):
        frame[column] = frame[column].astype("string")
    return frame


@dataclass
class SecurityMasterResult:
    region: str
    as_of: dt.date
    frame: pd.DataFrame  # every interval stored after the write
    listed: int
    delisted_today: list[str]
    with_listing_date: int
    ipos: int
    diff: dict[str, int]
    fetch: FetchReport
    rejected: list[str] = field(default_factory=list)

    @property
    def current(self) -> pd.DataFrame:
        return latest(self.frame)


class TruncatedListError(RuntimeError):
    """A symbol list lacks so many listed symbols at once that it is more likely truncated than true."""


MIN_VANISHED_TO_REFUSE = 5  # a handful of delistings in a small region is plausible whatever the share


def _refuse_mass_vanishing(region: str, known: pd.DataFrame, listed: pd.DataFrame, limit: float) -> None:
    """Absence is not data: a list that drops many listed symbols at once is an incomplete answer, not a wave of
    delistings; closing all their intervals would drop them from every universe from today on."""
    if known.empty:
        return
    listed_before = known[known["delisting_date"].isna()]
    vanished = sorted(set(listed_before["symbol"]) - set(listed["symbol"]))
    share = len(vanished) / max(len(listed_before), 1)
    if len(vanished) >= MIN_VANISHED_TO_REFUSE and share > limit:
        raise TruncatedListError(
            f"{region}: the symbol list lacks {len(vanished)} of the {len(listed_before)} listed symbols "
            f"({share:.0%} > TICKLAKE_MAX_VANISHED_SHARE {limit:.0%}), e.g. {', '.join(vanished[:10])}; that looks "
            "like a truncated answer, so the security master was kept as it is. Re-run later; if these really "
            "were delisted, raise TICKLAKE_MAX_VANISHED_SHARE for one run.")


def fetch_listings(ctx: RunContext, region: str, *, listing_dates: bool = True) -> pd.DataFrame:
    """The region's symbol list (one /symbol/list call), with listing dates when `listing_dates`: what both
    `security_master` and `securities` are built from. Refused entries are logged; an empty list is refused."""
    listed = ctx.fetch(SECURITY_MASTER, ListingsQuery(region, "recent" if listing_dates else None))
    rejected = list(listed.attrs.get("rejected", []))
    if rejected:
        ctx.log(f"{region}: refused {len(rejected)} symbol-list entr(ies): {'; '.join(rejected[:5])}")
    if listed.empty:  # a source that suddenly lists nothing is an outage, not a mass delisting
        raise RuntimeError(f"{region}: the source returned no usable symbol list entries ({len(rejected)} "
                           "refused); the security master was kept")
    return listed


def refresh_security_master(ctx: RunContext, region: str, listed: pd.DataFrame | None = None
                            ) -> SecurityMasterResult:
    """Fold the source's current symbol list (and IPO listing dates) into the region's interval history."""
    listed = fetch_listings(ctx, region) if listed is None else listed
    as_of = ctx.local_date(region)
    values = {"region": region, "source": ctx.source_name}
    stored = ctx.lake.read(SECURITY_MASTER, **values)
    before = latest(stored)
    _refuse_mass_vanishing(region, before, listed, settings.max_vanished_share())
    with ctx.lake.reader() as con:
        descriptors = fetch_frame(con.execute(DESCRIPTORS_SQL, [region, ctx.source_name]))
    observed = observation(listed, stored, as_of, descriptors)
    written = ctx.write(SECURITY_MASTER, values, observed, as_of=as_of, complete=True)
    was_delisted = set(before.loc[before["delisting_date"].notna(), "symbol"]) if len(before) else set()
    now_delisted = set(observed.loc[observed["delisting_date"].notna(), "symbol"])
    return SecurityMasterResult(
        region, as_of, written.frame, len(listed), sorted(now_delisted - was_delisted),
        int(observed["listing_date"].notna().sum()), int(listed.attrs.get("ipos", 0)), written.diff,
        ctx.spent(), list(listed.attrs.get("rejected", [])))


@dataclass
class SecuritiesResult:
    region: str
    as_of: dt.date
    master: pd.DataFrame
    listed: int
    rejected: list[str]
    diff: dict[str, int]
    fetch: FetchReport


def refresh_securities(ctx: RunContext, region: str, listed: pd.DataFrame | None = None) -> SecuritiesResult:
    """Fold the source's current symbol list into `securities`, the klines universe (first and last seen, still
    listed); `listed` is the answer `security_master` was built from when both refresh in one run."""
    listed = fetch_listings(ctx, region, listing_dates=False) if listed is None else listed
    as_of = ctx.local_date(region)
    values = {"region": region, "source": ctx.source_name}
    old = ctx.lake.read(SECURITIES, **values)
    listing = listed[[c for c in LISTED if c in listed.columns]]
    master = merge_security_master(None if old is None else old.drop(columns=SECURITIES.lineage_columns),
                                   listing, as_of)
    written = ctx.write(SECURITIES, values, master)
    return SecuritiesResult(region, as_of, written.frame, len(listing), list(listed.attrs.get("rejected", [])),
                            written.diff, ctx.spent())


def merge_security_master(old: pd.DataFrame | None, listing: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """Fold today's symbol list into the master: new codes get first_seen, listed codes get last_seen=as_of.

    Codes missing from the list stay in the master (history needs them) with in_latest_list=False.
    """
    as_of_ts = pd.Timestamp(as_of).as_unit("ms")
    fresh = listing.assign(first_seen=as_of_ts, last_seen=as_of_ts, in_latest_list=True)
    if old is None or old.empty:
        return fresh.sort_values(["region", "symbol"]).reset_index(drop=True)
    carried = old[~old["symbol"].isin(listing["symbol"])].assign(in_latest_list=False)
    first = old.set_index("symbol")["first_seen"]
    fresh["first_seen"] = fresh["symbol"].map(first).fillna(as_of_ts).astype("datetime64[ms]")
    previous = old.set_index("symbol")["last_seen"]
    fresh["last_seen"] = np.maximum(fresh["symbol"].map(previous).fillna(as_of_ts).astype("datetime64[ms]"),
                                    as_of_ts)
    columns = list(fresh.columns)
    return pd.concat([fresh, carried[columns]], ignore_index=True).sort_values(["region", "symbol"]).reset_index(
        drop=True
    )
