"""`ITickSource`: the `Source` over the iTick protocol: fewest calls, pages newest first.

Kline pages can be fetched and parsed in worker processes for big backfills (JSON decoding is CPU-bound);
each worker rebuilds its own client from the picklable `ITickConfig`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import multiprocessing
import os
from collections import defaultdict
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd

from ticklake import markets, settings
from ticklake.dictionary.symbols import shown
from ticklake.sources.contract import BarsPage, Fetcher, FetchReport, UnsupportedDatasetError
from ticklake.sources.itick.client import ITickClient, check_codes
from ticklake.sources.itick.config import ITickConfig, build_client
from ticklake.sources.itick.wire import (
    BatchAnswer,
    KlineRequest,
    TimeConvention,
    batch_answer,
    merge_answers,
    off_window,
    plan_kline_requests,
    session_end_ms,
)

logger = logging.getLogger(__name__)
DAILY_KTYPE = 8
_LOGGED_CODES = 5

# Runs a page's calls (in threads or in worker processes) and returns one answer per call, in order.
CallRunner = Callable[[Sequence[KlineRequest]], list[BatchAnswer]]


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
    """The `Source` over the iTick protocol: its fetchers (ticklake/sources/itick/fetchers/), and daily bars with the
    fewest calls, pages newest first."""

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

    def fetcher(self, dataset: str) -> Fetcher[Any, Any]:
        """The iTick fetcher of `dataset` (ticklake/sources/itick/fetchers/)."""
        from ticklake.sources.itick.fetchers import FETCHERS  # the fetchers import this module's types

        factory = FETCHERS.get(dataset)
        if factory is None:
            raise UnsupportedDatasetError(f"{self.name} provides no {dataset!r}; it provides: {sorted(FETCHERS)}")
        return factory(self)

    def daily_bars(self, region: str, codes: Sequence[str], sessions: Sequence[dt.date]) -> Iterator[BarsPage]:
        """Pages newest first. After a page's calls, the codes the source left out (or sent as null) are asked
        for once more; those still missing are reported in `BarsPage.missing` and contribute no rows."""
        if not sessions or not codes:
            return
        check_codes(codes, "daily_bars")  # before any request: one bad code would fail a whole batch mid-run
        market = markets.market(region)
        calendar = markets.sessions(region, min(sessions), max(sessions))
        requests = plan_kline_requests(codes, sessions, calendar, max_codes=self.max_codes_per_call,
                                       max_bars=self.max_bars_per_call)
        pages: dict[tuple[dt.date, ...], list[KlineRequest]] = defaultdict(list)
        for request in requests:
            pages[request.sessions].append(request)
        bars = sum(len(r.codes) * r.limit for r in requests)
        if self.parallel is not None and bars >= self.parallel.min_bars and len(requests) > 1:
            produced = 0
            try:
                with self.parallel.runner(self, region, calendar) as run:
                    for page_sessions, page_requests in pages.items():
                        page = self._page(region, page_sessions, page_requests, run)
                        produced += 1
                        yield page
                return
            except BrokenProcessPool as exc:
                if produced:
                    raise
                # e.g. a script without an `if __name__ == "__main__":` guard cannot start workers
                logger.warning("fetch worker processes unavailable (%s); fetching in threads instead", exc)
        keep = _PageFilter(calendar)
        with ThreadPoolExecutor(max_workers=self.max_concurrency, thread_name_prefix="itick") as pool:

            def run(calls: Sequence[KlineRequest]) -> list[BatchAnswer]:
                return list(pool.map(lambda r: self._fetch(region, market.timezone, r, keep), calls))

            for page_sessions, page_requests in pages.items():
                yield self._page(region, page_sessions, page_requests, run)

    def _page(self, region: str, page_sessions: tuple[dt.date, ...], requests: Sequence[KlineRequest],
              run: CallRunner) -> BarsPage:
        """One page from its calls, plus one more ask for whatever the source left out."""
        answers = run(requests)
        again = reask_requests(requests, answers, self.max_codes_per_call)
        if again:
            answers += run(again)
        page = merge_answers((c for r in requests for c in r.codes), answers)
        _report(region, page_sessions, page, reasked=sum(len(r.codes) for r in again))
        return BarsPage(page_sessions, page.bars, answered=page.answered, missing=page.missing,
                        unrequested=page.unrequested, refused=page.refused)

    def _fetch(self, region: str, timezone: str, request: KlineRequest, keep: _PageFilter) -> BatchAnswer:
        """One batch call, its rows cut to the call's sessions."""
        et_ms = session_end_ms(request.end, timezone, self.convention)
        payload = self.client.klines("stock", region, request.codes, ktype=DAILY_KTYPE, limit=request.limit,
                                     et_ms=et_ms)
        answer = batch_answer(payload, request.codes, region=region, timezone=timezone, convention=self.convention)
        # Bars the call did not ask for (after `et`, or past `limit`) stay, so validation quarantines them as off
        # the run's window: dropping them would hide a source that answers outside what it was asked.
        unasked = off_window(answer.bars, et_ms=et_ms, limit=request.limit)
        if unasked.any():
            logger.warning("%s: the source sent %d bar(s) outside the call's window (et=%s, limit=%d); they are "
                           "quarantined", region, int(unasked.sum()), request.end, request.limit)
        return dataclasses.replace(answer, bars=keep(answer.bars, request.sessions, also=unasked))


