"""The iTick resource: configuration -> a quota-aware client -> the `MarketDataSource` assets use.

No ITICK_TOKEN and no ITICK_BASE_URL: the embedded, deterministic simulator answers in-process (no port).
ITICK_BASE_URL + ITICK_TOKEN: that server (the real api.itick.org, or a simulator on loopback).
ITICK_TOKEN alone: https://api.itick.org.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import multiprocessing
import os
from collections import defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import lru_cache
from pathlib import Path
from typing import Literal

import dagster as dg
import httpx
import numpy as np
import pandas as pd
from pydantic import Field, PrivateAttr

from resources.itick_client import AuditLog, ITickClient
from resources.rate_limit import SlidingWindowLimiter, calls_per_minute
from ticklake import markets, settings
from ticklake.sources import FetchReport
from ticklake.transforms import TimeConvention, bars_to_frame, plan_kline_requests, session_end_ms

logger = logging.getLogger(__name__)
ITICK_URL = "https://api.itick.org"
EMBEDDED = "embedded://itick-sim"
DAILY_KTYPE = 8


@lru_cache(maxsize=4)
def embedded_simulator(symbols_per_region: int, seed: int, calls_per_minute: int):
    """One in-process simulator per configuration and process (its calendars and series are cached)."""
    from itick_sim import SimSettings, Simulator

    return Simulator(SimSettings(seed=seed, symbols_per_region=symbols_per_region, regions=settings.regions(),
                                 calls_per_window=calls_per_minute, window_seconds=60.0))


class ITickResource(dg.ConfigurableResource):
    """iTick REST access within the plan's quota. The token is read from ITICK_TOKEN, never logged."""

    base_url: str | None = Field(default=None, description="ITICK_BASE_URL; unset -> api.itick.org with a token, "
                                 "else the embedded simulator")
    token: str | None = Field(default=None, description="ITICK_TOKEN (pass dg.EnvVar so the UI never shows it)")
    plan: str = Field(default="base", description="ITICK_PLAN: free|base|pro|premium or calls per minute")
    window_seconds: float = Field(default=60.0, description="Quota window; the plan's figure is per minute")
    quota_margin_s: float | None = Field(
        default=None, ge=0,
        description="Extra seconds added to the quota window to absorb network jitter (default 2% of the window)",
    )
    max_codes_per_call: int = Field(default=50, ge=1, description="Codes per batch call (ITICK_MAX_CODES)")
    max_bars_per_call: int = Field(default=1000, ge=1, le=1000, description="Bars per code per kline call")
    max_concurrency: int = Field(default=4, ge=1, le=32, description="Parallel requests (the limiter still rules)")
    fetch_processes: int = Field(
        default=0, ge=0, le=16,
        description="Processes that fetch and parse kline pages in parallel for big backfills (parsing JSON is "
                    "CPU-bound); 0 = one per CPU when a fetch covers at least `parallel_fetch_min_bars` bars",
    )
    parallel_fetch_min_bars: int = Field(default=2_000_000, ge=0)
    timeout_s: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=5, ge=0)
    backoff_base_s: float = Field(default=0.5, ge=0)
    bar_time_convention: Literal["exchange_local", "utc"] = Field(
        default="exchange_local",
        description="How kline `t` maps to a trading date: instant in the exchange's zone, or 00:00 UTC",
    )
    sim_symbols_per_region: int = Field(default=20, ge=1, description="Embedded simulator: symbols per region")
    sim_seed: int = Field(default=20240101, description="Embedded simulator: seed")
    home: str | None = Field(default=None, description="TICKLAKE_HOME for the audit log and shared quota state")

    _client: ITickClient | None = PrivateAttr(default=None)

    @classmethod
    def from_env(cls, **overrides) -> ITickResource:
        """Build from ITICK_* variables; the token stays an EnvVar reference in Dagster's config."""
        env = os.environ
        values: dict = {
            "plan": env.get("ITICK_PLAN", "base"),
            "max_codes_per_call": int(env.get("ITICK_MAX_CODES", "50")),
            "sim_symbols_per_region": int(env.get("TICKLAKE_SIM_SYMBOLS", "20")),
            "sim_seed": int(env.get("TICKLAKE_SIM_SEED", "20240101")),
            "bar_time_convention": env.get("ITICK_BAR_TIME", "exchange_local"),
            "fetch_processes": int(env.get("TICKLAKE_FETCH_PROCESSES", "0")),
        }
        if env.get("ITICK_BASE_URL"):
            values["base_url"] = dg.EnvVar("ITICK_BASE_URL")
        if env.get("ITICK_TOKEN"):
            values["token"] = dg.EnvVar("ITICK_TOKEN")
        return cls(**{**values, **overrides})

    # -- wiring ---------------------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        if self.base_url:
            return self.base_url
        return ITICK_URL if self.token else EMBEDDED

    @property
    def source_name(self) -> str:
        return "itick-sim" if self.endpoint == EMBEDDED else "itick"

    def client(self) -> ITickClient:
        if self._client is None:
            self._client = self._build_client()
        return self._client

    def _build_client(self) -> ITickClient:
        rate = calls_per_minute(self.plan)
        home = Path(self.home) if self.home else settings.home()
        paths = settings.Paths(home)
        transport: httpx.BaseTransport | None = None
        token = self.token
        if self.endpoint == EMBEDDED:
            sim = embedded_simulator(self.sim_symbols_per_region, self.sim_seed, rate)
            transport, token = httpx.WSGITransport(app=sim), "embedded-simulator"
        elif not token:
            raise ValueError("ITICK_BASE_URL is set but ITICK_TOKEN is not: the iTick API needs a token "
                             "(unset ITICK_BASE_URL to use the embedded simulator)")
        account = hashlib.sha256(f"{self.endpoint}\0{token}".encode()).hexdigest()[:16]  # never the token itself
        paths.state.mkdir(parents=True, exist_ok=True)
        limiter = SlidingWindowLimiter(rate, self.window_seconds, margin_s=self.quota_margin_s,
                                       state_file=paths.state / f"quota-{account}.txt")
        audit = AuditLog(paths.audit / f"api_calls-{dt.datetime.now(dt.UTC):%Y-%m-%d}.jsonl")
        return ITickClient(
            self.endpoint if self.endpoint != EMBEDDED else "http://itick-sim.local",
            token,
            limiter=limiter,
            timeout_s=self.timeout_s,
            max_retries=self.max_retries,
            backoff_base_s=self.backoff_base_s,
            transport=transport,
            audit=audit,
        )

    def source(self, tags: dict[str, str] | None = None) -> ITickSource:
        client = self.client()
        if tags:
            client.tags.update(tags)
        processes = self.fetch_processes or (os.cpu_count() or 1)
        return ITickSource(client, name=self.source_name, max_codes_per_call=self.max_codes_per_call,
                           max_bars_per_call=self.max_bars_per_call, max_concurrency=self.max_concurrency,
                           convention=self.bar_time_convention,
                           parallel=_ParallelFetch(self._worker_config(client.tags), processes,
                                                   self.parallel_fetch_min_bars) if processes > 1 else None)

    def _worker_config(self, tags: dict[str, str]) -> dict:
        """What a fetch worker process needs to rebuild this resource (held in memory only, never logged)."""
        config = {name: getattr(self, name) for name in type(self).model_fields}
        config["home"] = config["home"] or str(settings.home())
        return {"resource": config, "tags": dict(tags), "regions": settings.regions()}

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


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

    def list_securities(self, region: str) -> pd.DataFrame:
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
        return frame.drop_duplicates("symbol", keep="last").reset_index(drop=True)

    def daily_bars(self, region: str, codes: Sequence[str], sessions: Sequence[dt.date]
                   ) -> Iterator[tuple[tuple[dt.date, ...], pd.DataFrame]]:
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
                for item in self.parallel.pages(self, region, pages, calendar):
                    produced += 1
                    yield item
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
                yield page_sessions, pd.concat(list(frames), ignore_index=True)

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
        ctx.set_forkserver_preload(["resources.itick"])
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
    resource = ITickResource(**config["resource"])
    _WORKER["source"] = resource.source(tags=config["tags"])


def _worker_fetch(region: str, request, first: dt.date, last: dt.date) -> tuple[pd.DataFrame, FetchReport]:
    source: ITickSource = _WORKER["source"]
    before = source.client.stats
    keep = _WORKER.get(("filter", region, first, last))
    if keep is None:
        keep = _WORKER[("filter", region, first, last)] = _PageFilter(markets.sessions(region, first, last))
    frame = keep(source._fetch(region, markets.market(region).timezone, request), request.sessions)
    return frame, source.client.stats.minus(before)
