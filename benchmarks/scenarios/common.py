"""What every scenario run shares: the session window, the two transports, peak RSS."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from benchmarks.config import UNLIMITED_PLAN
from ticklake import markets

TRANSPORTS = ("inprocess", "loopback")  # what every API scenario runs on
# The simulator in its own interpreter (python -m itick_sim) over loopback: it no longer shares the GIL with
# the pipeline, which is closer to the real API (someone else's CPU). Backfill only; counters come from the client.
SEPARATE = "loopback-process"


def session_window(region: str, count: int, now: dt.datetime) -> list[dt.date]:
    """The last `count` completed sessions of `region` (oldest first)."""
    last = markets.last_completed_session(region, now)
    if last is None:
        raise RuntimeError(f"{region}: no completed session")
    days = markets.sessions(region, last - dt.timedelta(days=count * 2 + 30), last)
    if len(days) < count:
        raise RuntimeError(f"{region}: only {len(days)} sessions available, {count} asked")
    return days[-count:]


class ProcessClock:
    """CPU seconds (user + system) a child process has used, read from /proc; resettable like SimClock."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._base = self._read()

    def _read(self) -> float:
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    @property
    def cpu_s(self) -> float:
        return self._read() - self._base

    @cpu_s.setter
    def cpu_s(self, value: float) -> None:
        self._base = self._read() - value


class SimClock:
    """CPU seconds the simulator spends answering (thread CPU time, summed over its threads).

    Subtracting it from a run's wall time estimates what the pipeline alone costs: on 2 cores with the GIL
    the process is mostly single-core, so the simulator's CPU time is time the pipeline did not get.
    """

    def __init__(self, simulator) -> None:
        self.cpu_s = 0.0
        self._lock = threading.Lock()
        handle = simulator._handle  # instance attribute: Simulator.__call__ looks it up on self

        def timed(environ, path):
            t0 = time.thread_time()
            try:
                return handle(environ, path)
            finally:
                spent = time.thread_time() - t0
                with self._lock:
                    self.cpu_s += spent

        simulator._handle = timed


@dataclass
class Wiring:
    config: object  # ticklake.sources.itick.config.ITickConfig
    simulator: object  # itick_sim.Simulator (server side, for its request counters)
    endpoint: str
    clock: SimClock


@contextlib.contextmanager
def wiring(transport: str, *, symbols: int, seed: int, regions: tuple[str, ...], home: Path,
           plan: str = UNLIMITED_PLAN, calls_per_window: int | None = None, window_seconds: float = 60.0
           ) -> Iterator[Wiring]:
    """An ITickConfig wired to the simulator in-process (WSGI, no socket) or over loopback HTTP."""
    from itick_sim import SimSettings, Simulator, serve
    from ticklake.sources.itick.config import ITickConfig, embedded_simulator

    if transport == "inprocess":
        if calls_per_window is not None:
            raise ValueError("an enforced quota is only supported over loopback")
        os.environ["TICKLAKE_REGIONS"] = ",".join(regions)  # the embedded simulator's regions
        config = ITickConfig(plan=plan, sim_symbols_per_region=symbols, sim_seed=seed, home=str(home))
        sim = embedded_simulator(symbols, seed, int(plan), tuple(regions))
        yield Wiring(config, sim, config.endpoint, SimClock(sim))
        return
    if transport == SEPARATE:
        yield from _separate_process(symbols=symbols, seed=seed, regions=regions, home=home, plan=plan,
                                     calls_per_window=calls_per_window)
        return
    if transport != "loopback":
        raise ValueError(f"unknown transport {transport!r}")
    sim = Simulator(SimSettings(seed=seed, regions=regions, symbols_per_region=symbols,
                                calls_per_window=calls_per_window, window_seconds=window_seconds))
    server = serve(sim)
    try:
        config = ITickConfig(base_url=server.url, token="bench", plan=plan, window_seconds=window_seconds,
                             home=str(home))
        yield Wiring(config, sim, server.url, SimClock(sim))
    finally:
        server.close()


class _NoCounters:
    """Stands in for the simulator's counters when it runs in another process (the client counts instead)."""

    def snapshot(self) -> dict:
        return {"total": None, "by_path": {}, "by_status": {}, "rate_limited": None}

    def reset(self) -> None:
        pass


class _RemoteSimulator:
    counters = _NoCounters()


def _separate_process(*, symbols: int, seed: int, regions: tuple[str, ...], home: Path, plan: str,
                      calls_per_window: int | None) -> Iterator[Wiring]:
    from ticklake.sources.itick.config import ITickConfig

    with standalone_simulator(symbols=symbols, seed=seed, regions=regions,
                              calls_per_window=calls_per_window) as (url, proc):
        config = ITickConfig(base_url=url, token="bench", plan=plan, home=str(home))
        yield Wiring(config, _RemoteSimulator(), url, ProcessClock(proc.pid))


@contextlib.contextmanager
def standalone_simulator(*, symbols: int, seed: int, regions: tuple[str, ...], calls_per_window: int | None = None,
                         history_start: dt.date | None = None, log: Path | None = None
                         ) -> Iterator[tuple[str, subprocess.Popen]]:
    """`python -m itick_sim --port 0` in its own interpreter (as a user runs it); yields its URL and process.

    Its stderr goes to `log` (or nowhere) and is quoted when it fails to start; it is always stopped.
    """
    cmd = [sys.executable, "-m", "itick_sim", "--port", "0", "--seed", str(seed), "--symbols", str(symbols),
           "--regions", ",".join(regions)]
    if calls_per_window is not None:
        cmd += ["--calls-per-minute", str(calls_per_window)]
    if history_start is not None:
        cmd += ["--history-start", history_start.isoformat()]
    err = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below, after the process
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    try:
        url = _first_line(proc, timeout_s=60.0)
        if not url.startswith("http://"):
            why = log.read_text()[-2000:] if log and log.exists() else ""
            raise RuntimeError(f"the simulator process did not start (exit {proc.poll()}): {' '.join(cmd)}\n{why}")
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log:
            err.close()
        if proc.stdout:
            proc.stdout.close()  # else the pipe is left to the garbage collector (a ResourceWarning)


def _first_line(proc: subprocess.Popen, timeout_s: float) -> str:
    """The first line the process prints, or "" if it exits or stays silent for `timeout_s`."""
    if proc.stdout is None:
        return ""
    ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
    return proc.stdout.readline().strip() if ready else ""


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
