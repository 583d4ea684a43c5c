"""Fundamentals within a call budget, FX to USD, and the valuation analysts query.

`/stock/info` costs one call per symbol, so a region's snapshot is refreshed over several runs: `plan_refresh`
(pure) picks the stalest symbols that fit the run's call budget. `refresh_fundamentals` and `refresh_fx` fetch
and store through the generic write path; `valuation_frame` (pure) derives `valuation_daily`, and
`derive_valuation` stores it. `market_cap_misses` is the cross-domain check against the stored bars.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ticklake import markets
from ticklake.datasets.context import RunContext
from ticklake.dictionary import SECURITIES
from ticklake.dictionary.analytics import PE_BAND_MIN_SNAPSHOTS, PE_BAND_YEARS, VALUATION_DAILY
from ticklake.dictionary.fundamentals import FUNDAMENTALS_DAILY, FX_DAILY
from ticklake.sources.contract import FetchReport
from ticklake.sources.queries import FxQuery, StockInfoQuery
from ticklake.storage import Lakehouse
from ticklake.storage.frames import fetch_frame

FX_LOOKBACK_DAYS = 10  # FX before the first snapshot, so "the last close on or before" exists over a holiday
FX_OVERLAP_DAYS = 7  # FX days fetched again each run (a late or restated close replaces the stored one)
MARKET_CAP_TOLERANCE = 0.01  # |market_cap / (close x shares) - 1| above this is a miss
MAX_BAR_AGE_DAYS = 10  # a bar older than this before as_of cannot verify a snapshot (klines not run yet)


def local_date(region: str, now: dt.datetime) -> dt.date:
    """The exchange-local date at `now` (the as_of of a snapshot fetched then)."""
    return pd.Timestamp(now).tz_convert(markets.market(region).timezone).date()


# -- the budget planner (pure) -------------------------------------------------------------------------------
@dataclass(frozen=True)
class RefreshPlan:
    refresh: tuple[str, ...]  # fetched this run, stalest first
    skipped: tuple[str, ...]  # due but over the budget: left for a later run, stalest first
    fresh: tuple[str, ...]  # already refreshed on this as_of: nothing to gain
    budget: int


def plan_refresh(codes: Iterable[str], last_as_of: Mapping[str, dt.date | None], as_of: dt.date,
                 budget: int) -> RefreshPlan:
    """The codes to refresh within `budget` calls: never-fetched ones first (by code), then the oldest as_of
    (ties by code). A code refreshed on `as_of` already is fresh and costs nothing."""
    if budget < 0:
        raise ValueError(f"a call budget cannot be negative, got {budget}")
    known = {c: d for c, d in last_as_of.items() if d is not None}
    unique = sorted(set(codes))
    fresh = tuple(c for c in unique if c in known and known[c] >= as_of)
    due = sorted((c for c in unique if c not in fresh), key=lambda c: (c in known, known.get(c, dt.date.min), c))
    return RefreshPlan(tuple(due[:budget]), tuple(due[budget:]), fresh, budget)


@dataclass(frozen=True)
class Staleness:
    """How stale a region's snapshot is: symbols never fetched, and the oldest latest-as_of of the others."""

    never_fetched: int
    oldest_as_of: dt.date | None
    days: int | None  # as_of - oldest_as_of

    @property
    def order(self) -> tuple[int, int]:
        """Compares runs: fewer never-fetched symbols first, then fewer days (lower is fresher)."""
        return self.never_fetched, self.days or 0


def staleness(codes: Iterable[str], last_as_of: Mapping[str, dt.date | None], as_of: dt.date) -> Staleness:
    dates = [last_as_of.get(c) for c in set(codes)]
    known = [d for d in dates if d is not None]
    oldest = min(known) if known else None
    return Staleness(len(dates) - len(known), oldest, (as_of - oldest).days if oldest else None)


# -- fundamentals_daily ---------------------------------------------------------------------------------------
@dataclass
class FundamentalsResult:
    region: str
    as_of: dt.date
    plan: RefreshPlan
    before: Staleness
    after: Staleness
    rows: pd.DataFrame  # the snapshots stored this run
    unknown: list[str] = field(default_factory=list)  # codes the source did not know (nothing stored)
    diff: dict[str, int] = field(default_factory=dict)
    fetch: FetchReport = field(default_factory=FetchReport)


