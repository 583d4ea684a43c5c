"""The one asset shape the per-region reference datasets share, so each module says only what is its own: which
refresh runs, and which figures, preview and checks its result shows. What every refresh reports (rows, diff,
fetch cost, refused entries, source, lake address, preview, snapshot) is written here once."""

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import pandas as pd

from assets.clock import RunClock
from assets.metadata import dataset_asset, fetch_metadata, preview, snapshot_metadata
from assets.partitions import region_partitions
from resources.itick import ITickResource
from resources.storage import StorageResource
from ticklake import settings
from ticklake.datasets import pipeline
from ticklake.datasets.context import RunContext
from ticklake.datasets.pipeline import Refreshed
from ticklake.dictionary import Dataset
from ticklake.sources.contract import FetchReport
from ticklake.sources.declared import Policy, Sources
from ticklake.sources.itick.config import ITickConfig
from ticklake.storage.ddl import partition_address

MAX_REFUSED = 50


def run_context(context: dg.AssetExecutionContext, config: RunClock, storage: StorageResource,
                itick: ITickResource | None = None, *, asset: str, fetch: bool = True) -> RunContext:
    """The library's run context for one step: its lake, its source (tagged with the run and the asset, which the
    audit records per call; none with `fetch=False`, where `itick` only names the API in the sources file's
    policy), the run id and the run's instant, and the step's log."""
    run_id = context.run.run_id
    source = itick.source(tags={"run_id": run_id, "asset": asset}) if itick is not None and fetch else None
    api_name = itick.source_name if itick is not None else ITickConfig.from_env().source_name
    return RunContext(storage.lakehouse(), run_id, config.instant(), source, log=context.log.info,
                      policy=arbitration_policy(api_name))


def arbitration_policy(api_name: str) -> Policy | None:
    """The golden copy's policy from TICKLAKE_SOURCES; None without a sources file (one source: nothing to
    arbitrate). The file was already checked when the definitions loaded."""
    if settings.sources_file() is None:
        return None
    return Sources.from_env(api_name=api_name).policy


@dataclass
class Shown:
    """What one dataset's result shows on top of what every refresh reports."""

    rows: int  # dagster/row_count: the rows the partition holds after the write
    preview: pd.DataFrame
    figures: dict[str, dg.MetadataValue] = field(default_factory=dict)
    checks: Sequence[dg.AssetCheckResult] = ()
    diff_prefix: str = "rows"  # rows_added, ... (intervals_added, ... for the interval history)


def refresh_metadata(dataset: Dataset, ctx: RunContext, region: str, result: Any, shown: Shown,
                     fetch: FetchReport | None = None) -> dict[str, dg.MetadataValue]:
    """Every refresh's metadata: rows and the dataset's own figures, refused entries, the diff, the fetch cost, the
    source and lake address, a preview and the lake snapshot that holds it."""
    refused = list(getattr(result, "rejected", []) or [])
    return {
        "dagster/row_count": dg.MetadataValue.int(shown.rows),
        **shown.figures,
        **({"entries_refused": dg.MetadataValue.int(len(refused))} if hasattr(result, "rejected") else {}),
        **({"refused": dg.MetadataValue.text("\n".join(refused[:MAX_REFUSED]))} if refused else {}),
        **{f"{shown.diff_prefix}_{k}": dg.MetadataValue.int(v) for k, v in result.diff.items()},
        **fetch_metadata(result.fetch if fetch is None else fetch),
        "source": dg.MetadataValue.text(ctx.source_name),
        "lake_path": dg.MetadataValue.text(partition_address(dataset, {"region": region, "source": ctx.source_name})),
        "preview": preview(shown.preview),
        **snapshot_metadata(ctx.lake),
    }


def warn_refused(context: dg.AssetExecutionContext, region: str, refused: Sequence[str]) -> None:
    """Refused source entries are a warning in the step's log (and listed in the metadata)."""
    if refused:
        context.log.warning(f"{region}: refused {len(refused)} symbol-list entr(ies): " + "; ".join(refused[:20]))


def _show_rows(result: Refreshed) -> Shown:
    return Shown(len(result.frame), result.frame.tail(10))


def reference_asset(dataset: Dataset, refresh: Callable[[RunContext, str], Any] | None = None,
                    show: Callable[[Any], Shown] = _show_rows, *, query: Callable[[str], Any] | None = None,
                    check_specs: Sequence[dg.AssetCheckSpec] = (), deps: Sequence[Any] | None = None
                    ) -> dg.AssetsDefinition:
    """The asset of a per-region dataset refreshed from the source: `refresh(ctx, region)` is the library's whole
    pipeline (query, fetch, transform, validate, write); `show(result)` is what its page shows. A dataset with no
    step of its own gives only `query(region)` and takes the library's one pipeline (`ticklake.datasets.pipeline`).
    """
    if (refresh is None) == (query is None):
        raise ValueError(f"{dataset.name}: give either refresh(ctx, region) or query(region), not both or neither")
    if refresh is None:
        def refresh(ctx: RunContext, region: str) -> Refreshed:
            return pipeline.refresh(ctx, dataset, region, query(region))

    @dg.asset(name=dataset.name, partitions_def=region_partitions, deps=deps, check_specs=list(check_specs),
              **dataset_asset(dataset))
    def _refresh(context: dg.AssetExecutionContext, config: RunClock, itick: ITickResource,
                 storage: StorageResource) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        region = context.partition_key
        ctx = run_context(context, config, storage, itick, asset=dataset.name)
        result = refresh(ctx, region)
        warn_refused(context, region, getattr(result, "rejected", []))
        shown = show(result)
        yield dg.MaterializeResult(metadata=refresh_metadata(dataset, ctx, region, result, shown))
        yield from shown.checks

    return _refresh
