"""T+1 reconciliation: re-fetch a region's last sessions, compare with what is stored, record every difference.

Sources restate bars, publish them late and withdraw them. The nightly run fetches only what is new; this re-checks
the last K sessions of every code with the fewest calls (one batch call per `max_codes_per_call` codes: K bars
each), writes one `reconciliation_log` row per changed field (a correction is recorded once: its identity is the
row's key), and returns the months whose partitions must be materialized again to apply the corrections. Applying
them never loses the old values: klines_daily is versioned, so they move to klines_daily_history.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from ticklake.datasets.context import RunContext
from ticklake.datasets.klines import universe
from ticklake.dictionary import KLINES_DAILY
from ticklake.dictionary.operations import RECONCILIATION_LOG
from ticklake.sources.contract import FetchReport
from ticklake.sources.queries import BarsQuery
from ticklake.storage import Lakehouse
from ticklake.storage.frames import fetch_frame
from ticklake.storage.ledger import compare, ledger_rows

FIELDS = ("open", "high", "low", "close", "volume", "turnover")  # the values a restatement can change


def differences(stored: pd.DataFrame, fetched: pd.DataFrame, answered: set[str]) -> pd.DataFrame:
    """Pure: one row per (symbol, date, field) where the source's answer differs from what is stored.

    Only codes the source answered with bars count (absence is not data: a code left out says nothing). A bar
    the source has and nothing stored is `added` (a late bar); a stored bar of an answered code that the source
    no longer has is `withdrawn`."""
    keep = list(answered)
    return compare(stored[stored["symbol"].isin(keep)], fetched[fetched["symbol"].isin(keep)], list(FIELDS),
                   "trade_date", added=True)


def correction_key(region: str, month: str, rows: pd.DataFrame) -> str:
    """A stable identity for the corrections of one month: the same differences give the same key (a sensor's
    run key), so a correction is requested once, and a new difference makes a new request."""
    text = "\n".join(sorted(f"{r.symbol}|{r.date:%Y-%m-%d}|{r.field}|{r.source_value!r}" for r in rows.itertuples()))
    return f"{region}:{month}:{hashlib.sha256(text.encode()).hexdigest()[:16]}"


@dataclass
class ReconciliationResult:
    region: str
    sessions: list[dt.date]
    codes: int
    differences: pd.DataFrame  # every difference found now (recorded before or not)
    recorded: int  # ledger rows added by this reconciliation (differences seen for the first time)
    fetch: FetchReport = field(default_factory=FetchReport)

    @property
    def months(self) -> dict[str, pd.DataFrame]:
        """The differences by the month partition that applies them."""
        if self.differences.empty:
            return {}
        month = pd.to_datetime(self.differences["date"]).dt.strftime("%Y-%m")
        return {m: rows for m, rows in self.differences.groupby(month, sort=True)}


def stored_bars(lake: Lakehouse, *, region: str, source: str, sessions: Sequence[dt.date]) -> pd.DataFrame:
    with lake.reader() as con:
        return fetch_frame(con.execute(
            f"SELECT symbol, trade_date, {', '.join(FIELDS)} FROM klines_daily_by_source WHERE region = ? "
            "AND source = ? AND trade_date BETWEEN ? AND ?", [region, source, min(sessions), max(sessions)]))


def reconcile_klines(ctx: RunContext, region: str, *, sessions: Sequence[dt.date]) -> ReconciliationResult:
    """Re-fetch `sessions` of every code of the region, compare, and record what differs in reconciliation_log."""
    source, lake = ctx.source, ctx.lake
    start = source.spent()
    codes = universe(lake, region)
    sessions = sorted(sessions)
    query = BarsQuery(region, tuple(codes), tuple(sessions))
    fetcher = source.fetcher(KLINES_DAILY.name)
    frames = [fetcher.transform(query, page) for page in fetcher.extract(query)] if codes and sessions else []
    fetched = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["symbol", "trade_date", *FIELDS])
    stored = stored_bars(lake, region=region, source=source.name, sessions=sessions) if sessions else \
        fetched.iloc[:0]
    for frame in (stored, fetched):
        frame["symbol"] = frame["symbol"].astype(str)
        frame["trade_date"] = pd.to_datetime(frame["trade_date"]).astype("datetime64[ms]")
    if sessions:  # what ingest would quarantine is no restatement: bars off the window, keys sent twice differently
        inside = fetched["trade_date"].between(pd.Timestamp(sessions[0]), pd.Timestamp(sessions[-1]))
        fetched = fetched[inside]
        clash = fetched.duplicated(["symbol", "trade_date"], keep=False)  # identical copies collapsed on the wire
        if clash.any():  # ingest keeps the stored bar of such a key: neither restated nor withdrawn
            keys = pd.MultiIndex.from_frame(fetched.loc[clash, ["symbol", "trade_date"]])
            stored = stored[~pd.MultiIndex.from_frame(stored[["symbol", "trade_date"]]).isin(keys)]
            fetched = fetched[~clash]
    answered = set(fetched["symbol"].astype(str))  # codes with at least one bar in the window ingest would keep
    found = differences(stored, fetched, answered)
    recorded = record(ctx, found, region=region)
    if len(found):
        shown = "; ".join(f"{r.symbol} {r.date:%Y-%m-%d} {r.field} {r.stored_value:g} -> {r.source_value:g}"
                          for r in found.head(5).itertuples())
        ctx.log(f"{region}: {len(found)} difference(s) with the source over {sessions[0]}..{sessions[-1]} "
            f"({recorded} new): {shown}")
    return ReconciliationResult(region, list(sessions), len(codes), found, recorded, source.spent().minus(start))


def record(ctx: RunContext, found: pd.DataFrame, *, region: str) -> int:
    """Add the differences to reconciliation_log (upsert by the correction's identity); return how many are new."""
    if found.empty:
        return 0
    source = ctx.source_name
    rows = ledger_rows(KLINES_DAILY, found, region=region, source=source, run_id=ctx.run_id, now=ctx.now)
    return ctx.write(RECONCILIATION_LOG, {"region": region, "source": source}, rows, stamped=True).diff.get("added", 0)
