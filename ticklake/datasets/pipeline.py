"""The one pipeline a per-region dataset takes when it needs no step of its own: query -> fetch (the source's
fetcher: extract, the only I/O, then its pure transform) -> validate -> write, in one lake commit. Datasets with a
step of their own (the interval history, the calendar's cross-check) run the same stages with that step between
fetch and write; see docs/adding-a-dataset.md."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ticklake.datasets.context import RunContext
from ticklake.dictionary import Dataset
from ticklake.sources.contract import FetchReport


@dataclass
class Refreshed:
    """What one refresh of one region stored."""

    region: str
    frame: pd.DataFrame  # the region's rows of this source after the write
    diff: dict[str, int]  # added, changed, removed, unchanged
    fetch: FetchReport = field(default_factory=FetchReport)
    rejected: list[str] = field(default_factory=list)  # source entries the fetcher refused, each described


def refresh(ctx: RunContext, dataset: Dataset, region: str, query: Any) -> Refreshed:
    """Fetch `query` from the run's source and write the answer as the region's partition of `dataset`, under the
    dataset's write mode (validated against the dictionary before anything is committed)."""
    frame = ctx.fetch(dataset, query)
    written = ctx.write(dataset, {"region": region, "source": ctx.source_name}, frame)
    return Refreshed(region, written.frame, written.diff, ctx.spent(), list(frame.attrs.get("rejected", [])))
