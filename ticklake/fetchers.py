"""The fetcher contract: one fetcher per dataset and source, in three steps (OpenBB's provider-fetcher shape).

    query     -> what to fetch, a small frozen dataclass (region, codes, dates, a call budget)
    extract   -> the only I/O: the source's raw answer, untouched (wire field names and all)
    transform -> pure: raw answer -> a frame in the dataset's dictionary columns (without lineage)

The source-specific part (paths, wire field names, paging) lives in the source's own package
(ticklake/itick/fetchers/); the generic library only knows this contract, so a second source of the same
dataset is a second fetcher, and the write path (ticklake/store.py) never changes for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import pandas as pd

from ticklake.dictionary import Dataset

if TYPE_CHECKING:
    from ticklake.sources import Source

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
