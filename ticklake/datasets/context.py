"""The run context: what every refresh of every dataset needs besides its query, passed once instead of argument by
argument. A refresh reads as the pipeline it is: build the query, `fetch` (the source's fetcher: extract, the only
I/O, then its pure transform), a pure step of the dataset's own, then `write` (stamp lineage, merge under the
dataset's write mode, validate, commit)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ticklake import markets
from ticklake.dictionary import Dataset
from ticklake.dictionary.frames import with_lineage
from ticklake.sources.contract import FetchReport, Source, fetch
from ticklake.storage import Lakehouse
from ticklake.storage.writes import Written, write


def _quiet(_message: str) -> None:
    pass


@dataclass(frozen=True)
class RunContext:
    """One run of one step: the lake it writes, the source it asks (None for a step that only derives from the lake),
    the run id and instant stamped on every row it stores, and where it tells its progress."""

    lake: Lakehouse
    run_id: str
    now: dt.datetime
    source: Source | None = None
    log: Callable[[str], None] = field(default=_quiet, compare=False)
    policy: Any = None  # the sources file's arbitration policy (ticklake.sources.declared); None: one source

    @property
    def source_name(self) -> str:
        return self._source().name

    def _source(self) -> Source:
        if self.source is None:
            raise RuntimeError("this step derives from the lake and has no source to fetch from")
        return self.source

    def local_date(self, region: str) -> dt.date:
        """The run's instant as the region's exchange-local date (what an observation is stamped with)."""
        return pd.Timestamp(self.now).tz_convert(markets.market(region).timezone).date()

    def fetch(self, dataset: Dataset, query: Any) -> pd.DataFrame:
        """The source's answer to `query` as `dataset` columns (its fetcher's extract, then transform)."""
        return fetch(self._source(), dataset, query)

    def spent(self) -> FetchReport:
        """What this run's fetches cost so far (calls, retries, quota wait)."""
        return self.source.spent() if self.source is not None else FetchReport()

    def stamped(self, frame: pd.DataFrame, source: str | None = None) -> pd.DataFrame:
        """`frame` with the lineage every stored row carries: its source, this run and its instant."""
        return with_lineage(frame, source or self.source_name, self.run_id, self.now)

    def write(self, dataset: Dataset, values: dict[str, str], frame: pd.DataFrame, *, stamped: bool = False,
              as_of: dt.date | None = None, complete: bool = True) -> Written:
        """Write one partition (`values`: its lake keys and source) under the dataset's write mode, in one commit;
        `frame` is stamped with this run's lineage unless it already carries it."""
        rows = frame if stamped else self.stamped(frame, values.get("source"))
        return write(self.lake, dataset, values, rows, run_id=self.run_id, now=self.now, as_of=as_of,
                     complete=complete)