def reask_requests(requests: Sequence[KlineRequest], answers: Sequence[BatchAnswer],
                   max_codes: int) -> list[KlineRequest]:
    """The calls that ask once more for the codes each call left unanswered: same `et`, `limit` and sessions,
    at most `max_codes` codes each. None when every code was answered (the fewest-calls plan stays exact)."""
    missing: dict[KlineRequest, list[str]] = defaultdict(list)
    for request, answer in zip(requests, answers, strict=True):
        if answer.missing:
            template = dataclasses.replace(request, codes=())
            missing[template].extend(c for c in request.codes if c in answer.missing)
    out: list[KlineRequest] = []
    for template, codes in missing.items():
        unique = sorted(set(codes))
        out.extend(dataclasses.replace(template, codes=tuple(unique[i : i + max_codes]))
                   for i in range(0, len(unique), max_codes))
    return out


def _report(region: str, page_sessions: Sequence[dt.date], page: BatchAnswer, reasked: int) -> None:
    """Warn about what the source left out or added: neither may silently change stored data."""
    span = f"{page_sessions[0]}..{page_sessions[-1]}"
    if page.unrequested:
        logger.warning("%s %s: the source sent %d code(s) that were not requested; their bars were dropped: %s",
                       region, span, len(page.unrequested), _codes(page.unrequested))
    if page.missing:
        logger.warning("%s %s: %d code(s) still missing from the answer after asking again; their stored bars "
                       "are kept: %s", region, span, len(page.missing), _codes(page.missing))
    elif reasked:
        logger.info("%s %s: %d code(s) left out at first were answered when asked again", region, span, reasked)


def _codes(codes: Collection[str]) -> str:
    listed = ", ".join(shown(c) for c in sorted(codes)[:_LOGGED_CODES])
    return listed + (f" (+{len(codes) - _LOGGED_CODES} more)" if len(codes) > _LOGGED_CODES else "")


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

    def __call__(self, frame: pd.DataFrame, page: Sequence[dt.date], also: np.ndarray | None = None) -> pd.DataFrame:
        """`frame`'s rows for `page`, and those flagged in `also` (bars off the call's window, for validation)."""
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
        if also is not None:
            keep |= also
        return frame if keep.all() else frame[keep].reset_index(drop=True)


class _ParallelFetch:
    """Fetch-and-parse in worker processes, so JSON decoding of a big backfill uses every core.

    Batch i of every page always goes to worker i % n: each worker keeps its own client (the quota limiter is
    shared through its state file, so the plan still holds across processes) and, for the embedded
    simulator, its own warm series cache.
    """

    def __init__(self, config: dict, processes: int, min_bars: int):
        self.config, self.processes, self.min_bars = config, processes, min_bars

    @contextlib.contextmanager
    def runner(self, source: ITickSource, region: str, calendar: Sequence[dt.date]) -> Iterator[CallRunner]:
        """A `CallRunner` over worker processes, alive for the `with` block."""
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["ticklake.sources.itick.source"])
        workers = [ProcessPoolExecutor(1, mp_context=ctx, initializer=_worker_init, initargs=(self.config,))
                   for _ in range(self.processes)]

        def run(calls: Sequence[KlineRequest]) -> list[BatchAnswer]:
            futures = [workers[i % len(workers)].submit(_worker_fetch, region, request, calendar[0], calendar[-1])
                       for i, request in enumerate(calls)]
            answers = []
            for future in futures:
                answer, stats = future.result()
                source._remote = source._remote.plus(stats)
                answers.append(answer)
            return answers

        try:
            yield run
        finally:
            for worker in workers:
                worker.shutdown(wait=True, cancel_futures=True)


_WORKER: dict = {}


def _worker_init(config: dict) -> None:
    os.environ["TICKLAKE_REGIONS"] = ",".join(config["regions"])
    _WORKER["source"] = open_source(ITickConfig(**config["config"]), tags=config["tags"])


def _worker_fetch(region: str, request: KlineRequest, first: dt.date, last: dt.date
                  ) -> tuple[BatchAnswer, FetchReport]:
    source: ITickSource = _WORKER["source"]
    before = source.client.stats
    keep = _WORKER.get(("filter", region, first, last))
    if keep is None:
        keep = _WORKER[("filter", region, first, last)] = _PageFilter(markets.sessions(region, first, last))
    answer = source._fetch(region, markets.market(region).timezone, request, keep)
    return answer, source.client.stats.minus(before)
