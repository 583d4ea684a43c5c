"""The golden copy's exception queue as an asset check, on every step that re-derives golden bars (`klines_daily`
and each vendor's raw asset), so the page of whichever step ran last tells the queue as it is now."""

from __future__ import annotations

import dagster as dg

from ticklake.quality.lake_checks import open_exceptions
from ticklake.storage import Lakehouse

EXCEPTIONS_CHECK = "golden_exceptions_open"


def exceptions_check_spec(asset: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(EXCEPTIONS_CHECK, asset=asset,
                             description="No disagreement between sources is waiting for a person: open rows of "
                                         "golden_exceptions in the run's regions (a warning with the count and the "
                                         "first ten; `ticklake override` resolves one)")


def exceptions_check(lake: Lakehouse, regions: list[str]) -> dg.AssetCheckResult:
    with lake.reader() as con:
        rows = open_exceptions(con, regions)
    shown = [f"{r} {s} {d} {f}: {v} (rel diff {x:.4g}; golden takes {c})" for r, s, d, f, v, x, c in rows[:10]]
    return dg.AssetCheckResult(
        check_name=EXCEPTIONS_CHECK, passed=not rows, severity=dg.AssetCheckSeverity.WARN,
        metadata={"open_exceptions": dg.MetadataValue.int(len(rows)),
                  "first_ten": dg.MetadataValue.text("\n".join(shown) or "none"),
                  "query": dg.MetadataValue.text("SELECT * FROM golden_exceptions WHERE status = 'open'")},
    )
