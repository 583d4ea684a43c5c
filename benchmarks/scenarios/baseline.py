"""The seed article's approach (../shared/seed-article.txt, section 6.2 + the `cache_kline` snippet), as a peer.

Kept faithful on purpose: module-level `requests.get` per call (a new connection each time, as in the
article), the single-code `/stock/kline` endpoint, one request per symbol and page, one SQLite table per
code, one INSERT per bar and a commit per symbol. The only additions the article needs to backfill
history at all: `limit=1000` (the API's maximum) and paging back through history with `et`, and a
symbol list to iterate (one `/symbol/list` call, counted). Retries are not exercised: there is no quota
on the simulator here, and the article's decorator only retries `None`, which `get_kline_data` never returns.
The simulator runs in this process (`loopback`, sharing the GIL, as the suite always did) or in its own
(`loopback-process`, as a user runs it and as the user-path comparison does).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.config import BACKFILL_REGION
from benchmarks.scenarios.common import SEPARATE, bench_home, session_window, standalone_simulator
from benchmarks.worker import peak_rss_mb

try:  # the article's HTTP library; httpx.Client (keep-alive, so kinder to the baseline) if it is missing
    import requests
except ImportError:  # pragma: no cover - requests ships with the locked environment
    requests = None

API_TOKEN = "bench"
BASE_URL = "https://api.itick.org"  # set to the loopback simulator by run()
DB_PATH = "market_data.db"  # set under the run's home by run()
headers = {"accept": "application/json", "token": API_TOKEN}
_http = None  # httpx fallback client


def _get(url: str, params: dict[str, Any]):
    if requests is not None:
        return requests.get(url, headers=headers, params=params)
    return _http.get(url, headers=headers, params=params)


# --- the article's code (6.2 get_kline_data, plus `et` for paging) --------------------------------------
def get_kline_data(region, code, ktype, limit=100, et=None):
    # ktype: 1-1min 2-5min 3-15min 4-30min 5-60min 8-Daily
    url = f"{BASE_URL}/stock/kline"
    params = {"region": region, "code": code, "kType": ktype, "limit": limit}
    if et is not None:
        params["et"] = et
    response = _get(url, params)
    if response.status_code == 200:
        data = response.json()
        return data.get("data", []) if data.get("code") == 0 else []
    return []


# --- the article's code (cache_kline), verbatim but for the database path ----------------------------------
def cache_kline(code, kline_data):
    conn = sqlite3.connect(DB_PATH)
    cursor = conn.cursor()
    cursor.execute(f"""
        CREATE TABLE IF NOT EXISTS kline_{code} (
            timestamp TEXT, open REAL, high REAL, low REAL, close REAL, volume REAL
        )
    """)
    for k in kline_data:
        cursor.execute(f"INSERT INTO kline_{code} VALUES (?,?,?,?,?,?)",
                       (k['t'], k['o'], k['h'], k['l'], k['c'], k['v']))
    conn.commit()
    conn.close()


def get_symbols(region):
    response = _get(f"{BASE_URL}/symbol/list", {"type": "stock", "region": region})
    data = response.json()
    return [item["c"] for item in (data.get("data") or [])] if data.get("code") == 0 else []


def backfill_symbol(region, code, start_ms, limit=1000):
    """Every bar of `code` from `start_ms` on: newest page first, then `et` just before the oldest bar seen."""
    bars, calls, et = [], 0, None
    while True:
        page = get_kline_data(region, code, ktype=8, limit=limit, et=et)
        calls += 1
        bars = [k for k in page if k["t"] >= start_ms] + bars
        if len(page) < limit or not page or min(k["t"] for k in page) < start_ms:
            return bars, calls
        et = min(k["t"] for k in page) - 1


@contextlib.contextmanager
def _simulator(transport: str, *, seed: int, region: str, universe: int) -> Iterator[tuple[str, Any]]:
    """The simulator over loopback: in this process (`loopback`) or in its own (`loopback-process`, as a user
    runs it and as the user-path scenario does). Yields its URL and a counters snapshot function (or None)."""
    from itick_sim import SimSettings, Simulator, serve

    if transport == SEPARATE:
        with standalone_simulator(symbols=universe, seed=seed, regions=(region,)) as (url, _):
            yield url, None
        return
    if transport != "loopback":
        raise ValueError(f"unknown baseline transport {transport!r}")
    sim = Simulator(SimSettings(seed=seed, regions=(region,), symbols_per_region=universe))
    server = serve(sim)
    try:
        yield server.url, sim.counters.snapshot
    finally:
        server.close()


def run(params: dict[str, Any]) -> dict[str, Any]:
    import httpx
    import pandas as pd

    from ticklake import markets

    global BASE_URL, DB_PATH, _http
    region = params.get("region", BACKFILL_REGION)
    transport = params.get("transport", "loopback")
    now = dt.datetime.now(dt.UTC)
    sessions = session_window(region, params["sessions"], now)
    start_ms = int(pd.Timestamp(sessions[0], tz=markets.market(region).timezone).value // 1_000_000)
    with _simulator(transport, seed=params["seed"], region=region, universe=params["universe"]) as (url, counters):
        with bench_home(None) as home:
            BASE_URL, DB_PATH = url, str(Path(home) / "market_data.db")
            _http = httpx.Client() if requests is None else None
            rss_before = peak_rss_mb()
            started = time.perf_counter()
            codes = sorted(get_symbols(region))[: params["symbols"]]  # the same codes the ticklake peer takes
            calls, bars = 1, 0
            for code in codes:
                kline, n = backfill_symbol(region, code, start_ms)
                cache_kline(code, kline)
                calls += n
                bars += len(kline)
            wall = time.perf_counter() - started
            with sqlite3.connect(DB_PATH) as con:
                tables = con.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
                stored = sum(con.execute(f"SELECT count(*) FROM kline_{c}").fetchone()[0] for c in codes)
            db_mb = Path(DB_PATH).stat().st_size / 2**20
            if _http is not None:
                _http.close()
        server_requests = counters()["total"] if counters else None
    return {
        "transport": transport,
        "http_client": "requests.get" if requests is not None else "httpx.Client",
        "region": region,
        "symbols": len(codes),
        "sessions": len(sessions),
        "first_session": sessions[0].isoformat(),
        "last_session": sessions[-1].isoformat(),
        "bars": bars,
        "bars_stored": stored,
        "tables": tables,
        "db_mb": round(db_mb, 2),
        "wall_s": round(wall, 3),
        "bars_per_s": round(bars / wall, 1) if wall else None,
        "calls": calls,
        "server_requests": server_requests,
        "rss_before_mb": rss_before,
    }
