"""Scenario runs by kind (what benchmarks.worker executes in a fresh interpreter)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks.scenarios import backfill, baseline, lakehouse, nightly, queries, userpath

RUNS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "backfill": backfill.run,
    "nightly": nightly.run,
    "queries": queries.run,
    "baseline": baseline.run,
    "userpath_cli": userpath.run_cli,
    "userpath_dev": userpath.run_dev,
    "lakehouse_queries": lakehouse.run_queries,
    "lakehouse_nightly": lakehouse.run_nightly,
    "lakehouse_nights": lakehouse.run_nights,
}
