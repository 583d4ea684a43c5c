"""Nightly refresh: every default region, one trading date each (its last completed session)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from benchmarks.config import NIGHTLY_REGIONS
from benchmarks.scenarios.common import bench_home, wiring
from benchmarks.worker import peak_rss_mb
from ticklake.datasets.context import RunContext


def run(params: dict[str, Any]) -> dict[str, Any]:
    from resources.storage import StorageResource
    from ticklake import markets
    from ticklake.datasets.klines import ingest_daily_bars, universe
    from ticklake.datasets.security_master import refresh_securities
    from ticklake.sources.itick.source import open_source

    regions = tuple(params.get("regions") or NIGHTLY_REGIONS)
    quota = params.get("quota")  # {"plan": "base", "calls_per_window": 120, "window_seconds": 1.0} or None
    extra = {} if not quota else {"plan": str(quota["calls_per_window"]), "calls_per_window": quota["calls_per_window"],
                                  "window_seconds": quota["window_seconds"]}
    now = dt.datetime.now(dt.UTC)
    dates = {r: markets.last_completed_session(r, now) for r in regions}
    with bench_home(None) as home, wiring(params["transport"], symbols=params["symbols"], seed=params["seed"],
                                          regions=regions, home=home, **extra) as wired:
        storage = StorageResource(home=str(home))
        lake = storage.lakehouse()
        reference = open_source(wired.config)
        for region in regions:  # preloaded: the security master exists before the nightly run
            refresh_securities(RunContext(lake, "bench-ref", now, reference), region)
        codes = {r: universe(lake, r) for r in regions}
        if quota:  # start the measured run with an empty quota window, as after a quiet night
            time.sleep(quota["window_seconds"] * 1.1)
        wired.simulator.counters.reset()
        wired.clock.cpu_s = 0.0
        source = open_source(wired.config)
        rss_before = peak_rss_mb()
        started = time.perf_counter()
        per_region = {}
        for region in regions:
            t0 = time.perf_counter()
            before = source.spent().calls
            result = ingest_daily_bars(RunContext(lake, "bench", now, source),
                                       region, dates=[dates[region]], codes=codes[region])
            per_region[region] = {"date": dates[region].isoformat(), "symbols": len(codes[region]),
                                  "bars": result.rows, "calls": result.fetch.calls - before,
                                  "wall_s": round(time.perf_counter() - t0, 3)}
        wall = time.perf_counter() - started
        server = wired.simulator.counters.snapshot()
        sim_cpu = wired.clock.cpu_s
        lake.close()
    fetch = source.spent()
    return {
        "transport": params["transport"] + (f"+quota:{quota['plan']}" if quota else ""),
        "regions": ",".join(regions),
        "symbols_per_region": params["symbols"],
        "symbols": sum(len(c) for c in codes.values()),
        "bars": sum(r["bars"] for r in per_region.values()),
        "wall_s": round(wall, 3),  # each region's commit is visible to analysts when it returns: nothing to publish
        "sim_cpu_s": round(sim_cpu, 3),
        "calls": fetch.calls,
        "min_calls": sum(-(-len(c) // source.max_codes_per_call) for c in codes.values()),
        "rate_limited_429": fetch.rate_limited,
        "server_429": server["rate_limited"],
        "quota_waited_s": fetch.waited_s,
        "quota": quota,
        "per_region": per_region,
        "rss_before_mb": rss_before,
    }
