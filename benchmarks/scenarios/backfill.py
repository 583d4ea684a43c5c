"""Backfill: one region, N symbols x S sessions, end to end (symbol list -> klines -> validate -> the DuckLake lake)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from benchmarks.config import BACKFILL_REGION
from benchmarks.scenarios.common import SEPARATE, bench_home, session_window, wiring
from benchmarks.stats import theoretical_min_calls
from benchmarks.worker import peak_rss_mb
from ticklake.datasets.context import RunContext


def run(params: dict[str, Any]) -> dict[str, Any]:
    from resources.storage import StorageResource
    from ticklake.datasets.klines import ingest_daily_bars, universe
    from ticklake.datasets.security_master import refresh_securities
    from ticklake.sources.itick.source import open_source

    transport, symbols, n_sessions = params["transport"], params["symbols"], params["sessions"]
    region = params.get("region", BACKFILL_REGION)
    cap = params.get("limit_codes")  # the baseline comparison backfills only the first N codes
    now = dt.datetime.now(dt.UTC)
    sessions = session_window(region, n_sessions, now)  # also warms the exchange calendar (once per process)
    with bench_home(params.get("keep_home")) as home, \
            wiring(transport, symbols=symbols, seed=params["seed"], regions=(region,), home=home) as wired:
        storage = StorageResource(home=str(home))
        lake = storage.lakehouse()
        rss_before = peak_rss_mb()
        started = time.perf_counter()
        ref_source = open_source(wired.config)
        refresh_securities(RunContext(lake, "bench", now, ref_source), region)
        ref = ref_source.spent()  # spent() is cumulative over the shared client: read it before the klines
        codes = universe(lake, region)
        if cap:
            codes = codes[:cap]
        listed = time.perf_counter()
        bar_source = open_source(wired.config)
        result = ingest_daily_bars(RunContext(lake, "bench", now, bar_source), region, dates=sessions, codes=codes)
        finished = time.perf_counter()
        lake_mb = lake_megabytes(lake)  # the lake analysts read: no copy is published any more
        lake.close()
        server = wired.simulator.counters.snapshot()
        sim_cpu = wired.clock.cpu_s
    fetch = result.fetch
    wall = finished - started
    minimum = theoretical_min_calls(len(codes), len(sessions), batch_cap=bar_source.max_codes_per_call,
                                    page=bar_source.max_bars_per_call, reference_calls=ref.calls)
    calls = fetch.calls + ref.calls
    return {
        "transport": transport,
        "endpoint": wired.endpoint,
        "region": region,
        "symbols": len(codes),
        "sessions": len(sessions),
        "first_session": sessions[0].isoformat(),
        "last_session": sessions[-1].isoformat(),
        "bars": result.rows,
        "bars_fetched": fetch.rows,  # a symbol's `limit` may reach before its listing window: fetched, dropped
        "wall_s": round(wall, 3),
        "reference_s": round(listed - started, 3),
        "klines_s": round(finished - listed, 3),
        "lake_mb": lake_mb,
        "bars_per_s": round(result.rows / wall, 1) if wall else None,
        "sim_cpu_s": round(sim_cpu, 3),
        # the simulator's CPU is the pipeline's loss only when both share this interpreter (and its GIL)
        "pipeline_bars_per_s": round(result.rows / (wall - sim_cpu), 1) if wall > sim_cpu and transport != SEPARATE
        else None,
        "kline_calls": fetch.calls,
        "reference_calls": ref.calls,
        "calls": calls,
        "attempts": fetch.attempts + ref.attempts,
        "min_calls": minimum,
        "call_ratio": round(calls / minimum, 4) if minimum else None,
        "rate_limited_429": fetch.rate_limited + ref.rate_limited,
        "server_requests": server["total"],
        "server_429": server["rate_limited"] if server["rate_limited"] is not None  # None: simulator elsewhere
        else fetch.rate_limited + ref.rate_limited,
        "quota_waited_s": fetch.waited_s + ref.waited_s,
        "rss_before_mb": rss_before,
    }


def lake_megabytes(lake) -> float:
    """klines_daily's data files, in MB (what a backfill leaves on disk or in the bucket)."""
    with lake.connection() as con:
        size = con.execute("SELECT coalesce(sum(data_file_size_bytes), 0) FROM ducklake_list_files('lake', "
                           "'klines_daily')").fetchone()[0]
    return round(int(size) / 1e6, 1)
