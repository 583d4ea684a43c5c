"""Ingestion steps shared by the Dagster assets, the demo and the benchmark: fetch -> validate -> store.

Bars arrive in pages (up to 1,000 sessions of every code). Each page is validated as a whole before anything
is written, then split into the lake's month partitions. A month is committed once every session the run asked
for in it has arrived (a page boundary may fall inside a month): merged with what is stored, where only what the
source answered is replaced (absence is not data), and committed to the lake with its history, ledger and
`lake_partitions` rows in one transaction. A crash keeps every committed month; a failed commit stops the run
before anything later is written.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ticklake import markets, settings
from ticklake.datasets.context import RunContext
from ticklake.datasets.golden_copy import Known, golden_part, golden_stage, known, raw_bars
from ticklake.dictionary import KLINES_DAILY, SECURITIES, Dataset, month_bounds
from ticklake.dictionary.frames import sort_table
from ticklake.dictionary.market_data import KLINES_DAILY_BY_SOURCE
from ticklake.dictionary.operations import QUARANTINE
from ticklake.dictionary.schemas import is_window_rule, split_page
from ticklake.sources.contract import BarsPage, FetchReport
from ticklake.sources.queries import BarsQuery
from ticklake.storage import Lakehouse
from ticklake.storage.frames import from_arrow, to_arrow
from ticklake.storage.write_modes import merge_answered
from ticklake.storage.writes import Part, Staged, load, stage

DIFF_KEYS = ("added", "changed", "removed", "unchanged", "kept")


def month_of(day: dt.date) -> str:
    return f"{day:%Y-%m}"


@dataclass
class PartitionReport:
    """What one run did to one (region, month) partition: the figures its Dagster page shows."""

    region: str
    month: str
    sessions: list[dt.date] = field(default_factory=list)  # sessions of the month this run fetched
    not_closed: list[dt.date] = field(default_factory=list)  # requested sessions still trading (or to come)
    committed: bool = False
    complete: bool = False  # every session of the month had closed at the run's `now`
    rows: int = 0  # rows stored in the partition after the run
    symbols: int = 0
    rows_by_session: dict[dt.date, int] = field(default_factory=dict)  # fetched sessions only
    diff: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DIFF_KEYS, 0))
    missing: set[str] = field(default_factory=set)  # codes the source did not answer; their rows were kept
    golden: dict[str, int] = field(default_factory=dict)  # golden bars of the partition per arbitration rule
    exceptions: pd.DataFrame | None = None  # disagreements between sources found in the partition

    @property
    def sessions_without_bars(self) -> list[dt.date]:
        return [d for d in self.sessions if not self.rows_by_session.get(d)]


@dataclass
class IngestResult:
    region: str
    partitions: dict[str, PartitionReport] = field(default_factory=dict)  # by month
    requested_codes: int = 0
    unrequested: set[str] = field(default_factory=set)  # codes the source sent unasked (dropped)
    fetch: FetchReport = field(default_factory=FetchReport)
    preview: pd.DataFrame | None = None
    quarantined: list[pd.DataFrame] = field(default_factory=list)  # rejected rows with their rule and reason

    @property
    def rejected_rows(self) -> int:
        return sum(len(q) for q in self.quarantined)

    @property
    def off_window_rows(self) -> int:  # quarantined for a date off the run's window
        return sum(int(q["rule"].map(is_window_rule).sum()) for q in self.quarantined)

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.partitions.values())

    @property
    def sessions(self) -> list[dt.date]:
        return sorted(d for p in self.partitions.values() for d in p.sessions)

    @property
    def not_closed(self) -> list[dt.date]:
        return sorted(d for p in self.partitions.values() for d in p.not_closed)

    @property
    def missing(self) -> set[str]:
        return {c for p in self.partitions.values() for c in p.missing}

    @property
    def diff(self) -> dict[str, int]:
        return {k: sum(p.diff[k] for p in self.partitions.values()) for k in DIFF_KEYS}


@dataclass
class _PendingMonth:
    """Pages' slices of one month, held until every requested session of the month has arrived."""

    report: PartitionReport
    needed: set[dt.date]
    seen: set[dt.date] = field(default_factory=set)
    tables: list[pa.Table] = field(default_factory=list)
    answered: list[tuple[frozenset[str], tuple[dt.date, ...]]] = field(default_factory=list)
    empty: set[str] = field(default_factory=set)  # answered with no bar at all in a page touching this month

    @property
    def ready(self) -> bool:
        return self.seen >= self.needed


