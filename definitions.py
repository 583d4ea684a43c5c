"""The ticklake code location: what `dagster dev` (via workspace.yaml) loads."""

from __future__ import annotations

import warnings

import dagster as dg

# Two beta APIs are used on purpose (single-run backfills; the region dimension mapping to `securities`);
# their notices would print on every CLI run and every run worker's start.
warnings.filterwarnings("ignore", message=r".*(backfill_policy|MultiToSingleDimensionPartitionMapping).*",
                        category=dg.BetaWarning)

from assets.klines import klines_daily  # noqa: E402
from assets.securities import securities  # noqa: E402
from automation.jobs import nightly_refresh, reference_refresh, warehouse_checks  # noqa: E402
from automation.schedules import SCHEDULES  # noqa: E402
from checks.asset_checks import ASSET_CHECKS  # noqa: E402
from resources.itick import ITickResource  # noqa: E402
from resources.storage import StorageResource  # noqa: E402


def build_definitions(itick: ITickResource | None = None, storage: StorageResource | None = None) -> dg.Definitions:
    """Definitions with resources from the environment, or the given ones (tests point them elsewhere)."""
    return dg.Definitions(
        assets=[securities, klines_daily],
        asset_checks=ASSET_CHECKS,
        jobs=[nightly_refresh, reference_refresh, warehouse_checks],
        schedules=SCHEDULES,
        resources={"itick": itick or ITickResource.from_env(), "storage": storage or StorageResource()},
        # One process per run: a step's work is seconds of Arrow/DuckDB, so a subprocess per step (Dagster's
        # multiprocess default) would cost more than the work. The steps of a run share the DuckDB writer anyway.
        executor=dg.in_process_executor,
    )


defs = build_definitions()