def listed_codes(lake: Lakehouse, region: str) -> list[str]:
    """Codes the region's security master lists now (a delisted symbol's profile no longer changes)."""
    return [str(c) for c in lake.distinct(SECURITIES, "symbol", region=region, in_latest_list=True)]


def last_snapshots(lake: Lakehouse, dataset_region: str, source: str) -> dict[str, dt.date]:
    """symbol -> latest as_of stored by `source` in the region."""
    with lake.reader() as con:
        rows = con.execute("SELECT symbol, max(as_of) FROM fundamentals_daily WHERE region = ? AND source = ? "
                           "GROUP BY symbol", [dataset_region, source]).fetchall()
    return {symbol: day for symbol, day in rows}


def refresh_fundamentals(ctx: RunContext, region: str, *, codes: Sequence[str], budget: int) -> FundamentalsResult:
    """Refresh the stalest `budget` symbols' snapshots (one call each), dated the run's exchange-local date."""
    source = ctx.source
    as_of = local_date(region, ctx.now)
    last = last_snapshots(ctx.lake, region, source.name)
    plan = plan_refresh(codes, last, as_of, budget)
    before = staleness(codes, last, as_of)
    start = source.spent()
    fetcher = source.fetcher(FUNDAMENTALS_DAILY.name)
    raw = fetcher.extract(StockInfoQuery(region, plan.refresh, as_of)) if plan.refresh else {}
    frame = fetcher.transform(StockInfoQuery(region, plan.refresh, as_of), raw)
    unknown = sorted(c for c, info in raw.items() if not info)
    if unknown:
        ctx.log(f"{region}: the source does not know {len(unknown)} code(s) of the security master: {unknown[:10]}")
    diff: dict[str, int] = {}
    if len(frame):
        values = {"region": region, "month": f"{as_of:%Y-%m}", "source": source.name}
        diff = ctx.write(FUNDAMENTALS_DAILY, values, frame).diff
    after = staleness(codes, {**last, **dict.fromkeys(frame["symbol"].astype(str), as_of)}, as_of)
    return FundamentalsResult(region, as_of, plan, before, after, frame, unknown, diff,
                              source.spent().minus(start))


# -- fx_daily ---------------------------------------------------------------------------------------------------
@dataclass
class FxResult:
    region: str
    currencies: list[str]
    first: dt.date | None
    last: dt.date
    rows: pd.DataFrame
    months: list[str] = field(default_factory=list)
    fetch: FetchReport = field(default_factory=FetchReport)


def region_currencies(lake: Lakehouse, region: str) -> list[str]:
    """Every currency the region's snapshots name, plus the market's own (for symbols with none yet)."""
    with lake.reader() as con:
        found = {c for (c,) in con.execute("SELECT DISTINCT currency FROM fundamentals_daily WHERE region = ? "
                                           "AND currency IS NOT NULL", [region]).fetchall()}
    return sorted(found | {markets.market(region).currency})


def fx_window(currencies: Sequence[str], stored_last: Mapping[str, dt.date], first_snapshot: dt.date | None,
              today: dt.date) -> dt.date:
    """The first FX day to fetch: a few days before the latest stored close of each currency, and for a currency
    with none, a little before the region's first snapshot (or today)."""
    starts = [stored_last[c] - dt.timedelta(days=FX_OVERLAP_DAYS) if c in stored_last
              else (first_snapshot or today) - dt.timedelta(days=FX_LOOKBACK_DAYS) for c in currencies]
    return min(starts) if starts else today


