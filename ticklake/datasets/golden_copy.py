"""The golden copy in the lake: re-derive the `klines_daily` bars of some months from every source's raw bars.

A month's golden bars are always derived from all of `klines_daily_by_source` for that month (the fresh rows of
the source being written taken from memory), so the order sources arrive in never matters, and a late or corrected
file re-derives exactly the months it touches. The golden partition, its history (the versions it supersedes), the
ledger rows of what changed and the exception queue commit in the caller's one transaction: `stage`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from ticklake.datasets.context import RunContext
from ticklake.datasets.golden import SINGLE, Arbitration, Policy, arbitrate, single_source
from ticklake.dictionary import KLINES_DAILY, month_bounds
from ticklake.dictionary.core import GOLDEN
from ticklake.dictionary.frames import with_lineage
from ticklake.dictionary.market_data import KLINES_DAILY_BY_SOURCE
from ticklake.dictionary.operations import GOLDEN_EXCEPTIONS
from ticklake.dictionary.schemas import validate
from ticklake.sources.declared import DEFAULT_PRICE_TOLERANCE_BPS, DEFAULT_VOLUME_TOLERANCE_PCT
from ticklake.storage import Lakehouse
from ticklake.storage.frames import fetch_frame, from_arrow, to_arrow
from ticklake.storage.write_modes import carry_forward_lineage, contents
from ticklake.storage.writes import Part, Staged, load, stage


@dataclass(frozen=True)
class FirstListed:
    """The policy without a sources file: one source, or every source by name (nothing to prefer)."""

    def order(self, region: str, field: str) -> tuple[str, ...]:
        return ()

    def tolerance(self, field: str) -> float:  # the sources file's defaults
        return DEFAULT_VOLUME_TOLERANCE_PCT / 100 if field == "volume" else DEFAULT_PRICE_TOLERANCE_BPS / 10_000


@dataclass
class GoldenMonth:
    """One month's golden partition, ready to stage, and how its bars were decided."""

    region: str
    month: str
    part: Part
    counts: dict[str, int]
    exceptions: pd.DataFrame


def raw_bars(frame: pd.DataFrame, *, received_at: dt.datetime, file: str | None = None) -> pd.DataFrame:
    """An API answer as raw-layer rows: no split or dividend events, no file, received at the run's instant."""
    n = len(frame)
    stamp = pd.Series([pd.Timestamp(received_at).tz_convert("UTC")] * n, index=frame.index,
                      dtype="datetime64[ms, UTC]")
    return frame.assign(split_ratio=np.nan, dividend=np.nan,
                        file=pd.array([file] * n, dtype="string"), received_at=stamp)


def _policy(ctx: RunContext) -> Policy:
    return ctx.policy if ctx.policy is not None else FirstListed()


@dataclass(frozen=True)
class Known:
    """What a golden derivation needs from the lake beyond one source's new rows, read once for all the months of
    a run (two queries instead of two per month): which sources hold raw rows in each month, and the overrides in
    force. A month only one source has and no override touches needs no other read."""

    sources: dict[str, set[str]]  # month -> sources with raw rows there
    overrides: pd.DataFrame  # the region's active overrides over the span
    golden: set[str]  # months holding golden bars (a month without is not read back before it is written)


KNOWN_SOURCES_SQL = """
SELECT DISTINCT strftime(trade_date, '%Y-%m') AS month, source FROM klines_daily_by_source
WHERE region = $region AND trade_date BETWEEN $first AND $last
"""


KNOWN_GOLDEN_SQL = """
SELECT DISTINCT strftime(trade_date, '%Y-%m') FROM klines_daily
WHERE region = $region AND trade_date BETWEEN $first AND $last
"""


def known(ctx: RunContext, region: str, first: dt.date, last: dt.date) -> Known:
    """`Known` for the months from `first`'s through `last`'s."""
    first, last = month_bounds(f"{first:%Y-%m}")[0], month_bounds(f"{last:%Y-%m}")[1]
    with ctx.lake.reader() as con:
        rows = con.execute(KNOWN_SOURCES_SQL, {"region": region, "first": first, "last": last}).fetchall()
        golden = {m for (m,) in con.execute(KNOWN_GOLDEN_SQL, {"region": region, "first": first, "last": last}
                                             ).fetchall()}
    sources: dict[str, set[str]] = {}
    for month, source in rows:
        sources.setdefault(month, set()).add(source)
    return Known(sources, active_overrides(ctx.lake, region, first, last, on=ctx.local_date(region)), golden)


