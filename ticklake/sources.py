"""The source-adapter contract. Assets talk to a `MarketDataSource`, never to iTick directly, so another
source (a vendor file drop, say) plugs in without touching them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

import pandas as pd


@dataclass
class FetchReport:
    """What fetching cost, cumulative; sources, metadata and the benchmark all report this one record."""

    calls: int = 0  # logical calls
    attempts: int = 0  # HTTP requests sent (calls + retries)
    retries: int = 0
    rate_limited: int = 0  # 429 answers received
    errors: int = 0
    rows: int = 0
    waited_s: float = 0.0  # time spent waiting for the client-side quota

    def minus(self, other: FetchReport) -> FetchReport:
        return FetchReport(**{k: v - getattr(other, k) for k, v in asdict(self).items()})

    def plus(self, other: FetchReport) -> FetchReport:
        return FetchReport(**{k: v + getattr(other, k) for k, v in asdict(self).items()})


class MarketDataSource(Protocol):
    name: str  # recorded in the `source` lineage column
    max_codes_per_call: int
    max_bars_per_call: int

    def list_securities(self, region: str) -> pd.DataFrame:
        """Current symbol list: columns region, symbol, name, security_type, exchange."""
        ...

    def daily_bars(self, region: str, codes: Sequence[str], sessions: Sequence[dt.date]
                   ) -> Iterator[tuple[tuple[dt.date, ...], pd.DataFrame]]:
        """Yield (sessions covered, bars) page by page; bars have the klines_daily market columns.

        Pages arrive newest first; each covers a run of sessions for every code, so the caller can write
        and commit page by page.
        """
        ...

    def spent(self) -> FetchReport:
        """Cumulative cost of this source instance so far."""
        ...