def ingest_daily_bars(ctx: RunContext, region: str, *, dates: Sequence[dt.date], codes: Sequence[str]
                      ) -> IngestResult:
    """Fetch, validate and store daily bars of `codes` for the requested `dates` of one region.

    Dates that are not sessions are ignored (nothing trades then); sessions that have not closed at `now` are
    reported and left alone. Every month touched is committed as a whole lake partition.
    """
    result = IngestResult(region=region)
    requested = sorted(set(dates))
    if not requested:
        return result
    calendar = set(markets.sessions(region, requested[0], requested[-1]))  # a date outside coverage raises
    last_closed = markets.last_completed_session(region, ctx.now)
    pending: dict[str, _PendingMonth] = {}
    for day in (d for d in requested if d in calendar):
        month = pending.get(month_of(day))
        if month is None:
            month = pending[month_of(day)] = _PendingMonth(_report(region, day, last_closed), set())
        if last_closed is not None and day <= last_closed:
            month.needed.add(day)
            month.report.sessions.append(day)
        else:  # no final bar yet: leave whatever is stored and say so, never write "no trading"
            month.report.not_closed.append(day)
    result.partitions = {m: p.report for m, p in sorted(pending.items())}
    sessions = sorted(d for p in pending.values() for d in p.needed)
    if result.not_closed:
        ctx.log(f"{region}: skipped {len(result.not_closed)} session(s) not closed yet: {result.not_closed[0]}..")
    if not sessions:
        return result
    if not codes:
        raise ValueError(f"{region}: the security master is empty; materialize `securities` for {region} first")
    result.requested_codes = len(codes)
    _fetch_and_store(ctx, result, pending, codes, sessions)
    if result.quarantined:
        quarantine(ctx, pd.concat(result.quarantined, ignore_index=True), dataset=KLINES_DAILY, region=region)
        ctx.log(f"{region}: quarantined {result.rejected_rows} row(s) that broke a hard rule; their codes keep what is "
            f"stored for those dates: {_shown_rejections(result.quarantined)}")
    result.fetch = ctx.spent()
    return result


def _report(region: str, day: dt.date, last_closed: dt.date | None) -> PartitionReport:
    first, last = month_bounds(month_of(day))
    whole = markets.sessions(region, first, last)
    return PartitionReport(region, month_of(day), complete=last_closed is not None and bool(whole)
                           and whole[-1] <= last_closed)


