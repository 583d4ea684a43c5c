"""Ingestion steps shared by the Dagster assets, the demo and the benchmark: fetch -> validate -> store.

Each page of bars is validated as a whole before anything is written, then committed partition by
partition to the lake and in one transaction to the warehouse, so a crash keeps every finished page and
never a half-written one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ticklake import markets
from ticklake.dictionary import KLINES_DAILY, SECURITIES
from ticklake.lake import Lake
from ticklake.schemas import validate
from ticklake.sources import BarsPage, FetchReport, MarketDataSource
from ticklake.transforms import carry_forward_lineage, merge_security_master, string_array
from ticklake.warehouse import Warehouse

DIFF_KEYS = ("added", "changed", "removed", "unchanged")


@dataclass
class IngestResult:
    region: str
    sessions: list[dt.date] = field(default_factory=list)  # sessions written (including empty ones)
    non_sessions: list[dt.date] = field(default_factory=list)  # requested dates the calendar does not trade
    not_closed: list[dt.date] = field(default_factory=list)  # sessions still trading (or to come) at `now`
    rows: int = 0
    symbols: int = 0
    rows_by_date: dict[dt.date, int] = field(default_factory=dict)
    diff: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DIFF_KEYS, 0))
    fetch: FetchReport = field(default_factory=FetchReport)
    preview: pd.DataFrame | None = None


def with_lineage(frame: pd.DataFrame, source: str, run_id: str, now: dt.datetime) -> pd.DataFrame:
    n = len(frame)
    stamp = np.full(n, pd.Timestamp(now).tz_convert("UTC").value // 1_000_000, dtype=np.int64)
    return frame.assign(
        source=string_array([source], [n]),
        ingested_at=pd.to_datetime(stamp, unit="ms", utc=True).astype("datetime64[ms, UTC]"),
        run_id=string_array([run_id], [n]),
    )


def ingest_daily_bars(
    source: MarketDataSource,
    lake: Lake,
    warehouse: Warehouse,
    *,
    region: str,
    dates: Sequence[dt.date],
    codes: Sequence[str],
    run_id: str,
    now: dt.datetime,
    log: Callable[[str], None] = lambda _msg: None,
) -> IngestResult:
    """Fetch, validate and store daily bars of `codes` for the requested `dates` of one region."""
    result = IngestResult(region=region)
    requested = sorted(set(dates))
    if not requested:
        return result
    calendar = set(markets.sessions(region, requested[0], requested[-1]))
    last_closed = markets.last_completed_session(region, now)
    sessions = [d for d in requested if d in calendar and last_closed is not None and d <= last_closed]
    # A session that has not closed yet has no final bar: leave whatever is stored and say so, rather
    # than writing an empty partition that would read as "no trading".
    result.not_closed = [d for d in requested if d in calendar and d not in sessions]
    if result.not_closed:
        log(f"{region}: skipped {len(result.not_closed)} session(s) not closed yet: {result.not_closed[0]}..")
    result.non_sessions = [d for d in requested if d not in calendar]
    if result.non_sessions:  # nothing trades then; make sure nothing stale claims otherwise
        for day in result.non_sessions:
            lake.delete(KLINES_DAILY, region=region, trade_date=day)
        warehouse.replace_dates(KLINES_DAILY, KLINES_DAILY.arrow_schema.empty_table(), region=region,
                                dates=result.non_sessions)
    if not sessions:
        return result
    if not codes:
        raise ValueError(f"{region}: the security master is empty; materialize `securities` for {region} first")
    symbols: set[str] = set()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="warehouse") as loader:
        loading: Future | None = None

        def previous_page_loaded() -> None:
            if loading is not None:
                loading.result()

        for fetched in _prefetched(source.daily_bars(region, codes, sessions), gate=previous_page_loaded):
            page, bars = fetched.sessions, fetched.bars
            frame = with_lineage(bars, source.name, run_id, now)
            validate(frame, KLINES_DAILY, allowed_dates=page)
            table = pa.concat_tables(_store_page(lake, frame, region, page, result))
            if loading is not None:
                loading.result()  # one load in flight at a time: pages commit in order, memory stays bounded
            # DuckDB works outside the GIL, so the page loads while the next one is fetched and written.
            loading = loader.submit(warehouse.replace_dates, KLINES_DAILY, table, region=region, dates=list(page))
            symbols.update(frame["symbol"].unique().tolist())
            result.sessions.extend(page)
            if result.preview is None or len(frame):
                result.preview = frame.nlargest(10, "trade_date").copy()  # a copy: the page itself must be freed
            log(f"{region}: stored {len(frame)} bars for {len(page)} session(s) {page[0]}..{page[-1]}")
            del bars, frame, table  # memory is bounded by one page (plus the one being prefetched)
        if loading is not None:
            loading.result()
    result.sessions.sort()
    result.symbols = len(symbols)
    result.fetch = source.spent()
    return result


def _prefetched(pages: Iterator[BarsPage], gate: Callable[[], None]) -> Iterator[BarsPage]:
    """Fetch page k+1 while page k is validated and written (storing is mostly GIL-free Arrow/DuckDB work).

    The fetch of the next page first waits on `gate` (the previous page's warehouse load), so at most two
    pages are ever held, whatever the length of the history: peak memory is bounded by the page size.
    """

    def fetch_next():
        gate()
        return next(pages, None)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch") as pool:
        pending = pool.submit(next, pages, None)
        while (item := pending.result()) is not None:
            pending = pool.submit(fetch_next)
            yield item


def _store_page(lake: Lake, frame: pd.DataFrame, region: str, page: Sequence[dt.date],
                result: IngestResult) -> list[pa.Table]:
    """Write one lake partition per session of the page; return the Arrow tables written."""
    table = pa.Table.from_pandas(frame[KLINES_DAILY.columns], schema=KLINES_DAILY.arrow_schema,
                                 preserve_index=False)
    table = table.take(pc.sort_indices(table, sort_keys=[("trade_date", "ascending"), ("symbol", "ascending")]))
    days = table.column("trade_date").to_numpy()
    parts: list[tuple[dict[str, object], pa.Table]] = []
    for day in page:
        key = np.datetime64(day, "D")
        lo, hi = np.searchsorted(days, key, "left"), np.searchsorted(days, key, "right")
        part = table.slice(lo, hi - lo)
        old = lake.read(KLINES_DAILY, region=region, trade_date=day)
        if old is None:
            diff = {"added": part.num_rows, "changed": 0, "removed": 0, "unchanged": 0}
        else:
            merged, diff = carry_forward_lineage(Lake.from_arrow(KLINES_DAILY, part), old, KLINES_DAILY)
            part = lake.to_arrow(KLINES_DAILY, merged)
        parts.append(({"region": region, "trade_date": day}, part))
        result.rows += part.num_rows
        result.rows_by_date[day] = part.num_rows
        for k in DIFF_KEYS:
            result.diff[k] += diff[k]
    lake.write_many(KLINES_DAILY, parts)
    return [part for _, part in parts]


@dataclass
class SecuritiesResult:
    region: str
    as_of: dt.date
    master: pd.DataFrame
    listed: int
    diff: dict[str, int]
    fetch: FetchReport


def refresh_securities(source: MarketDataSource, lake: Lake, warehouse: Warehouse, *, region: str, run_id: str,
                       now: dt.datetime) -> SecuritiesResult:
    """Fold the source's current symbol list into the region's security master."""
    listing = source.list_securities(region).securities
    if listing.empty:  # a source that suddenly lists nothing is an outage, not a mass delisting
        raise RuntimeError(f"{region}: the source returned an empty symbol list; the security master was kept")
    as_of = pd.Timestamp(now).tz_convert(markets.market(region).timezone).date()
    old = lake.read(SECURITIES, region=region)
    master = merge_security_master(None if old is None else old.drop(columns=SECURITIES.lineage_columns),
                                   listing, as_of)
    master, diff = carry_forward_lineage(with_lineage(master, source.name, run_id, now), old, SECURITIES)
    validate(master, SECURITIES)
    table = lake.to_arrow(SECURITIES, master)
    lake.write(SECURITIES, table, region=region)
    warehouse.replace_region(SECURITIES, table, region=region)
    return SecuritiesResult(region, as_of, master, len(listing), diff, source.spent())


def universe(lake: Lake, region: str) -> list[str]:
    """Codes to fetch for `region`: every code in its security master (delisted ones included, so backfills
    carry no survivorship bias; a code with no bars in a window simply yields no rows)."""
    master = lake.read(SECURITIES, region=region)
    return [] if master is None else sorted(master["symbol"].astype(str))