def refresh_fx(ctx: RunContext, region: str) -> FxResult:
    """Fetch the USD rates of every non-USD currency the region uses, from where stored rows end to today."""
    source, lake = ctx.source, ctx.lake
    today = pd.Timestamp(ctx.now).tz_convert("UTC").date()
    currencies = [c for c in region_currencies(lake, region) if c != "USD"]
    start = source.spent()
    empty = FX_DAILY.arrow_schema.empty_table().to_pandas()
    if not currencies:
        return FxResult(region, [], None, today, empty)
    with lake.reader() as con:
        stored = dict(con.execute("SELECT currency, max(trade_date) FROM fx_daily WHERE region = ? AND source = ? "
                                  "GROUP BY currency", [region, source.name]).fetchall())
        (first_snapshot,) = con.execute("SELECT min(as_of) FROM fundamentals_daily WHERE region = ?",
                                        [region]).fetchone()
    first = fx_window(currencies, stored, first_snapshot, today)
    query = FxQuery(region, tuple(currencies), first, today)
    frame = ctx.fetch(FX_DAILY, query)
    missing = sorted(set(currencies) - set(frame["currency"].astype(str)))
    if missing:
        ctx.log(f"{region}: no FX closes for {missing} between {first} and {today}")
    months = sorted({f"{d:%Y-%m}" for d in pd.to_datetime(frame["trade_date"])})
    stamped = ctx.stamped(frame)
    month_of = pd.to_datetime(stamped["trade_date"]).dt.strftime("%Y-%m")
    for month in months:
        ctx.write(FX_DAILY, {"region": region, "month": month, "source": source.name},
                  stamped[month_of == month].reset_index(drop=True), stamped=True)
    return FxResult(region, currencies, first, today, frame, months, source.spent().minus(start))


