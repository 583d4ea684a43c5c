"""iTick `klines_daily`: the batch kline endpoint, streamed page by page (a page is a run of up to 1,000 sessions
of every code, newest first).

The same contract as every fetcher, with a stream for an answer: `extract` yields one `BarsPage` at a time, so a
run commits month by month while the next page is fetched and memory is bounded by a page. The wire answers are
parsed where they are fetched (in the fetch worker processes when a backfill is big, so JSON decoding uses every
core); `transform` takes one page to the dictionary's columns.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pandas as pd

from ticklake.dictionary import KLINES_DAILY
from ticklake.sources.contract import BarsPage
from ticklake.sources.queries import BarsQuery

if TYPE_CHECKING:
    from ticklake.sources.itick.source import ITickSource


class KlinesDailyFetcher:
    dataset = KLINES_DAILY

    def __init__(self, source: ITickSource):
        self.source = source

    def extract(self, query: BarsQuery) -> Iterator[BarsPage]:
        """Pages newest first, with the fewest calls the plan allows; codes the source left out are asked for once
        more and, if still missing, reported in `BarsPage.missing` (their stored bars are kept)."""
        return self.source.daily_bars(query.region, query.codes, query.sessions)

    def transform(self, query: BarsQuery, raw: BarsPage) -> pd.DataFrame:
        """One page's bars in the dictionary's columns, lineage excepted."""
        return raw.bars
