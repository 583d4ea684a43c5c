"""A production-profile cluster on one machine, for the distributed test and benchmark: a PostgreSQL-backed Dagster
instance, Celery workers on RabbitMQ (results in Redis), the lake and warehouse in moto's S3 server, the quota
and the warehouse lock in PostgreSQL. Every worker and run process gets its own DAGSTER_HOME and TICKLAKE_HOME:
they share only what crosses the network, as workers on separate machines would.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@dataclass
class Cluster:
    base: Path
    env: dict[str, str]  # what every process of the deployment is configured with
    queue: str
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)
    marks: dict[str, int] = field(default_factory=dict)  # each worker's log length when the klines runs started

    @classmethod
    def create(cls, base: Path, *, postgres_url: str, storage_url: str, itick_url: str, token: str, plan: int,
               regions: list[str], start_date: str, s3_env: dict[str, str]) -> Cluster:
        queue = f"ticklake-test-{uuid.uuid4().hex[:8]}"
        base.mkdir(parents=True, exist_ok=True)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("TICKLAKE_", "ITICK_", "DAGSTER_"))},
            **s3_env,
            "PYTHONPATH": str(ROOT),
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # dagster-celery starts `celery` from PATH
            "DAGSTER_POSTGRES_URL": postgres_url.replace("postgresql://", "postgresql+psycopg2://", 1),
            "TICKLAKE_MAX_CONCURRENT_RUNS": "4",
            "TICKLAKE_EXECUTOR": "celery",
            "TICKLAKE_CELERY_BROKER": os.environ.get("TICKLAKE_TEST_BROKER_URL",
                                                     "pyamqp://guest:guest@127.0.0.1:5672//"),
            "TICKLAKE_CELERY_BACKEND": os.environ.get("TICKLAKE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
            "TICKLAKE_CELERY_QUEUE": queue,
            "TICKLAKE_STORAGE_URL": storage_url,
            "TICKLAKE_COORDINATION_URL": postgres_url,
            "TICKLAKE_REGIONS": ",".join(regions),
            "TICKLAKE_START_DATE": start_date,
            "ITICK_BASE_URL": itick_url,
            "ITICK_TOKEN": token,
            "ITICK_PLAN": str(plan),
        }
        return cls(base, env, queue)

    def machine_env(self, name: str) -> dict[str, str]:
        """The environment of one "machine": the shared configuration plus homes of its own."""
        home = self.base / name
        dagster_home = home / "dagster_home"
        dagster_home.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "deploy" / "dagster.yaml", dagster_home / "dagster.yaml")
        return {**self.env, "DAGSTER_HOME": str(dagster_home), "TICKLAKE_HOME": str(home / "ticklake")}

    def start_worker(self, name: str) -> subprocess.Popen:
        """`dagster-celery worker start` as the README tells an operator, one process taking one step at a time."""
        log = open(self.base / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app",
             "-y", str(ROOT / "deploy" / "celery.yaml"), "-q", self.queue, "-n", f"{name}-{self.queue[-8:]}", "--",
             "--concurrency", "1", "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=ROOT, env=self.machine_env(name), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.workers[name] = proc
        return proc

    def wait_ready(self, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        for name in self.workers:
            while b" ready." not in self.log(name):
                if self.workers[name].poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"worker {name} did not start:\n{self.log(name).decode()[-3000:]}")
                time.sleep(0.2)

    def log(self, name: str) -> bytes:
        path = self.base / f"{name}.log"
        return path.read_bytes() if path.exists() else b""

    def kill_worker(self, name: str) -> None:
        """SIGKILL the worker and its pool: no goodbye to the broker, as when its machine dies."""
        proc = self.workers[name]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def stop(self) -> None:
        for proc in self.workers.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.workers.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)

    def launch(self, name: str, job: str, *, run_config: dict, tags: dict[str, str] | None = None,
               partition: str | None = None) -> subprocess.Popen:
        """`dagster job execute` of one run from its own "machine" (the run's steps go to the workers)."""
        config = self.base / f"{name}.run.json"
        config.write_text(json.dumps(run_config))
        tags = dict(tags or {})
        if partition is not None:
            tags["dagster/partition"] = partition
        log = open(self.base / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        return subprocess.Popen(
            [str(BIN / "dagster"), "job", "execute", "-m", "definitions", "-a", "defs", "-d", str(ROOT), "-j", job,
             "-c", str(config), "--tags", json.dumps(tags)],
            cwd=ROOT, env=self.machine_env(name), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


@dataclass
class Backfill:
    """What one distributed backfill took."""

    reference_s: float
    klines_s: float
    failed: dict[str, str]  # run name -> the tail of its log, for runs that did not succeed


def klines_range_tags(region: str, first_month: str, last_month: str) -> dict[str, str]:
    """A single-run backfill of one region's months, as the UI launches it."""
    return {"dagster/asset_partition_range_start": f"{first_month}|{region}",
            "dagster/asset_partition_range_end": f"{last_month}|{region}"}


REFERENCE_ASSETS = ("securities", "trading_calendar", "security_master", "corporate_actions")


def run_configs(now: str, itick: dict | None = None) -> tuple[dict, dict]:
    """Run config of the reference and the klines runs: the instant they act at, and iTick resource fields to
    override (those not given take Dagster's defaults, the server and token come from ITICK_BASE_URL and
    ITICK_TOKEN, so the plan is passed on from ITICK_PLAN)."""
    resources = {"itick": {"config": {"plan": {"env": "ITICK_PLAN"}, **itick}}} if itick else {}
    reference = {"ops": {name: {"config": {"now": now}} for name in REFERENCE_ASSETS}, "resources": resources}
    return reference, {"ops": {"klines_daily": {"config": {"now": now}}}, "resources": resources}


def backfill(cluster: Cluster, regions: list[str], first_month: str, last_month: str,
             run_config: tuple[dict, dict], *, while_klines_run=None, timeout_s: float = 900) -> Backfill:
    """Reference data, then klines, one run per region launched at once (their steps go to the workers).
    `while_klines_run(cluster)` is called once the klines runs are launched (to kill a worker, say)."""
    started = time.perf_counter()
    runs = {f"reference-{r}": cluster.launch(f"reference-{r}", "reference_refresh", run_config=run_config[0],
                                             partition=r) for r in regions}
    failed = _wait(cluster, runs, timeout_s)
    reference_s = time.perf_counter() - started
    if failed:
        return Backfill(reference_s, 0.0, failed)
    started = time.perf_counter()
    cluster.marks = {name: len(cluster.log(name)) for name in cluster.workers}
    runs = {f"klines-{r}": cluster.launch(f"klines-{r}", "nightly_refresh", run_config=run_config[1],
                                          tags=klines_range_tags(r, first_month, last_month)) for r in regions}
    if while_klines_run is not None:
        while_klines_run(cluster)
    failed = _wait(cluster, runs, timeout_s)
    return Backfill(reference_s, time.perf_counter() - started, failed)


def _wait(cluster: Cluster, runs: dict[str, subprocess.Popen], timeout_s: float) -> dict[str, str]:
    failed = {}
    for name, proc in runs.items():
        try:
            code = proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            code = -1
        if code != 0:
            failed[name] = cluster.log(name).decode(errors="replace")[-4000:]
    return failed


def audited_calls(cluster: Cluster) -> list[float]:
    """When every iTick call started, from every machine's audit log (epoch seconds, sorted)."""
    import datetime as dt

    starts = []
    for path in cluster.base.glob("*/ticklake/audit/*.jsonl"):
        for line in path.read_text().splitlines():
            starts.append(dt.datetime.fromisoformat(json.loads(line)["at"]).timestamp())
    return sorted(starts)


def busiest_window(starts: list[float], window_s: float) -> int:
    """The most calls that started within any `window_s` seconds."""
    best, first = 0, 0
    for last, at in enumerate(starts):
        while at - starts[first] >= window_s:
            first += 1
        best = max(best, last - first + 1)
    return best
