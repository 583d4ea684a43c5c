"""The source-adapter contract. Assets talk to a `Source`, never to iTick directly, so another source (a vendor
file drop, say) plugs in without touching them: a source names itself, counts what it spent, and hands out one
fetcher per dataset it provides (`Fetcher`, below). Daily bars take the same contract with a stream for an
answer: their `extract` yields one `BarsPage` at a time, so a run commits month by month as pages arrive.

The fetcher contract: one fetcher per dataset and source, in three steps (OpenBB's provider-fetcher shape).

    query     -> what to fetch, a small frozen dataclass (region, codes, dates, a call budget)
    extract   -> the only I/O: the source's raw answer, untouched (wire field names and all)
    transform -> pure: raw answer -> a frame in the dataset's dictionary columns (without lineage)

The source-specific part (paths, wire field names, paging) lives in the source's own package
(ticklake/sources/itick/fetchers/); the generic library only knows this contract, so a second source of the same
dataset is a second fetcher, and the write path (ticklake.storage.writes) never changes for it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any, Generic, Protocol, TypeVar

import pandas as pd

from ticklake.dictionary import Dataset

QueryT = TypeVar("QueryT", contravariant=True)
RawT = TypeVar("RawT")


class UnsupportedDatasetError(LookupError):
    """The source has no fetcher for a dataset; the message names the ones it has."""


class Fetcher(Protocol, Generic[QueryT, RawT]):
    dataset: Dataset

    def extract(self, query: QueryT) -> RawT:
        """Ask the source; return its answer as it came (the only I/O of a fetch)."""
        ...

    def transform(self, query: QueryT, raw: RawT) -> pd.DataFrame:
        """Pure: the raw answer as a frame of the dataset's columns, lineage columns excepted."""
        ...


def fetch(source: Source, dataset: Dataset, query: Any) -> pd.DataFrame:
    """`dataset` from `source` for `query`: its fetcher's extract then transform (callers that need no access to
    the raw answer)."""
    fetcher = source.fetcher(dataset.name)
    return fetcher.transform(query, fetcher.extract(query))


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


@dataclass
class BarsPage:
    """One page of daily bars: the requested codes over a run of consecutive sessions.

    Absence is not data. Only `answered` codes may have their stored bars for `sessions` replaced (the ingest
    layer also keeps stored bars of an answered code that got no bar at all in the page, and reports it); a
    `missing` code (left out of the answer, or sent as null, even
    after asking again) keeps whatever is stored for it. Codes the source sent without being asked are dropped
    before the page is built and only counted in `unrequested`.
    """

    sessions: tuple[dt.date, ...]  # the requested sessions this page covers, oldest first
    bars: pd.DataFrame  # klines_daily market columns, only answered codes, only `sessions`
    answered: frozenset[str]
    missing: frozenset[str] = frozenset()
    unrequested: frozenset[str] = frozenset()
    refused: pd.DataFrame | None = None  # bars refused before validation (a value not a number), rule and reason


class Source(Protocol):
    name: str  # recorded in every row's `source` column and naming its lake files (`<name>.parquet`)

    def fetcher(self, dataset: str) -> Fetcher[Any, Any]:
        """The fetcher of `dataset` (UnsupportedDatasetError when this source does not provide it)."""
        ...

    def spent(self) -> FetchReport:
        """Cumulative cost of this source instance so far."""
        ...

