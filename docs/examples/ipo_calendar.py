"""The worked example of docs/adding-a-dataset.md: `ipo_calendar`, every IPO the source has reported per region.

In the product the three parts live where their kind lives; here they sit together so the example runs as it is
(tests/integration/test_adding_a_dataset.py materializes it against the simulator):

1. the dictionary entry: in a domain module of ticklake/dictionary/ (here reference_data.py), which registers it;
2. the query and the fetcher: the query in ticklake/sources/queries.py, the fetcher in
   ticklake/sources/itick/fetchers/ipo_calendar.py, and one line in that package's `FETCHERS`;
3. the asset: one line in definitions.py's asset list (and in a job's selection, to run it nightly).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from assets.factory import reference_asset
from ticklake.dictionary import Dataset, Field
from ticklake.dictionary.fields import BY_REGION, LINEAGE, REGION, SYMBOL
from ticklake.sources.itick.fetchers.listings import ipo_listing_dates

# 1. The dictionary entry: every field described once. The DDL, the Pandera schema, the Dagster column schema
#    and docs/tables.md are derived from it; "snapshot" keeps IPOs the source's rolling list no longer shows.
IPO_CALENDAR = Dataset(
    name="ipo_calendar",
    description="Every IPO the source has reported per region, with its exchange-local listing date.",
    domain="reference_data",
    fields=(REGION, SYMBOL, Field("listing_date", "date", "Exchange-local date of the first trading session"),
            *LINEAGE),
    key=("region", "symbol"),
    lake_keys=BY_REGION,
    sort_by=("region", "symbol"),
    write_mode="snapshot",
    example="SELECT symbol, listing_date FROM ipo_calendar WHERE region = 'JP' ORDER BY listing_date DESC",
)


# 2. The query (what a fetcher is asked) and the iTick fetcher: extract is the only I/O and returns the answer
#    untouched; transform is pure and returns the dictionary's columns (lineage is stamped by the write).
@dataclass(frozen=True)
class IpoQuery:
    region: str
    kind: str = "recent"


class IpoCalendarFetcher:
    dataset = IPO_CALENDAR

    def __init__(self, source: Any):  # an ITickSource
        self.client = source.client

    def extract(self, query: IpoQuery) -> list[dict[str, Any]]:
        return list(self.client.ipo(query.kind, query.region))

    def transform(self, query: IpoQuery, raw: list[dict[str, Any]]) -> pd.DataFrame:
        dates = ipo_listing_dates(raw, query.region)  # refuses an item it cannot read, naming it
        return dates.assign(region=pd.array([query.region] * len(dates), dtype="string"))[
            ["region", "symbol", "listing_date"]]


# 3. The asset: no step of its own, so it takes the library's one pipeline (query -> fetch -> validate -> write).
ipo_calendar = reference_asset(IPO_CALENDAR, query=IpoQuery)