def _fetch_and_store(ctx: RunContext, result: IngestResult, pending: dict[str, _PendingMonth],
                     codes: Sequence[str], sessions: list[dt.date]) -> None:
    region, lake, source = result.region, ctx.lake, ctx.source
    query = BarsQuery(region, tuple(codes), tuple(sessions))
    fetcher = source.fetcher(KLINES_DAILY.name)
    rejected_limit = settings.max_rejected_share()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="commit") as loader:
        loading: Future | None = None

        def previous_load_done() -> None:
            if loading is not None:
                loading.result()  # re-raises a failed load here, before anything else is written

        def store(months: list[_PendingMonth]) -> None:
            nonlocal loading
            if not months:
                return
            # what the lake holds for these months (other sources, overrides, stored months): one look per batch,
            # not a read per month, and fresh for each batch of a long backfill
            spans = [month_bounds(m.report.month) for m in months]
            lake_knows = known(ctx, region, min(a for a, _ in spans), max(b for _, b in spans))
            parts = [_merge_month(lake, m, region, source.name, lake_knows) for m in months]
            previous_load_done()  # one load in flight: months commit in order and the lake never runs ahead
            # the raw layer's months and the golden bars they re-derive, in one commit (restated bars: the history)
            golden = [golden_part(ctx, region, m.report.month, {source.name: p.table}, missing_codes=p.missing_codes,
                                  prefetched=lake_knows) for m, p in zip(months, parts, strict=True)]
            for month, arbitrated in zip(months, golden, strict=True):
                month.report.golden = arbitrated.counts
                month.report.exceptions = arbitrated.exceptions
                month.report.rows = arbitrated.part.table.num_rows
            staged = Staged(stage(lake, KLINES_DAILY_BY_SOURCE, parts, run_id=ctx.run_id, now=ctx.now).loads
                            + golden_stage(ctx, region, golden).loads)
            for month in months:
                month.report.committed = True
                pending.pop(month.report.month)
            # DuckDB works outside the GIL, so the months load while the next page is fetched and parsed.
            loading = loader.submit(load, lake, staged)

        for page in _prefetched(fetcher.extract(query), gate=previous_load_done):
            frame = raw_bars(ctx.stamped(fetcher.transform(query, page)), received_at=ctx.now)
            frame, rejected = _quarantine_split(frame, page, result, rejected_limit)
            result.unrequested |= set(page.unrequested)
            _add_page(pending, frame, page, _rejected_dates(rejected))
            if result.preview is None or len(frame):
                result.preview = frame.nlargest(10, "trade_date").copy()  # a copy: the page itself must be freed
            ctx.log(f"{region}: fetched {len(frame)} bars for {len(page.sessions)} session(s) "
                f"{page.sessions[0]}..{page.sessions[-1]}" + (f"; {len(page.missing)} code(s) unanswered"
                                                               if page.missing else ""))
            store([m for m in pending.values() if m.ready and m.tables])
            del frame, page  # memory is bounded by one page (plus the one being prefetched) and one month
        store([m for m in pending.values() if m.tables])  # months a short answer left incomplete: what arrived
        previous_load_done()


