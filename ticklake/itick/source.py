"""`ITickSource`: the `MarketDataSource` over the iTick protocol: fewest calls, pages newest first.

Kline pages can be fetched and parsed in worker processes for big backfills (JSON decoding is CPU-bound);
each worker rebuilds its own client from the picklable `ITickConfig`.
"""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
import os
from collections import defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict

import numpy as np
import pandas as pd

from ticklake import markets, settings
from ticklake.itick.client import ITickClient
from ticklake.itick.config import ITickConfig, build_client
from ticklake.sources import BarsPage, FetchReport, Listing
from ticklake.transforms import TimeConvention, bars_to_frame, plan_kline_requests, session_end_ms

logger = logging.getLogger(__name__)
DAILY_KTYPE = 8


def open_source(config: ITickConfig, tags: dict[str, str] | None = None,
                client: ITickClient | None = None) -> ITickSource:
    """An `ITickSource` for `config` (reusing `client` when given, so a resource keeps one per run)."""
    client = client or build_client(config, tags)
    if tags:
        client.tags.update(tags)
    processes = config.fetch_processes or (os.cpu_count() or 1)
    parallel = None
    if processes > 1:
        worker_config = {"config": asdict(config) | {"home": str(config.paths.home)}, "tags": dict(client.tags),
                         "regions": settings.regions()}
        parallel = _ParallelFetch(worker_config, processes, config.parallel_fetch_min_bars)
    return ITickSource(client, name=config.source_name, max_codes_per_call=config.max_codes_per_call,
                       max_bars_per_call=config.max_bars_per_call, max_concurrency=config.max_concurrency,
                       convention=config.bar_time_convention, parallel=parallel)


class ITickSource:
    """`MarketDataSource` over the iTick protocol: fewest calls, pages newest first."""

    def __init__(self, client: ITickClient, *, name: str, max_codes_per_call: int, max_bars_per_call: int,
                 max_concurrency: int, convention: TimeConvention, parallel: _ParallelFetch | None = None):
        self.client, self.name = client, name
        self.max_codes_per_call, self.max_bars_per_call = max_codes_per_call, max_bars_per_call
        self.max_concurrency, self.convention = max_concurrency, convention
        self.parallel = parallel
        self._start = client.stats
        self._remote = FetchReport()  # calls made by worker processes

    def spent(self) -> FetchReport:
        return self.client.stats.minus(self._start).plus(self._remote)

    def list_securities(self, region: str) -> Listing:
        rows = self.client.symbol_list(region)
        frame = pd.DataFrame(
            {
                "region": pd.array([region] * len(rows), dtype="string"),
                "symbol": pd.array([str(r.get("c")) for r in rows], dtype="string"),
                "name": pd.array([r.get("n") for r in rows], dtype="string"),
                "security_type": pd.array([r.get("t") or "stock" for r in rows], dtype="string"),
                "exchange": pd.array([r.get("e") for r in rows], dtype="string"),
            }
        )
        return Listing(frame.drop_duplicates("symbol", keep="last").reset_index(drop=True))

    def daily_bars(self, region: str, codes: Sequence[str], sessions: Sequence[dt.date]) -> Iterator[BarsPage]:
        if not sessions:
            return
        market = markets.market(region)
        calendar = markets.sessions(region, min(sessions), max(sessions))
        requests = plan_kline_requests(codes, sessions, calendar, max_codes=self.max_codes_per_call,
                                       max_bars=self.max_bars_per_call)
        pages: dict[tuple[dt.date, ...], list] = defaultdict(list)
        for request in requests:
            pages[request.sessions].append(request)
        bars = sum(len(r.codes) * r.limit for r in requests)
        if self.parallel is not None and bars >= self.parallel.min_bars and len(requests) > 1:
            produced = 0
            try:
                for page_sessions, frame in self.parallel.pages(self, region, pages, calendar):
                    produced += 1
                    yield BarsPage(page_sessions, frame, answered=frozenset(codes))
                return
            except BrokenProcessPool as exc:
                if produced:
                    raise
                # e.g. a script without an `if __name__ == "__main__":` guard cannot start workers
                logger.warning("fetch worker processes unavailable (%s); fetching in threads instead", exc)
        keep = _PageFilter(calendar)
        with ThreadPoolExecutor(max_workers=self.max_concurrency, thread_name_prefix="itick") as pool:
            for page_sessions, page_requests in pages.items():
                frames = pool.map(lambda r: keep(self._fetch(region, market.timezone, r), r.sessions), page_requests)
                yield BarsPage(page_sessions, pd.concat(list(frames), ignore_index=True), answered=frozenset(codes))

    def _fetch(self, region: str, timezone: str, request) -> pd.DataFrame:
        payload = self.client.klines("stock", region, request.codes, ktype=DAILY_KTYPE, limit=request.limit,
                                     et_ms=session_end_ms(request.end, timezone, self.convention))
        return bars_to_frame(payload, region=region, timezone=timezone, convention=self.convention)


