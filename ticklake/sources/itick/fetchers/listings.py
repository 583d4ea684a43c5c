"""iTick `security_master` observations: the symbol list (/symbol/list) with listing dates from /stock/ipo.

`/stock/ipo?type=recent` lists IPOs as a Spring page of {dt (listing date, epoch ms), sc (code), cn, ex, ...};
`dt` is turned into the exchange-local date. Wire field names live here only.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from ticklake import markets
from ticklake.dictionary.reference_data import SECURITY_MASTER
from ticklake.dictionary.symbols import symbol_problem
from ticklake.sources.itick.wire import listing_frame
from ticklake.sources.queries import ListingsQuery

if TYPE_CHECKING:
    from ticklake.sources.itick.source import ITickSource

logger = logging.getLogger(__name__)


class IpoPayloadError(ValueError):
    """An /stock/ipo item the parser cannot read; the message names the item and the field."""


def ipo_listing_dates(items: list[Any], region: str) -> pd.DataFrame:
    """(symbol, listing_date) per IPO item; `dt` epoch ms -> exchange-local date. A repeated code keeps its
    earliest date (a listing happens once)."""
    tz = markets.market(region).timezone
    codes, stamps = [], []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise IpoPayloadError(f"/stock/ipo {region} item {i}: not an object ({type(item).__name__})")
        code, stamp = item.get("sc"), item.get("dt")
        problem = symbol_problem(code) if code is not None else "no code (`sc`)"
        if problem is not None:
            raise IpoPayloadError(f"/stock/ipo {region} item {i}: {problem}")
        if isinstance(stamp, bool) or not isinstance(stamp, int | float):
            raise IpoPayloadError(f"/stock/ipo {region} item {i} ({code}): `dt` is not epoch ms: {stamp!r}")
        codes.append(code)
        stamps.append(int(stamp))
    local = pd.to_datetime(pd.Series(stamps, dtype="int64"), unit="ms", utc=True).dt.tz_convert(tz)
    frame = pd.DataFrame({"symbol": pd.array(codes, dtype="string"),
                          "listing_date": local.dt.tz_localize(None).dt.normalize().astype("datetime64[ms]")})
    return frame.sort_values("listing_date").drop_duplicates("symbol").reset_index(drop=True)


class SecurityMasterFetcher:
    """One observation of the region's master: today's symbol list with the listing dates the source reports."""

    dataset = SECURITY_MASTER

    def __init__(self, source: ITickSource):
        self.client = source.client

    def extract(self, query: ListingsQuery) -> dict[str, list[Any]]:
        return {"symbols": self.client.symbol_list(query.region),
                "ipos": list(self.client.ipo(query.ipo_kind, query.region)) if query.ipo_kind else []}

    def transform(self, query: ListingsQuery, raw: dict[str, list[Any]]) -> pd.DataFrame:
        """Listed symbols with name, exchange, type and listing date (null when the IPO list lacks it).
        Refused symbol-list entries are described in `frame.attrs["rejected"]`."""
        listed = listing_frame(raw["symbols"], query.region)
        dates = ipo_listing_dates(raw["ipos"], query.region)
        frame = listed.frame.merge(dates, on="symbol", how="left")
        frame["listing_date"] = frame["listing_date"].astype("datetime64[ms]")
        if listed.rejected:
            logger.warning("%s: refused %d symbol-list entr%s without a usable code: %s", query.region,
                           len(listed.rejected), "y" if len(listed.rejected) == 1 else "ies",
                           "; ".join(listed.rejected[:5]))
        frame.attrs["rejected"] = listed.rejected
        frame.attrs["ipos"] = len(dates)
        return frame

