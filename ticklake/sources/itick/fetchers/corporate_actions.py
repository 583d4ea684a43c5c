"""iTick `corporate_actions`: every split of a region from `/stock/split` (Spring pages, walked by the client).

Wire items are {d: ex-date as epoch ms (the exchange's local midnight), r: region, n: name, c: code,
v: ratio "from:to"}; only this module knows those names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from ticklake import markets
from ticklake.dictionary.reference_data import CORPORATE_ACTIONS
from ticklake.dictionary.symbols import shown, symbol_problem
from ticklake.sources.queries import SplitsQuery
from ticklake.sources.splits import SplitRowError, split_frame

if TYPE_CHECKING:
    from ticklake.sources.itick.source import ITickSource


class CorporateActionsFetcher:
    dataset = CORPORATE_ACTIONS

    def __init__(self, source: ITickSource):
        self.client = source.client

    def extract(self, query: SplitsQuery) -> list[Any]:
        return list(self.client.splits(query.region))

    def transform(self, query: SplitsQuery, raw: list[Any]) -> pd.DataFrame:
        return splits_frame(raw, query.region)


def splits_frame(items: list[Any], region: str) -> pd.DataFrame:
    """Pure: /stock/split items -> corporate_actions columns. Every item that cannot be stored is named (its
    position, code and fields) in one SplitRowError; a region's splits are stored all or not at all."""
    timezone = markets.market(region).timezone
    rows, problems = [], []
    for i, item in enumerate(items):
        where = f"{region} /stock/split item {i}"
        if not isinstance(item, dict):
            problems.append(f"{where}: not an object ({type(item).__name__})")
            continue
        code, millis = item.get("c"), item.get("d")
        where = f"{where} ({shown(code)}, d={millis!r}, v={shown(item.get('v'))})"
        problem = symbol_problem(code) if isinstance(code, str) else "no code `c`"
        if problem is None and (isinstance(millis, bool) or not isinstance(millis, int | float)):
            problem = "no ex-date `d` (epoch ms)"
        if problem is not None:
            problems.append(f"{where}: {problem}")
            continue
        ex_date = pd.Timestamp(int(millis), unit="ms", tz="UTC").tz_convert(timezone).date()
        rows.append({"region": region, "symbol": code, "ex_date": ex_date, "ratio": item.get("v"),
                     "name": item.get("n"), "row": where})
    try:
        frame = split_frame(rows)
    except SplitRowError as exc:
        problems.append(str(exc))
        frame = None
    if problems:
        raise SplitRowError(f"{region}: /stock/split sent rows that cannot be stored; nothing was written:\n"
                            + "\n".join(problems[:50]))
    return frame
