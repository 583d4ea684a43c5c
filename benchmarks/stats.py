"""Pure helpers: medians, percentiles, call arithmetic and quota time. No I/O (unit-tested)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ticklake.sources.itick.wire import minimum_kline_calls


def median(values: Iterable[float]) -> float:
    data = list(values)
    if not data:
        raise ValueError("median of nothing")
    return statistics.median(data)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of nothing")
    if not 0 <= q <= 100:
        raise ValueError("q must be within 0..100")
    data = sorted(values)
    rank = (len(data) - 1) * q / 100
    lo, hi = math.floor(rank), math.ceil(rank)
    return data[lo] + (data[hi] - data[lo]) * (rank - lo)


def theoretical_min_calls(n_codes: int, n_sessions: int, *, batch_cap: int = 50, page: int = 1000,
                          reference_calls: int = 1) -> int:
    """ceil(symbols / batch_cap) * ceil(days / page) kline calls plus the reference (symbol list) calls."""
    return minimum_kline_calls(n_codes, n_sessions, max_codes=batch_cap, max_bars=page) + reference_calls


def quota_minutes(calls: int, calls_per_minute: int) -> float:
    """Wall time the plan's quota alone imposes on `calls` (steady state: calls / rate), in minutes."""
    if calls_per_minute <= 0:
        raise ValueError("calls_per_minute must be positive")
    return calls / calls_per_minute


def quota_table(calls: int, plans: Mapping[str, int], window_minutes: float = 60.0) -> dict[str, dict[str, Any]]:
    """Per plan: minutes the quota imposes and whether `calls` fit inside `window_minutes`."""
    return {
        plan: {
            "calls_per_minute": rate,
            "quota_minutes": round(quota_minutes(calls, rate), 3),
            "fits_window": calls <= rate * window_minutes,
        }
        for plan, rate in plans.items()
    }


def median_record(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Field-wise median of numeric fields over runs; other fields are taken from the first run."""
    if not runs:
        return {}
    out: dict[str, Any] = {}
    for key, first in runs[0].items():
        values = [r.get(key) for r in runs]
        if isinstance(first, bool) or not isinstance(first, int | float):
            out[key] = first
        elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            m = median(values)
            out[key] = int(m) if all(isinstance(v, int) for v in values) and float(m).is_integer() else m
        else:
            out[key] = first
    return out


def ratio(numerator: float, denominator: float) -> float | None:
    return None if not denominator else numerator / denominator


def union_seconds(intervals: Iterable[tuple[float, float]]) -> float:
    """Total length covered by (start, end) intervals, overlaps counted once (runs of one backfill may overlap)."""
    total, reach = 0.0, None
    for start, end in sorted((s, e) for s, e in intervals if e > s):
        if reach is None or start > reach:
            total += end - start
            reach = end
        elif end > reach:
            total += end - reach
            reach = end
    return total