class _PageFilter:
    """Keeps the rows of a call that belong to its page: the requested sessions, plus any bar dated on a
    non-session inside the page's span (kept so validation rejects it loudly: usually a wrong bar time
    convention). Older bars (a suspended symbol's `limit` reaching back) and unrequested sessions go.

    Day lookups are boolean tables indexed by day number, so filtering is O(rows) with no sorting.
    """

    def __init__(self, calendar: Sequence[dt.date]):
        self.origin = np.datetime64(calendar[0], "D") if calendar else np.datetime64("1970-01-01", "D")
        days = self._days(np.array(calendar, dtype="datetime64[D]"))
        self.is_session = np.zeros(int(days.max()) + 2 if len(days) else 1, dtype=bool)
        self.is_session[days] = True

    def _days(self, values: np.ndarray) -> np.ndarray:
        return (values.astype("datetime64[D]") - self.origin).astype(np.int64)

    def __call__(self, frame: pd.DataFrame, page: Sequence[dt.date]) -> pd.DataFrame:
        if frame.empty:
            return frame
        days = self._days(frame["trade_date"].to_numpy())
        wanted_days = self._days(np.array(page, dtype="datetime64[D]"))
        lo, hi = int(wanted_days.min()), int(wanted_days.max())
        wanted = np.zeros(hi - lo + 1, dtype=bool)
        wanted[wanted_days - lo] = True
        inside = (days >= lo) & (days <= hi)
        offset = np.where(inside, days - lo, 0)
        session = np.where(inside, self.is_session[np.clip(days, 0, len(self.is_session) - 1)], True)
        keep = inside & (wanted[offset] | ~session)
        return frame if keep.all() else frame[keep].reset_index(drop=True)


class _ParallelFetch:
    """Fetch-and-parse in worker processes, so JSON decoding of a big backfill uses every core.

    Batch i of every page always goes to worker i % n: each worker keeps its own client (the quota limiter is
    shared through its state file, so the plan still holds across processes) and, for the embedded
    simulator, its own warm series cache.
    """

    def __init__(self, config: dict, processes: int, min_bars: int):
        self.config, self.processes, self.min_bars = config, processes, min_bars

    def pages(self, source: ITickSource, region: str, pages: dict[tuple[dt.date, ...], list],
              calendar: Sequence[dt.date]) -> Iterator[tuple[tuple[dt.date, ...], pd.DataFrame]]:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["ticklake.itick.source"])
        workers = [ProcessPoolExecutor(1, mp_context=ctx, initializer=_worker_init, initargs=(self.config,))
                   for _ in range(self.processes)]
        try:
            for page_sessions, page_requests in pages.items():
                futures = [workers[i % len(workers)].submit(_worker_fetch, region, request, calendar[0],
                                                            calendar[-1])
                           for i, request in enumerate(page_requests)]
                frames = []
                for future in futures:
                    frame, stats = future.result()
                    source._remote = source._remote.plus(stats)
                    frames.append(frame)
                yield page_sessions, pd.concat(frames, ignore_index=True)
        finally:
            for worker in workers:
                worker.shutdown(wait=True, cancel_futures=True)


_WORKER: dict = {}


def _worker_init(config: dict) -> None:
    os.environ["TICKLAKE_REGIONS"] = ",".join(config["regions"])
    _WORKER["source"] = open_source(ITickConfig(**config["config"]) , tags=config["tags"])


def _worker_fetch(region: str, request, first: dt.date, last: dt.date) -> tuple[pd.DataFrame, FetchReport]:
    source: ITickSource = _WORKER["source"]
    before = source.client.stats
    keep = _WORKER.get(("filter", region, first, last))
    if keep is None:
        keep = _WORKER[("filter", region, first, last)] = _PageFilter(markets.sessions(region, first, last))
    frame = keep(source._fetch(region, markets.market(region).timezone, request), request.sessions)
    return frame, source.client.stats.minus(before)