def _quarantine_split(frame: pd.DataFrame, page: BarsPage, result: IngestResult, limit: float
                      ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The page's valid rows, and those that broke a hard rule (kept in `result.quarantined` for the quarantine
    table). More than `limit` of the page rejected fails the step as before: a source that sends mostly broken
    rows is broken, and writing the rest would hide it."""
    good, rejected = split_page(frame, KLINES_DAILY_BY_SOURCE, allowed_dates=page.sessions, max_share=limit,
                                refused=page.refused)  # page.refused: bars with a value that is not a number
    if len(rejected.rows):
        result.quarantined.append(rejected.rows.assign(rule=rejected.rules.to_numpy(),
                                                       reason=rejected.reasons.to_numpy()))
    return good, rejected.rows


def _shown_rejections(frames: list[pd.DataFrame], limit: int = 5) -> str:
    rows = pd.concat(frames, ignore_index=True).head(limit)
    return "; ".join(f"{r.symbol} {pd.Timestamp(r.trade_date):%Y-%m-%d} {r.reason}" for r in rows.itertuples())


def quarantine(ctx: RunContext, rejected: pd.DataFrame, *, dataset: Dataset, region: str) -> int:
    """Keep rejected rows (with `rule` and `reason` columns) in the quarantine table; return how many are new."""
    date_column = dataset.date_column
    raw_columns = [c for c in dataset.columns if c in rejected.columns and c not in dataset.lineage_columns]
    raw = rejected[raw_columns].astype(str).to_dict("records")
    rows = pd.DataFrame({
        "dataset": pd.array([dataset.name] * len(rejected), dtype="string"),
        "region": pd.array([region] * len(rejected), dtype="string"),
        "code": pd.array(rejected["symbol"].astype(str), dtype="string"),
        "date": pd.to_datetime(rejected[date_column]).astype("datetime64[ms]") if date_column else pd.NaT,
        "rule": pd.array(rejected["rule"].astype(str), dtype="string"),
        "reason": pd.array(rejected["reason"].astype(str), dtype="string"),
        "raw": pd.array([json.dumps(r, sort_keys=True) for r in raw], dtype="string"),
    })
    written = ctx.write(QUARANTINE, {"region": region, "source": ctx.source_name}, rows)
    return written.diff.get("added", 0)


def _rejected_dates(rejected: pd.DataFrame) -> dict[str, set[dt.date]]:
    """code -> the dates of its rejected rows: what is stored for them must stay (absence of a valid row is not
    data)."""
    out: dict[str, set[dt.date]] = {}
    for symbol, day in zip(rejected["symbol"].astype(str), pd.to_datetime(rejected["trade_date"]), strict=True):
        out.setdefault(symbol, set()).add(day.date())
    return out


def _add_page(pending: dict[str, _PendingMonth], frame: pd.DataFrame, page: BarsPage,
              rejected: dict[str, set[dt.date]] | None = None) -> None:
    """Split a validated page by month into the pending months it touches.

    One sort by (month, symbol, trade_date) makes every month a contiguous slice already in the lake's row order,
    so a month that arrives in one page is written without sorting again.
    """
    table = pa.Table.from_pandas(frame[KLINES_DAILY_BY_SOURCE.columns], schema=KLINES_DAILY_BY_SOURCE.arrow_schema,
                                 preserve_index=False)
    months = table.column("trade_date").to_numpy().astype("datetime64[M]")
    order = pc.sort_indices(table.append_column("_month", pa.array(months.astype("int64"))),
                            sort_keys=[("_month", "ascending"), ("symbol", "ascending"), ("trade_date", "ascending")])
    table, months = table.take(order), months[order.to_numpy()]
    # A code "answered" with no bar at all over the whole page is not trusted to erase what is stored: a backend
    # that truncates history or fails soft sends exactly that. It only replaces where it sent bars.
    present = set(pc.unique(table.column("symbol")).to_pylist())
    rejected = rejected or {}
    replaced = frozenset(page.answered & present - set(rejected))
    by_month: dict[str, list[dt.date]] = {}
    for day in page.sessions:
        by_month.setdefault(month_of(day), []).append(day)
    for month, month_sessions in by_month.items():
        target = pending[month]
        key = np.datetime64(month, "M")
        lo, hi = np.searchsorted(months, key, "left"), np.searchsorted(months, key, "right")
        target.tables.append(table.slice(lo, hi - lo))
        target.seen.update(month_sessions)
        target.answered.append((replaced, tuple(month_sessions)))
        for code in page.answered & present & set(rejected):  # replaced except on its rejected rows' dates
            target.answered.append((frozenset({code}), tuple(d for d in month_sessions if d not in rejected[code])))
        target.empty |= page.answered - present
        target.report.missing |= set(page.missing)


def _merge_month(lake: Lakehouse, month: _PendingMonth, region: str, source: str, lake_knows: Known) -> Part:
    """The month's partition file contents: the new rows merged with what is stored (see merge_answered); a month
    the source never stored (the run's first look at the lake says so) is not read."""
    report = month.report
    new = (month.tables[0] if len(month.tables) == 1
           else sort_table(pa.concat_tables(month.tables), KLINES_DAILY_BY_SOURCE))
    month.tables.clear()
    values = {"region": region, "month": report.month, "source": source}
    stored_before = source in lake_knows.sources.get(report.month, ())
    previous = lake.read_table(KLINES_DAILY_BY_SOURCE, **values) if stored_before else None
    old = None if previous is None else from_arrow(KLINES_DAILY_BY_SOURCE, previous)
    if old is None:
        table, diff = new, {**dict.fromkeys(DIFF_KEYS, 0), "added": new.num_rows}
    else:
        merged, diff = merge_answered(from_arrow(KLINES_DAILY_BY_SOURCE, new), old, month.answered,
                                      KLINES_DAILY_BY_SOURCE)
        table = to_arrow(KLINES_DAILY_BY_SOURCE, merged)  # sorted by the dataset's sort key
        if month.empty:  # empty answers for codes we hold bars of in these sessions: kept, and reported as missing
            held = old["symbol"].isin(list(month.empty)) & old["trade_date"].isin(
                pd.DatetimeIndex(sorted(month.seen)).as_unit("ms"))
            report.missing |= set(old.loc[held, "symbol"].astype(str))
    report.diff = diff
    report.rows = table.num_rows
    report.symbols = len(pc.unique(table.column("symbol")))
    counts = pc.value_counts(table.column("trade_date")).to_pylist()
    by_day = {c["values"]: c["counts"] for c in counts}
    report.rows_by_session = {d: by_day.get(d, 0) for d in report.sessions}
    return Part(values, table, missing_codes=len(report.missing), previous=previous)


def _prefetched(pages: Iterator[BarsPage], gate: Callable[[], None]) -> Iterator[BarsPage]:
    """Fetch page k+1 while page k is validated and written (storing is mostly GIL-free Arrow/DuckDB work).

    The fetch of the next page first waits on `gate` (the previous lake load), so at most two pages are
    ever held, whatever the length of the history: peak memory is bounded by the page size.
    """

    def fetch_next():
        gate()
        return next(pages, None)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch") as pool:
        pending = pool.submit(next, pages, None)
        while (item := pending.result()) is not None:
            pending = pool.submit(fetch_next)
            yield item


LAST_SESSIONS_SQL = """
SELECT region, max(trade_date) FROM {table}
WHERE ($source IS NULL OR source = $source) AND trade_date BETWEEN coalesce($first, DATE '0001-01-01')
  AND coalesce($last, DATE '9999-12-31')
GROUP BY region
"""


def last_sessions(lake: Lakehouse, *, source: str | None = None, first: dt.date | None = None,
                  last: dt.date | None = None) -> dict[str, dt.date]:
    """Per region, the latest session with a stored bar (in the golden copy; of `source`, in what that source said,
    between `first` and `last` when given); a region with none is absent, never "no bars"."""
    table = KLINES_DAILY.name if source is None else KLINES_DAILY_BY_SOURCE.name
    with lake.reader() as con:
        return dict(con.execute(LAST_SESSIONS_SQL.format(table=table),
                                {"source": source, "first": first, "last": last}).fetchall())


def rows_by_month(lake: Lakehouse, region: str, first_month: str, last_month: str) -> dict[str, int]:
    """Stored bars per month ("YYYY-MM") of the region, every source's, from `first_month` through `last_month`."""
    first, last = month_bounds(first_month)[0], month_bounds(last_month)[1]
    with lake.reader() as con:
        return dict(con.execute("SELECT strftime(trade_date, '%Y-%m'), count(*) FROM klines_daily WHERE region = ? "
                                "AND trade_date BETWEEN ? AND ? GROUP BY 1", [region, first, last]).fetchall())


def nightly_dates(lake: Lakehouse, *, region: str, source: str, session: dt.date,
                  dates: Sequence[dt.date]) -> list[dt.date]:
    """What a nightly run fetches: `session` and the dates after the latest session already stored among `dates`
    (a missed night is caught up). Earlier sessions are not fetched again: re-checking them against the source is
    the reconciliation sensor's job, which records every difference before it is applied."""
    last = last_sessions(lake, source=source, first=min(dates), last=max(dates)).get(region)
    return sorted({session, *(d for d in dates if last is None or d > last)})


def universe(lake: Lakehouse, region: str) -> list[str]:
    """Codes to fetch for `region`: every code in its security master (delisted ones included, so backfills
    carry no survivorship bias; a code with no bars in a window simply yields no rows)."""
    return [str(c) for c in lake.distinct(SECURITIES, "symbol", region=region)]  # every source's master
