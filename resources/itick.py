"""The iTick resource: configuration -> a quota-aware client -> the `MarketDataSource` assets use.

No ITICK_TOKEN and no ITICK_BASE_URL: the embedded, deterministic simulator answers in-process (no port).
ITICK_BASE_URL + ITICK_TOKEN: that server (the real api.itick.org, or a simulator on loopback).
ITICK_TOKEN alone: https://api.itick.org.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections import defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
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
    max_codes_per_call: int = Field(default=50, ge=1, description="Codes per batch call (ITICK_MAX_CODES)")
    max_bars_per_call: int = Field(default=1000, ge=1, le=1000, description="Bars per code per kline call")
    max_concurrency: int = Field(default=4, ge=1, le=32, description="Parallel requests (the limiter still rules)")
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
        limiter = SlidingWindowLimiter(rate, self.window_seconds, state_file=paths.state / f"quota-{account}.txt")
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
        return ITickSource(client, name=self.source_name, max_codes_per_call=self.max_codes_per_call,
                           max_bars_per_call=self.max_bars_per_call, max_concurrency=self.max_concurrency,
                           convention=self.bar_time_convention)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class ITickSource:
    """`MarketDataSource` over the iTick protocol: fewest calls, pages newest first."""

    def __init__(self, client: ITickClient, *, name: str, max_codes_per_call: int, max_bars_per_call: int,
                 max_concurrency: int, convention: TimeConvention):
        self.client, self.name = client, name
        self.max_codes_per_call, self.max_bars_per_call = max_codes_per_call, max_bars_per_call
        self.max_concurrency, self.convention = max_concurrency, convention
        self._start = client.stats

    def spent(self) -> FetchReport:
        s = self.client.stats.minus(self._start)
        return FetchReport(calls=s.calls, attempts=s.attempts, retries=s.retries, rate_limited=s.rate_limited,
                           rows=s.rows, waited_s=round(s.waited_s, 3))

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
        calendar_set = set(calendar)
        with ThreadPoolExecutor(max_workers=self.max_concurrency, thread_name_prefix="itick") as pool:
            for page_sessions, page_requests in pages.items():
                payloads = pool.map(lambda r: self._fetch(region, market.timezone, r), page_requests)
                frame = pd.concat(list(payloads), ignore_index=True)
                yield page_sessions, _keep_page(frame, page_sessions, calendar_set)

    def _fetch(self, region: str, timezone: str, request) -> pd.DataFrame:
        payload = self.client.klines("stock", region, request.codes, ktype=DAILY_KTYPE, limit=request.limit,
                                     et_ms=session_end_ms(request.end, timezone, self.convention))
        return bars_to_frame(payload, region=region, timezone=timezone, convention=self.convention)


def _keep_page(frame: pd.DataFrame, page: Sequence[dt.date], calendar: set[dt.date]) -> pd.DataFrame:
    """Rows for the page's sessions, plus any bar dated on a non-session inside the page's span.

    Older bars (a suspended symbol's `limit` reaching back) and unrequested sessions are dropped; a bar
    on a holiday is kept so validation rejects it loudly (usually a wrong bar time convention).
    """
    if frame.empty:
        return frame
    days = frame["trade_date"].to_numpy(dtype="datetime64[ms]")
    wanted = np.array(sorted(page), dtype="datetime64[ms]")
    sessions = np.array(sorted(calendar), dtype="datetime64[ms]")
    in_span = (days >= wanted[0]) & (days <= wanted[-1])
    keep = np.isin(days, wanted) | (in_span & ~np.isin(days, sessions))
    return frame[keep].reset_index(drop=True)