def golden_part(ctx: RunContext, region: str, month: str, fresh: Mapping[str, pa.Table] | None = None, *,
                missing_codes: int = 0, overriding: pd.DataFrame | None = None,
                prefetched: Known | None = None) -> GoldenMonth:
    """The golden partition of (`region`, `month`) from every source's raw bars, `fresh` (source -> its new rows
    of the month) replacing what those sources stored. `overriding`: golden_overrides rows being committed with
    this partition (made, revoked or expired), which replace the stored rows with the same override_id.
    `prefetched`: what the lake holds for the run's months (`known`), read once instead of per month."""
    lake = ctx.lake
    fresh = dict(fresh or {})
    first, last = month_bounds(month)
    today = ctx.local_date(region)
    others = None if prefetched is None else prefetched.sources.get(month, set()) - set(fresh)
    if others is not None and not others:  # nobody else said anything about this month
        stored = KLINES_DAILY_BY_SOURCE.arrow_schema.empty_table()
    else:
        stored = lake.read_partitions(KLINES_DAILY_BY_SOURCE, [{"region": region, "month": month}])
    if fresh and stored.num_rows:
        keep = ~np.isin(stored.column("source").to_numpy(zero_copy_only=False).astype(str), list(fresh))
        stored = stored.filter(pa.array(keep))
    tables = [t for t in (stored, *fresh.values()) if t.num_rows]
    bars = from_arrow(KLINES_DAILY_BY_SOURCE, pa.concat_tables(tables)) if tables else \
        from_arrow(KLINES_DAILY_BY_SOURCE, KLINES_DAILY_BY_SOURCE.arrow_schema.empty_table())
    if prefetched is None:
        overrides = active_overrides(lake, region, first, last, on=today)
    else:
        days = pd.to_datetime(prefetched.overrides["trade_date"])
        overrides = prefetched.overrides[days.between(pd.Timestamp(first), pd.Timestamp(last)).to_numpy(bool)]
    if overriding is not None and len(overriding):
        days, ends = pd.to_datetime(overriding["trade_date"]), pd.to_datetime(overriding["expires_on"])
        live = overriding[((overriding["region"] == region) & (overriding["status"] == "active")
                           & days.between(pd.Timestamp(first), pd.Timestamp(last))
                           & (ends.isna() | (ends > pd.Timestamp(today)))).to_numpy(dtype=bool)]
        kept = overrides[~overrides["override_id"].isin(overriding["override_id"])] if len(overrides) else None
        parts = [f for f in (kept, live[list(overrides.columns)]) if f is not None and len(f)]
        overrides = pd.concat(parts, ignore_index=True) if parts else overrides.iloc[:0]
    several = bars["source"].nunique() > 1
    files = bars["file"].notna().any()
    if several or files or len(overrides):
        splits = reference_splits(lake, region, first, last) if files else None
        arbitration = arbitrate(bars, _policy(ctx), region, overrides=overrides, splits=splits)
    else:  # the default: one API source, nothing to compare
        golden = single_source(bars)
        arbitration = Arbitration(golden, arbitrate(bars.iloc[:0], _policy(ctx), region).exceptions,
                                  {SINGLE: len(golden)})
    values = {"region": region, "month": month, "source": GOLDEN}
    previous = None if prefetched is not None and month not in prefetched.golden else \
        lake.read_table(KLINES_DAILY, **values)
    frame = _stamped(ctx, arbitration.golden)
    if previous is not None:
        frame, _ = carry_forward_lineage(frame, from_arrow(KLINES_DAILY, previous), KLINES_DAILY)
    if several or files or len(overrides):  # one source's bars as it stored them were validated on their way in
        validate(frame, KLINES_DAILY)
    part = Part(values, to_arrow(KLINES_DAILY, frame), missing_codes=missing_codes, previous=previous)
    return GoldenMonth(region, month, part, arbitration.counts, arbitration.exceptions)


def _stamped(ctx: RunContext, golden: pd.DataFrame) -> pd.DataFrame:
    """The run's lineage on every golden bar; `source` stays each bar's winner."""
    winners = golden["source"]
    out = with_lineage(golden.drop(columns=["source"]), GOLDEN, ctx.run_id, ctx.now)
    out["source"] = pd.array(winners.astype(str), dtype="string")
    return out[KLINES_DAILY.columns]


def golden_stage(ctx: RunContext, region: str, months: Sequence[GoldenMonth]) -> Staged:
    """The golden partitions of `months` (with their history and ledger rows) and the exception queue's changes,
    for the caller's one commit."""
    if not months:
        return Staged([])
    staged = stage(ctx.lake, KLINES_DAILY, [m.part for m in months], run_id=ctx.run_id, now=ctx.now)
    queue = exception_part(ctx, region, months)
    if queue is not None:
        staged = Staged(stage(ctx.lake, GOLDEN_EXCEPTIONS, [queue], run_id=ctx.run_id, now=ctx.now).loads
                        + staged.loads)
    return staged