# -- valuation_daily (pure derivation, then the write) --------------------------------------------------------
def pe_percentiles(as_of: pd.Series, pe: pd.Series, *, years: int = PE_BAND_YEARS,
                   min_history: int = PE_BAND_MIN_SNAPSHOTS, since: dt.date | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """`pe_band` for the rows of ONE symbol."""
    return pe_band(pd.Series(0, index=as_of.index), as_of, pe, years=years, min_history=min_history, since=since)


def pe_band(symbols: pd.Series, as_of: pd.Series, pe: pd.Series, *, years: int = PE_BAND_YEARS,
            min_history: int = PE_BAND_MIN_SNAPSHOTS, since: dt.date | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(percentile, history) per row: the share of the row's symbol's non-null P/Es dated in (as_of - years, as_of]
    that are <= the row's P/E, and how many there are. Null percentile for a null P/E or too short a history.
    Rows dated before `since` only serve as history (their percentile is not computed: it is stored already).

    Every symbol's window is found at once: rows are keyed by (symbol, day) in one sorted int64 array, so the
    window bounds of all rows are two searchsorted calls; only the counting runs per row, and only for rows due."""
    codes = pd.factorize(symbols)[0].astype("int64")
    day = pd.to_datetime(as_of).to_numpy().astype("datetime64[D]").astype("int64")
    start = (pd.to_datetime(as_of) - pd.DateOffset(years=years)).to_numpy().astype("datetime64[D]").astype("int64")
    span = int(max(day.max(initial=0), 0) - min(start.min(initial=0), 0)) + 2
    keys, lower = codes * span + (day - start.min(initial=0)), codes * span + (start - start.min(initial=0))
    values = pe.to_numpy(dtype="float64", na_value=np.nan)
    valid = ~np.isnan(values)
    order = np.argsort(keys[valid], kind="stable")
    valid_keys, valid_values = keys[valid][order], values[valid][order]
    lows = np.searchsorted(valid_keys, lower, side="right")
    highs = np.searchsorted(valid_keys, keys, side="right")
    history = (highs - lows).astype("int64")
    percentile = np.full(len(values), np.nan)
    wanted = valid & (history >= min_history)
    if since is not None:
        wanted &= pd.to_datetime(as_of).to_numpy() >= np.datetime64(since, "ns")
    for i in np.flatnonzero(wanted):
        window = valid_values[lows[i]:highs[i]]
        percentile[i] = np.count_nonzero(window <= values[i]) / len(window)
    return percentile, history


def valuation_frame(fundamentals: pd.DataFrame, fx: pd.DataFrame, region: str, since: dt.date | None = None
                    ) -> pd.DataFrame:
    """valuation_daily rows (without lineage) from a region's fundamentals_daily and fx_daily rows: every row, or
    only those dated on or after `since` (earlier rows then only serve as the P/E band's history)."""
    columns = [c for c in VALUATION_DAILY.columns if c not in VALUATION_DAILY.lineage_columns]
    if fundamentals.empty:
        return pd.DataFrame({c: pd.Series(dtype=VALUATION_DAILY.field(c).pandas_dtype) for c in columns})
    f = fundamentals[["region", "symbol", "as_of", "currency", "market_cap", "pe"]].copy()
    f["as_of"] = pd.to_datetime(f["as_of"]).astype("datetime64[ns]")
    f["pe_percentile"], f["pe_history"] = pe_band(f["symbol"], f["as_of"], f["pe"], since=since)
    if since is not None:  # earlier rows were only the band's history
        f = f[f["as_of"] >= pd.Timestamp(since)]
    f["currency"] = f["currency"].astype("string").fillna(markets.market(region).currency)
    f = f.sort_values("as_of", kind="stable")
    rates = fx[["currency", "trade_date", "usd_per_unit"]].rename(columns={"trade_date": "fx_date"}).copy()
    rates["currency"] = rates["currency"].astype("string")
    rates["fx_date"] = pd.to_datetime(rates["fx_date"]).astype("datetime64[ns]")
    merged = pd.merge_asof(f, rates.sort_values("fx_date"), left_on="as_of", right_on="fx_date", by="currency",
                           direction="backward")
    usd = merged["currency"].eq("USD").to_numpy()
    merged.loc[usd, "usd_per_unit"] = 1.0
    merged.loc[usd, "fx_date"] = pd.NaT
    merged["market_cap_usd"] = merged["market_cap"] * merged["usd_per_unit"]
    out = merged[columns].sort_values(["symbol", "as_of"], ignore_index=True)
    for c in columns:
        out[c] = out[c].astype(VALUATION_DAILY.field(c).pandas_dtype)
    return out


@dataclass
class ValuationResult:
    region: str
    rows: pd.DataFrame
    months: list[str]
    without_fx: int  # rows whose market_cap_usd is null (no FX close on or before as_of)
    diff: dict[str, int] = field(default_factory=dict)
    since: dt.date | None = None  # the first day re-derived (None: everything, or nothing was due)


# The months of valuation_daily a run re-derives: from the first month holding an input (a snapshot or an FX close)
# committed after the last valuation commit, to the end. A night adds snapshots to the current month only, so a
# night re-derives one month, whatever the history; a restated old snapshot re-derives from its month on (later
# P/E bands include it). Nothing derived yet: everything.
DIRTY_SINCE_SQL = """
WITH derived AS (SELECT max(committed_at) AS last_commit FROM lake_partitions
                 WHERE dataset = 'valuation_daily' AND region = $region AND source = $source)
SELECT (SELECT last_commit FROM derived) IS NULL AS never,
       min(first_date) FILTER (WHERE committed_at > (SELECT last_commit FROM derived)) AS since
FROM lake_partitions WHERE dataset IN ('fundamentals_daily', 'fx_daily') AND region = $region AND source = $source
"""


def dirty_since(con, region: str, source: str) -> tuple[bool, dt.date | None]:
    """(anything to derive, the first day of the first month to re-derive; None: from the beginning)."""
    never, since = con.execute(DIRTY_SINCE_SQL, {"region": region, "source": source}).fetchall()[0]
    if never:
        return True, None
    if since is None:
        return False, None
    return True, dt.date(since.year, since.month, 1)


def derive_valuation(ctx: RunContext, region: str) -> ValuationResult:
    """Derive the region's valuation_daily per source of the snapshots (one source's derivation never replaces
    another's), one lake file per month, re-deriving only the months whose inputs changed since the last run
    (`dirty_since`); the P/E band still sees each symbol's full trailing window."""
    with ctx.lake.reader() as con:
        sources = [r[0] for r in con.execute("SELECT DISTINCT source FROM fundamentals_daily WHERE region = ? "
                                             "ORDER BY 1", [region]).fetchall()]
        plans = {name: dirty_since(con, region, name) for name in sources}
        first = [since for due, since in plans.values() if due]
        start = None if any(s is None for s in first) or not first else min(first)
        history_from = None if start is None else start - dt.timedelta(days=366 * PE_BAND_YEARS + 1)
        fundamentals = fetch_frame(con.execute("SELECT region, symbol, as_of, currency, market_cap, pe, source "
                                   "FROM fundamentals_daily WHERE region = ? AND (? IS NULL OR as_of >= ?)",
                                   [region, history_from, history_from]))
        fx = fetch_frame(con.execute("SELECT * FROM fx_daily WHERE region = ?", [region]))
    frames, months, diff = [], set(), dict.fromkeys(("added", "changed", "removed", "unchanged"), 0)
    for source_name, rows in fundamentals.groupby("source"):
        due, since = plans[str(source_name)]
        if not due:
            ctx.log(f"{region} {source_name}: valuation_daily is up to date with its inputs")
            continue
        rates = fx[fx["source"] == source_name] if (fx["source"] == source_name).any() else fx
        frame = ctx.stamped(valuation_frame(rows, rates, region, since=since), str(source_name))
        month_of = frame["as_of"].dt.strftime("%Y-%m")
        for month in sorted(set(month_of)):
            written = ctx.write(VALUATION_DAILY, {"region": region, "month": month, "source": str(source_name)},
                                frame[month_of == month].reset_index(drop=True), stamped=True)
            for key in diff:
                diff[key] += written.diff.get(key, 0)
            months.add(month)
        frames.append(frame)
    out = pd.concat(frames, ignore_index=True) if frames else valuation_frame(fundamentals.iloc[:0], fx, region)
    return ValuationResult(region, out, sorted(months), int(out["market_cap_usd"].isna().sum()), diff,
                           since=start)


def stored_valuation(lake: Lakehouse, region: str) -> tuple[int, int]:
    """(rows, symbols) the region's valuation_daily holds, every source's."""
    with lake.reader() as con:
        rows, symbols = con.execute("SELECT count(*), count(DISTINCT symbol) FROM valuation_daily WHERE region = ?",
                                    [region]).fetchall()[0]
    return int(rows), int(symbols)


# -- cross-domain check ---------------------------------------------------------------------------------------
# The last two bars on or before as_of (none older than MAX_BAR_AGE_DAYS): a snapshot fetched before the as_of
# session closed states the previous close, so the nearer of the two decides.
MARKET_CAP_SQL = f"""
WITH f AS (SELECT symbol, as_of, market_cap, shares_outstanding FROM fundamentals_daily
           WHERE region = $region AND as_of BETWEEN $first AND $last),
candidates AS (
  SELECT f.*, k.trade_date, k.close, f.market_cap / (k.close * f.shares_outstanding) - 1 AS deviation,
         row_number() OVER (PARTITION BY f.symbol, f.as_of ORDER BY k.trade_date DESC) AS recency
  FROM f LEFT JOIN (SELECT symbol, trade_date, close FROM klines_daily WHERE region = $region) k
    ON k.symbol = f.symbol AND k.trade_date <= f.as_of AND k.trade_date >= f.as_of - INTERVAL {MAX_BAR_AGE_DAYS} DAY)
SELECT symbol, as_of, market_cap, shares_outstanding, trade_date, close, deviation FROM candidates
WHERE recency <= 2
QUALIFY row_number() OVER (PARTITION BY symbol, as_of ORDER BY abs(deviation) NULLS LAST) = 1
ORDER BY symbol, as_of
"""


@dataclass
class MarketCapCheck:
    checked: int
    misses: pd.DataFrame  # symbol, as_of, market_cap, close, shares_outstanding, deviation
    unverified: list[str]  # "symbol as_of": no bar within MAX_BAR_AGE_DAYS before as_of

    @property
    def passed(self) -> bool:
        return self.misses.empty


def market_cap_misses(con, region: str, first: dt.date, last: dt.date,
                      tolerance: float = MARKET_CAP_TOLERANCE) -> MarketCapCheck:
    """Snapshots of [first, last] whose market cap is not close x shares outstanding within `tolerance`, the
    close being klines_daily's on as_of or the last bar before it, whichever is nearer (a snapshot fetched before
    the session closed states the previous close); never a bar more than MAX_BAR_AGE_DAYS older."""
    frame = fetch_frame(con.execute(MARKET_CAP_SQL, {"region": region, "first": first, "last": last}))
    has_bar = frame["close"].notna()
    unverified = [f"{s} {d:%Y-%m-%d}" for s, d in zip(frame.loc[~has_bar, "symbol"], frame.loc[~has_bar, "as_of"],
                                                      strict=True)]
    checked = frame[has_bar]
    misses = checked[checked["deviation"].abs() > tolerance].reset_index(drop=True)
    return MarketCapCheck(len(checked), misses, unverified)
