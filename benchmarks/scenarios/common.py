"""What every scenario run shares: the session window, the two transports, peak RSS."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from benchmarks.config import UNLIMITED_PLAN
from ticklake import markets

TRANSPORTS = ("inprocess", "loopback")


def session_window(region: str, count: int, now: dt.datetime) -> list[dt.date]:
    """The last `count` completed sessions of `region` (oldest first)."""
    last = markets.last_completed_session(region, now)
    if last is None:
        raise RuntimeError(f"{region}: no completed session")
    days = markets.sessions(region, last - dt.timedelta(days=count * 2 + 30), last)
    if len(days) < count:
        raise RuntimeError(f"{region}: only {len(days)} sessions available, {count} asked")
    return days[-count:]


@dataclass
class Wiring:
    resource: object  # resources.itick.ITickResource
    simulator: object  # itick_sim.Simulator (server side, for its request counters)
    endpoint: str


@contextlib.contextmanager
def wiring(transport: str, *, symbols: int, seed: int, regions: tuple[str, ...], home: Path,
           plan: str = UNLIMITED_PLAN, calls_per_window: int | None = None, window_seconds: float = 60.0
           ) -> Iterator[Wiring]:
    """An ITickResource wired to the simulator in-process (WSGI, no socket) or over loopback HTTP."""
    from itick_sim import SimSettings, Simulator, serve
    from resources.itick import ITickResource, embedded_simulator

    if transport == "inprocess":
        if calls_per_window is not None:
            raise ValueError("an enforced quota is only supported over loopback")
        os.environ["TICKLAKE_REGIONS"] = ",".join(regions)  # the embedded simulator's regions
        resource = ITickResource(plan=plan, sim_symbols_per_region=symbols, sim_seed=seed, home=str(home))
        sim = embedded_simulator(symbols, seed, int(plan))
        yield Wiring(resource, sim, resource.endpoint)
        return
    if transport != "loopback":
        raise ValueError(f"unknown transport {transport!r}")
    sim = Simulator(SimSettings(seed=seed, regions=regions, symbols_per_region=symbols,
                                calls_per_window=calls_per_window, window_seconds=window_seconds))
    server = serve(sim)
    try:
        resource = ITickResource(base_url=server.url, token="bench", plan=plan, window_seconds=window_seconds,
                                 home=str(home))
        yield Wiring(resource, sim, server.url)
    finally:
        server.close()


@contextlib.contextmanager
def bench_home(keep: str | None) -> Iterator[Path]:
    """A fresh TICKLAKE_HOME: `keep` (kept afterwards, e.g. the warehouse the queries read) or a temp dir."""
    if keep:
        path = Path(keep)
        path.mkdir(parents=True, exist_ok=False)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="ticklake-bench-home-") as tmp:
        yield Path(tmp)