def exception_part(ctx: RunContext, region: str, months: Sequence[GoldenMonth]) -> Part | None:
    """The region's exception queue after these months were arbitrated: new disagreements open, those found again
    keep when they were opened, and open ones the arbitration no longer finds (the sources agree now, or an
    override decided) change status. None when nothing changed."""
    values = {"region": region, "source": GOLDEN}
    previous = ctx.lake.read_table(GOLDEN_EXCEPTIONS, **values)
    stored = None if previous is None else from_arrow(GOLDEN_EXCEPTIONS, previous)
    now = pd.Timestamp(ctx.now).tz_convert("UTC")
    found = [m.exceptions for m in months if len(m.exceptions)]
    fresh = pd.concat(found, ignore_index=True) if found else None
    key = ["symbol", "trade_date", "field"]
    rows = []
    if fresh is not None:
        fresh = fresh.assign(trade_date=pd.to_datetime(fresh["trade_date"]).astype("datetime64[ms]"))
        fresh["opened_at"] = now
        fresh["updated_at"] = now
        if stored is not None and len(stored):
            before = stored.set_index(key)
            at = pd.MultiIndex.from_frame(fresh[key])
            known = at.isin(before.index)
            was = before.reindex(at)["status"].fillna("").astype(str).to_numpy()
            same_status = known & (was == fresh["status"].astype(str).to_numpy())
            fresh.loc[known, "opened_at"] = before.reindex(at[known])["opened_at"].to_numpy()
            fresh.loc[same_status, "updated_at"] = before.reindex(at[same_status])["updated_at"].to_numpy()
        rows.append(fresh)
    if stored is not None and len(stored):
        spans = [month_bounds(m.month) for m in months]
        dates = pd.to_datetime(stored["trade_date"])
        inside = np.zeros(len(stored), dtype=bool)
        for first, last in spans:
            inside |= dates.between(pd.Timestamp(first), pd.Timestamp(last)).to_numpy()
        still = (pd.MultiIndex.from_frame(stored[key]).isin(pd.MultiIndex.from_frame(fresh[key]))
                 if fresh is not None else np.zeros(len(stored), dtype=bool))
        gone = stored[inside & ~still & (stored["status"] == "open").to_numpy()]
        if len(gone):
            rows.append(gone.assign(status="closed", updated_at=now))
    if not rows:
        return None
    incoming = with_lineage(pd.concat(rows, ignore_index=True)[[c for c in GOLDEN_EXCEPTIONS.columns
                                                                 if c not in GOLDEN_EXCEPTIONS.lineage_columns]],
                            GOLDEN, ctx.run_id, ctx.now)
    for column in ("opened_at", "updated_at"):
        incoming[column] = pd.to_datetime(incoming[column], utc=True).astype("datetime64[ms, UTC]")
    incoming["override_id"] = pd.array(incoming["override_id"].where(incoming["override_id"].notna(), None),
                                       dtype="string")
    merged, diff = contents(GOLDEN_EXCEPTIONS, stored, incoming)
    if not (diff.get("added") or diff.get("changed")):
        return None
    validate(merged, GOLDEN_EXCEPTIONS)
    return Part(values, to_arrow(GOLDEN_EXCEPTIONS, merged), previous=previous)


ACTIVE_OVERRIDES_SQL = """
SELECT override_id, symbol, trade_date, field, chosen_source, value FROM golden_overrides
WHERE region = $region AND status = 'active' AND trade_date BETWEEN $first AND $last
  AND (expires_on IS NULL OR expires_on > $today)
ORDER BY created_at, override_id
"""


def active_overrides(lake: Lakehouse, region: str, first: dt.date, last: dt.date, *, on: dt.date) -> pd.DataFrame:
    """The overrides in force on `on` for the region's bars between `first` and `last` (the latest one last)."""
    with lake.reader() as con:
        return fetch_frame(con.execute(ACTIVE_OVERRIDES_SQL, {"region": region, "first": first, "last": last,
                                                              "today": on}))


SPLITS_SQL = """
SELECT symbol, ex_date, ratio_to / ratio_from AS split_ratio FROM corporate_actions
WHERE region = $region AND action = 'split' AND ex_date BETWEEN $first AND $last
"""


def reference_splits(lake: Lakehouse, region: str, first: dt.date, last: dt.date) -> pd.DataFrame:
    """The region's splits in the reference data (every source's), as the ratio a vendor file states."""
    with lake.reader() as con:
        return fetch_frame(con.execute(SPLITS_SQL, {"region": region, "first": first, "last": last}))



def rederive(ctx: RunContext, region: str, months: Sequence[str]) -> list[GoldenMonth]:
    """Re-derive and commit the golden bars of `months` from what every source stored (a late or corrected file,
    an override made or expired), in one commit; the months' arbitration results."""
    derived = [golden_part(ctx, region, month) for month in sorted(set(months))]
    load(ctx.lake, golden_stage(ctx, region, derived))
    return derived
