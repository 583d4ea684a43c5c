"""A production-profile cluster on one machine, for the distributed test and benchmark: a PostgreSQL-backed Dagster
instance, Celery workers on RabbitMQ (results in Redis), the lake's data in moto's S3 server and its catalog, the
quota and the commit locks in PostgreSQL. Every worker and run process gets its own DAGSTER_HOME and TICKLAKE_HOME:
they share only what crosses the network, as workers on separate machines would.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tests.services import RABBITMQ_URL, REDIS_URL

if TYPE_CHECKING:
    from tests.netns import Namespace

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@dataclass
class Cluster:
    base: Path
    env: dict[str, str]  # what every process of the deployment is configured with
    queue: str
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)
    marks: dict[str, int] = field(default_factory=dict)  # each worker's log length when the klines runs started
    daemon: subprocess.Popen | None = None
    webserver: subprocess.Popen | None = None

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
            "TICKLAKE_CELERY_BROKER": RABBITMQ_URL,
            "TICKLAKE_CELERY_BACKEND": REDIS_URL,
            "TICKLAKE_CELERY_QUEUE": queue,
            "TICKLAKE_STORAGE_URL": storage_url,
            "TICKLAKE_CATALOG": f"postgres:{postgres_url}",
            "TICKLAKE_COORDINATION_URL": postgres_url,
            "TICKLAKE_REGIONS": ",".join(regions),
            "TICKLAKE_START_DATE": start_date,
            "ITICK_BASE_URL": itick_url,
            "ITICK_TOKEN": token,
            "ITICK_PLAN": str(plan),
        }
        cluster = cls(base, env, queue)
        cluster.create_instance_storage()
        return cluster

    def create_instance_storage(self) -> None:
        """`dagster instance migrate` once, as docs/deployment.md tells an operator to before starting the processes:
        dagster-postgres creates its tables when a process finds them missing, and workers and the daemon starting
        together on an empty database race to create the same table (DuplicateTable)."""
        done = subprocess.run([str(BIN / "dagster"), "instance", "migrate"], cwd=ROOT,
                              env=self.machine_env("operator"), capture_output=True, timeout=180)
        if done.returncode != 0:
            raise RuntimeError(f"dagster instance migrate failed:\n{done.stdout.decode()}{done.stderr.decode()}")

    def machine_env(self, name: str) -> dict[str, str]:
        """The environment of one "machine": the shared configuration plus homes of its own."""
        home = self.base / name
        dagster_home = home / "dagster_home"
        dagster_home.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "deploy" / "dagster.yaml", dagster_home / "dagster.yaml")
        return {**self.env, "DAGSTER_HOME": str(dagster_home), "TICKLAKE_HOME": str(home / "ticklake")}

    def start_worker(self, name: str, netns: Namespace | None = None) -> subprocess.Popen:
        """`dagster-celery worker start` as docs/deployment.md tells an operator, one process taking one step at a time;
        in `netns`, a host of its own that reaches the services only through the addresses its environment names."""
        log = open(self.base / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        argv = [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app",
                "-y", str(ROOT / "deploy" / "celery.yaml"), "-q", self.queue, "-n", f"{name}-{self.queue[-8:]}", "--",
                "--concurrency", "1", "--without-gossip", "--without-mingle", "--without-heartbeat"]
        env = self.machine_env(name)
        if netns is not None:
            argv, env = netns.command(argv), netns.environment(env)
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
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
        processes = [*self.workers.values(), *(p for p in (self.daemon, self.webserver) if p)]
        for proc in processes:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in processes:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)

    def start_daemon(self) -> subprocess.Popen:
        """`dagster-daemon run`: it takes runs from the queue in PostgreSQL (deploy/dagster.yaml's limits) and
        starts each as a process on its machine, whose steps go to the workers."""
        log = open(self.base / "daemon.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml")],
                                cwd=ROOT, env=self.machine_env("daemon"), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.daemon = proc
        return proc

    def start_webserver(self, port: int) -> subprocess.Popen:
        """`dagster-webserver` on a machine of its own: the UI reads runs, events and partitions from PostgreSQL,
        and a backfill launched there is queued for the daemon."""
        log = open(self.base / "webserver.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen([str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port),
                                 "-w", str(ROOT / "workspace.yaml")],
                                cwd=ROOT, env=self.machine_env("webserver"), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.webserver = proc
        return proc

    def why(self, lines: int = 30) -> str:
        """The last lines of every process's log, for a failure message."""
        names = [*self.workers, *(n for n in ("daemon", "webserver") if getattr(self, n))]
        return "\n".join(f"--- {n}.log\n" + "\n".join(self.log(n).decode(errors="replace").splitlines()[-lines:])
                         for n in names)

    def submit(self, name: str, job: str, *, run_config: dict, tags: dict[str, str] | None = None,
               partition: str | None = None) -> str:
        """`dagster job launch` from an operator's machine: the run is queued; the daemon starts it. Its id."""
        tags = dict(tags or {})
        if partition is not None:
            tags["dagster/partition"] = partition
        run_id = str(uuid.uuid4())
        done = subprocess.run(
            [str(BIN / "dagster"), "job", "launch", "-w", str(ROOT / "workspace.yaml"), "-j", job,
             "--run-id", run_id, "--config-json", json.dumps(run_config), "--tags", json.dumps(tags)],
            cwd=ROOT, env=self.machine_env(name), capture_output=True, timeout=180)
        if done.returncode != 0:
            raise RuntimeError(f"dagster job launch {job} failed:\n{done.stdout.decode()}{done.stderr.decode()}")
        return run_id

    def instance(self):
        """The deployment's Dagster instance, as the webserver sees it."""
        import dagster as dg

        from tests.services import environment

        env = self.machine_env("observer")
        with environment({k: env[k] for k in ("DAGSTER_POSTGRES_URL", "TICKLAKE_MAX_CONCURRENT_RUNS")}):
            return dg.DagsterInstance.from_config(env["DAGSTER_HOME"])


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
REFERENCE_STEPS = ("trading_calendar", "security_master", "corporate_actions")  # security_master builds securities too


def run_configs(now: str, itick: dict | None = None) -> tuple[dict, dict]:
    """Run config of the reference and the klines runs: the instant they act at, and iTick resource fields to
    override (those not given take Dagster's defaults, the server and token come from ITICK_BASE_URL and
    ITICK_TOKEN, so the plan is passed on from ITICK_PLAN)."""
    resources = {"itick": {"config": {"plan": {"env": "ITICK_PLAN"}, **itick}}} if itick else {}
    reference = {"ops": {name: {"config": {"now": now}} for name in REFERENCE_STEPS}, "resources": resources}
    return reference, {"ops": {"klines_daily": {"config": {"now": now}}}, "resources": resources}


def backfill(cluster: Cluster, regions: list[str], first_month: str, last_month: str,
             run_config: tuple[dict, dict], *, while_klines_run=None, timeout_s: float = 900) -> Backfill:
    """Reference data, then klines: one run per region, all queued at once and started by the daemon (their
    steps go to the workers). `while_klines_run(cluster)` is called once the klines runs are queued (to kill a
    worker, say)."""
    with cluster.instance() as instance:
        started = time.perf_counter()
        runs = _submit_all(cluster, {r: (f"reference-{r}", "reference_refresh", run_config[0], {}, r)
                                     for r in regions})
        failed = wait_for_runs(instance, runs, timeout_s)
        reference_s = time.perf_counter() - started
        if failed:
            return Backfill(reference_s, 0.0, failed)
        started = time.perf_counter()
        cluster.marks = {name: len(cluster.log(name)) for name in cluster.workers}
        runs = _submit_all(cluster, {r: (f"klines-{r}", "nightly_refresh", run_config[1],
                                         klines_range_tags(r, first_month, last_month), None) for r in regions})
        if while_klines_run is not None:
            while_klines_run(cluster)
        failed = wait_for_runs(instance, runs, timeout_s)
        return Backfill(reference_s, time.perf_counter() - started, failed)


def _submit_all(cluster: Cluster, runs: dict[str, tuple]) -> dict[str, str]:
    """Submit runs side by side (each `dagster job launch` loads the code location): {run id: region}."""
    from concurrent.futures import ThreadPoolExecutor

    def submit(item: tuple[str, tuple]) -> tuple[str, str]:
        region, (name, job, config, tags, partition) = item
        return cluster.submit(name, job, run_config=config, tags=tags, partition=partition), region

    with ThreadPoolExecutor(len(runs)) as pool:
        return dict(pool.map(submit, runs.items()))


def wait_for_runs(instance, runs: dict[str, str], timeout_s: float) -> dict[str, str]:
    """Wait for the runs to end; {region: what went wrong} for those that did not succeed."""
    import dagster as dg

    deadline = time.monotonic() + timeout_s
    pending = set(runs)
    while pending and time.monotonic() < deadline:
        for record in instance.get_run_records(dg.RunsFilter(run_ids=list(pending))):
            if record.dagster_run.is_finished:
                pending.discard(record.dagster_run.run_id)
        time.sleep(0.5)
    failed = {runs[run_id]: "did not end in time" for run_id in pending}
    for record in instance.get_run_records(dg.RunsFilter(run_ids=list(set(runs) - pending))):
        run = record.dagster_run
        if run.status != dg.DagsterRunStatus.SUCCESS:
            errors = [_failure_text(e.dagster_event) for e in instance.all_logs(run.run_id)
                      if e.is_dagster_event and e.dagster_event.is_failure]
            failed[runs[run.run_id]] = f"{run.status.value}: {errors[-3:]}"
    return failed


def _failure_text(event) -> str:
    """A failure event's message with its error's (the exception a step raised)."""
    error = getattr(event.event_specific_data, "error", None)
    causes = []
    while error is not None:
        causes.append(error.message.strip())
        error = error.cause
    return " <- ".join([event.message, *causes])


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


def analyst(home: Path, postgres_url: str, storage_url: str):
    """An analyst's session on the production lake: the PostgreSQL catalog and the data on S3, read-only."""
    from ticklake.storage import connect

    return connect(home, catalog=f"postgres:{postgres_url}", storage_url=storage_url)


class WholeSnapshots(threading.Thread):
    """A third process's view while the backfills commit: every read is one snapshot, in which the bars and their
    `lake_partitions` rows (committed in one transaction) always agree."""

    def __init__(self, home: Path, postgres_url: str, storage_url: str):
        super().__init__(daemon=True)
        self.args, self.stop, self.reads, self.torn, self.errors = (home, postgres_url, storage_url), \
            threading.Event(), [], [], []

    def run(self) -> None:
        try:
            con = None
            while not self.stop.is_set():
                if con is None:
                    try:
                        con = analyst(*self.args)
                    except Exception:
                        time.sleep(0.5)
                        continue
                con.execute("BEGIN")
                bars, recorded = con.execute(
                    "SELECT (SELECT count(*) FROM klines_daily), (SELECT coalesce(sum(rows), 0) FROM lake_partitions "
                    "WHERE dataset = 'klines_daily')").fetchone()
                con.execute("COMMIT")
                self.reads.append(bars)
                if bars != recorded:
                    self.torn.append((bars, recorded))
                time.sleep(0.3)
        except Exception as exc:
            self.errors.append(repr(exc))
