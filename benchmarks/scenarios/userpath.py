"""User path: what a user actually runs, timed from the outside and explained from Dagster's own records.

Everything runs as separate processes against a standalone simulator (`python -m itick_sim`) on loopback,
with the pipeline configured from the environment as docs/configuration.md says, in a fresh TICKLAKE_HOME and
DAGSTER_HOME per run:

* `cli` — `dagster asset materialize --select securities --partition US`, then one
  `dagster asset materialize --select klines_daily --partition-range A...B` process (one single-run
  backfill) over the last N sessions: wall time from spawn to exit, bars stored, and where the time went.
* `dev` — `dagster dev` on `workspace.yaml`: a backfill launched over GraphQL exactly as the UI launches it,
  polled until it completes (the daemons' latency included), then the nightly job's Materialize of the
  partition holding the last completed session (launch -> SUCCESS).

Partition keys are derived from `klines_daily`'s partitions definition (its time-window dimension maps a
session to its key), so the scenario works whatever the date grain is (daily `2024-06-03|US`, monthly
`2024-06|US`, ...).
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from benchmarks import ui_graphql as gql
from benchmarks.config import BACKFILL_REGION, UNLIMITED_PLAN
from benchmarks.procs import ProcessFailedError, Timed, run_timed, spawned
from benchmarks.runner import ROOT
from benchmarks.scenarios.common import session_window, standalone_simulator
from benchmarks.stats import union_seconds

ASSET = "klines_daily"
SECURITIES = "securities"
NIGHTLY_JOB = "nightly_refresh"
STEP_KEY = "klines_daily"  # the asset's own step (its checks run as further steps)
DEFAULT_START_DATE = dt.date(2016, 1, 1)  # TICKLAKE_START_DATE's default (docs/configuration.md)
SIM_HISTORY_START = dt.date(2014, 1, 2)  # the simulator's default first date (itick_sim.settings.SimSettings)
POLL_S = 0.25  # how often the GraphQL status is polled (the resolution of the end-to-end figures)
PLANNED, MATERIALIZED = "ASSET_MATERIALIZATION_PLANNED", "ASSET_MATERIALIZATION"
SPANS = ("planned_events_s", "step_work_s", "materialization_events_s")  # see event_spans


# -- pure helpers (unit-tested) ---------------------------------------------------------------------------
def start_date_for(first_session: dt.date) -> dt.date:
    """TICKLAKE_START_DATE: its default (docs/configuration.md), or 1 January of the first session's year if earlier."""
    return min(DEFAULT_START_DATE, dt.date(first_session.year, 1, 1))


def sim_history_start(first_session: dt.date) -> dt.date | None:
    """The simulator's `--history-start` when its default starts too late for the window (else None, so the
    simulator, and so its universe, stays identical to the one the seed-article baseline runs against)."""
    return None if first_session >= SIM_HISTORY_START else dt.date(first_session.year, 1, 1)


def pipeline_env(*, url: str, home: Path, region: str, start_date: dt.date, symbols: int, seed: int
                 ) -> dict[str, str]:
    """The pipeline's configuration (docs/configuration.md) for a standalone simulator at `url`."""
    return {
        "ITICK_BASE_URL": url, "ITICK_TOKEN": "bench", "ITICK_PLAN": UNLIMITED_PLAN,
        "TICKLAKE_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"), "TICKLAKE_REGIONS": region,
        "TICKLAKE_START_DATE": start_date.isoformat(),
        "TICKLAKE_SIM_SYMBOLS": str(symbols), "TICKLAKE_SIM_SEED": str(seed),  # used only without a base URL
    }


def time_dimension(partitions_def) -> tuple[str, Any, str]:
    """(time dimension's name, its TimeWindowPartitionsDefinition, the other dimension's name)."""
    dim = partitions_def.time_window_dimension
    others = [d.name for d in partitions_def.partitions_defs if d.name != dim.name]
    if len(others) != 1:
        raise ValueError(f"expected a time dimension and one other, got {partitions_def.partition_dimension_names}")
    return dim.name, dim.partitions_def, others[0]


def partition_key(partitions_def, day: dt.date, region: str) -> str:
    """The multi-partition key holding session `day` of `region`, whatever the time grain."""
    import dagster as dg

    name, window, other = time_dimension(partitions_def)
    noon = dt.datetime.combine(day, dt.time(12), ZoneInfo(window.timezone))  # inside the day in any zone
    date_key = window.get_partition_key_for_timestamp(noon.timestamp())
    return str(dg.MultiPartitionKey({name: date_key, other: region}))


def partition_range(partitions_def, first: dt.date, last: dt.date, region: str) -> tuple[str, str]:
    return partition_key(partitions_def, first, region), partition_key(partitions_def, last, region)


def keys_in_range(partitions_def, start: str, end: str) -> list[str]:
    """Every key from `start` to `end` (what the UI's range selection lists one by one)."""
    import dagster as dg

    return [str(k) for k in partitions_def.get_partition_keys_in_range(dg.PartitionKeyRange(start, end))]


def backfill_breakdown(mutation_at: float, done_at: float, runs: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Where a backfill's end-to-end time went, from its runs' timelines (epoch seconds).

    pickup: mutation -> first run created (the backfill daemon's loop); queued: created -> started, summed
    (dequeue interval + run worker start); run: union of the runs' start..end; completion: last run end ->
    backfill seen complete (the daemon's next loop); daemon overhead: end to end minus run time.
    """
    e2e = done_at - mutation_at
    if not runs:
        return {"e2e_s": round(e2e, 3), "pickup_s": None, "queued_s": None, "run_s": 0.0, "completion_s": None,
                "daemon_overhead_s": round(e2e, 3)}
    run_s = union_seconds([(r["started_at"], r["ended_at"]) for r in runs])
    return {
        "e2e_s": round(e2e, 3),
        "pickup_s": round(min(r["created_at"] for r in runs) - mutation_at, 3),
        "queued_s": round(sum(r["started_at"] - r["created_at"] for r in runs), 3),
        "run_s": round(run_s, 3),
        "completion_s": round(done_at - max(r["ended_at"] for r in runs), 3),
        "daemon_overhead_s": round(e2e - run_s, 3),
    }


def event_spans(events: Sequence[tuple[float, str, str | None]]) -> dict[str, float | None]:
    """Bookkeeping against work, from a run's events as (timestamp, event type, step key), in log order.

    planned_events_s: first to last ASSET_MATERIALIZATION_PLANNED (one per partition, written before the run
    starts); step_work_s: the asset step's STEP_START to its first ASSET_MATERIALIZATION (fetch, validate,
    write: the asset body yields its result only when the work is done); materialization_events_s: first to
    last of the step's ASSET_MATERIALIZATION (one per partition, written after the work).
    """
    planned = [t for t, kind, _ in events if kind == PLANNED]
    start = next((t for t, kind, step in events if kind == "STEP_START" and step == STEP_KEY), None)
    done = [t for t, kind, step in events if kind == MATERIALIZED and step == STEP_KEY]

    def span(times: list[float]) -> float | None:
        return round(times[-1] - times[0], 3) if times else None

    return {"planned_events_s": span(planned),
            "step_work_s": round(done[0] - start, 3) if done and start is not None else None,
            "materialization_events_s": span(done)}


# -- processes -----------------------------------------------------------------------------------------
def dagster_cmd(*args: str) -> list[str]:
    """The `dagster` console script of this interpreter's environment (as a user types it)."""
    script = Path(sys.executable).with_name("dagster")
    return [str(script), *args] if script.exists() else [sys.executable, "-m", "dagster", *args]


def prepare_home(home: Path, env: dict[str, str]) -> dict[str, str]:
    """Create DAGSTER_HOME with the dagster.yaml the demo writes (what `python3 dev.py ui` then uses); the
    product's own config is not touched. Returns the full environment for the children."""
    from demo.run import INSTANCE_YAML

    dagster_home = Path(env["DAGSTER_HOME"])
    dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(INSTANCE_YAML, dagster_home / "dagster.yaml")
    merged = {**os.environ, **env}
    merged["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return merged


def definitions_import_s(env: dict[str, str], logs: Path) -> float:
    """A fresh interpreter importing the code location: the start-up cost every Dagster process pays."""
    return run_timed("import-definitions", [sys.executable, "-c", "import definitions"], env=env, cwd=ROOT,
                     log_dir=logs, timeout_s=300).wall_s


def materialize_securities(env: dict[str, str], logs: Path, region: str, timeout_s: float) -> Timed:
    return run_timed("securities", dagster_cmd("asset", "materialize", "-m", "definitions", "--select", SECURITIES,
                                               "--partition", region),
                     env=env, cwd=ROOT, log_dir=logs, timeout_s=timeout_s)


def klines_partitions_def(env: dict[str, str]):
    """`klines_daily`'s partitions definition, loaded as the CLI loads it (under the pipeline's environment:
    the partitions read TICKLAKE_REGIONS and TICKLAKE_START_DATE at import)."""
    import dagster as dg

    os.environ.update({k: env[k] for k in ("TICKLAKE_REGIONS", "TICKLAKE_START_DATE", "TICKLAKE_HOME",
                                           "ITICK_BASE_URL", "ITICK_TOKEN", "ITICK_PLAN", "DAGSTER_HOME")})
    import definitions

    return definitions.defs.resolve_asset_graph().get(dg.AssetKey(ASSET)).partitions_def


# -- Dagster's own records ------------------------------------------------------------------------------
@contextlib.contextmanager
def open_instance(dagster_home: Path) -> Iterator[Any]:
    import dagster as dg

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        yield instance


def run_timeline(instance, run_id: str) -> dict[str, Any]:
    """A run as Dagster recorded it: created/started/ended, step durations, event counts, rows."""
    record = instance.get_run_record_by_id(run_id)
    if record is None:
        raise RuntimeError(f"run {run_id} not found in the instance")
    step_stats = [s for s in instance.get_run_step_stats(run_id) if s.start_time and s.end_time]
    steps = {s.step_key: round(s.end_time - s.start_time, 3) for s in step_stats}
    logs = instance.all_logs(run_id)
    by_type = collections.Counter(e.dagster_event.event_type_value if e.is_dagster_event else "LOG" for e in logs)
    created = record.create_timestamp.timestamp()
    started, ended = record.start_time or created, record.end_time or created
    spans = event_spans([(e.timestamp, e.dagster_event.event_type_value if e.is_dagster_event else "LOG",
                          e.step_key) for e in logs])
    return {
        "run_id": run_id, "status": record.dagster_run.status.value,
        "created_at": created, "started_at": started, "ended_at": ended,
        "queued_s": round(started - created, 3), "run_s": round(ended - started, 3),
        "step_s": steps.get(STEP_KEY), "steps_s": round(sum(steps.values()), 3), "steps": steps, **spans,
        # run time when no step is running: step worker processes starting (each imports the code location),
        # the executor, run start and end bookkeeping
        "outside_steps_s": round((ended - started) - union_seconds([(s.start_time, s.end_time) for s in step_stats]),
                                 3),
        "events": len(logs), "events_planned": by_type.get(PLANNED, 0),
        "events_materialized": by_type.get(MATERIALIZED, 0), "row_count": _row_count(logs),
    }


def _row_count(logs) -> int | None:
    for entry in logs:
        event = entry.dagster_event
        if entry.is_dagster_event and event.event_type_value == MATERIALIZED \
                and event.asset_key is not None and event.asset_key.path == [ASSET]:
            value = event.step_materialization_data.materialization.metadata.get("dagster/row_count")
            return None if value is None else int(value.value)
    return None


def failure_summary(instance, run_id: str, lines: int = 12) -> str:
    """The run's failure messages (step and run failures, errors logged), newest last."""
    out = []
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if entry.is_dagster_event and event.event_type_value in ("STEP_FAILURE", "RUN_FAILURE", "ENGINE_EVENT") \
                and (event.event_type_value != "ENGINE_EVENT" or "rror" in (entry.message or "")):
            error = getattr(event.event_specific_data, "error", None)
            out.append(f"{event.event_type_value}: {entry.message}" + (f"\n{error.to_string()}" if error else ""))
    return "\n".join(out[-lines:]) or "(no failure events recorded)"


def new_run_ids(instance, known: set[str]) -> list[str]:
    return [r.dagster_run.run_id for r in instance.get_run_records() if r.dagster_run.run_id not in known]


def warehouse_counts(home: Path, region: str) -> dict[str, Any]:
    """Bars, symbols and sessions the lake holds for `region` (attached read-only as analysts do, closed at once)."""
    import ticklake

    with ticklake.connect(home) as con:
        bars, symbols, sessions, first, last = con.execute(
            "SELECT count(*), count(DISTINCT symbol), count(DISTINCT trade_date), min(trade_date), max(trade_date) "
            "FROM klines_daily WHERE region = ?", [region]).fetchone()
    return {"bars_stored": bars, "symbols_stored": symbols, "sessions_stored": sessions,
            "first_stored": str(first), "last_stored": str(last)}


def latency_settings(instance) -> list[dict[str, Any]]:
    """The instance settings that set a launch's latency: their values here, their dagster.yaml key (or why
    none), and where the installed Dagster reads them (paths under site-packages/dagster/)."""
    from dagster._daemon import controller

    coordinator = instance.run_coordinator
    backfills = instance.get_backfill_settings() or {}

    def row(name: str, value: Any, yaml_key: str, default: str, where: str) -> dict[str, Any]:
        return {"setting": name, "value": value, "dagster_yaml": yaml_key, "default": default, "read_in": where}

    return [
        row("run coordinator", type(coordinator).__name__, "run_coordinator / run_queue", "QueuedRunCoordinator",
            "_core/instance/ref.py config_defaults"),
        row("dequeue interval s", getattr(coordinator, "dequeue_interval_seconds", None),
            "run_queue.dequeue_interval_seconds", "5",
            "_core/run_coordinator/queued_run_coordinator.py, used by _daemon/controller.py"),
        row("dequeue in threads", getattr(coordinator, "dequeue_use_threads", None),
            "run_queue.dequeue_use_threads, .dequeue_num_workers", "false",
            "_core/run_coordinator/queued_run_coordinator.py"),
        row("max concurrent runs", getattr(coordinator, "_max_concurrent_runs", None),
            "run_queue.max_concurrent_runs", "10", "_core/run_coordinator/queued_run_coordinator.py"),
        row("backfill daemon loop s", controller.DEFAULT_DAEMON_INTERVAL_SECONDS,
            "none (constant DEFAULT_DAEMON_INTERVAL_SECONDS)", "30",
            "_daemon/controller.py, slept in _daemon/backfill.py"),
        row("backfill threads", backfills.get("use_threads", True), "backfills.use_threads, .num_workers",
            "true, 4 workers", "_daemon/daemon.py BackfillDaemon"),
        row("backfill submit workers", backfills.get("num_submit_workers"), "backfills.num_submit_workers",
            "none (one by one)", "_daemon/daemon.py BackfillDaemon"),
        row("run monitoring poll s", instance.run_monitoring_poll_interval_seconds,
            "run_monitoring.poll_interval_seconds", "120 (failures only)",
            "_core/instance/methods/settings_methods.py"),
    ]


# -- worker kinds (each in a fresh interpreter, see benchmarks.worker) ------------------------------------
@contextlib.contextmanager
def user_setup(params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A fresh home, the standalone simulator and the pipeline's environment for one user-path run."""
    region, symbols, seed = params.get("region", BACKFILL_REGION), params["symbols"], params["seed"]
    sessions = session_window(region, params["sessions"], dt.datetime.now(dt.UTC))
    with tempfile.TemporaryDirectory(prefix="ticklake-userpath-") as tmp:
        home, logs = Path(tmp) / "home", Path(tmp) / "logs"
        logs.mkdir()
        history = sim_history_start(sessions[0])
        with standalone_simulator(symbols=symbols, seed=seed, regions=(region,), history_start=history,
                                  log=logs / "simulator.err") as (url, _):
            env = prepare_home(home, pipeline_env(url=url, home=home, region=region, symbols=symbols, seed=seed,
                                                  start_date=start_date_for(sessions[0])))
            partitions = klines_partitions_def(env)
            first_key, last_key = partition_range(partitions, sessions[0], sessions[-1], region)
            yield {"region": region, "sessions": sessions, "home": home, "logs": logs, "env": env,
                   "partitions": partitions, "range": (first_key, last_key),
                   "keys": keys_in_range(partitions, first_key, last_key),
                   "sim_history_start": history.isoformat() if history else None}


def _describe(setup: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    sessions = setup["sessions"]
    return {"region": setup["region"], "symbols": params["symbols"], "sessions": len(sessions),
            "first_session": sessions[0].isoformat(), "last_session": sessions[-1].isoformat(),
            "partition_range": "...".join(setup["range"]), "partitions": len(setup["keys"]),
            "start_date": setup["env"]["TICKLAKE_START_DATE"], "sim_history_start": setup["sim_history_start"]}


def run_cli(params: dict[str, Any]) -> dict[str, Any]:
    """`dagster asset materialize` for the security master, then for the session range in one process."""
    timeout = float(params.get("timeout_s", 1800))
    with user_setup(params) as setup:
        env, logs, home = setup["env"], setup["logs"], setup["home"]
        record = _describe(setup, params)
        record["definitions_import_s"] = definitions_import_s(env, logs)
        record["securities_s"] = materialize_securities(env, logs, setup["region"], timeout).wall_s
        with open_instance(home / "dagster") as instance:
            known = set(new_run_ids(instance, set()))
        first, last = setup["range"]
        klines = run_timed("klines", dagster_cmd("asset", "materialize", "-m", "definitions", "--select", ASSET,
                                                 "--partition-range", f"{first}...{last}"),
                           env=env, cwd=ROOT, log_dir=logs, timeout_s=timeout)
        with open_instance(home / "dagster") as instance:
            runs = new_run_ids(instance, known)
            if len(runs) != 1:
                raise RuntimeError(f"expected one klines run, found {len(runs)}")
            run = run_timeline(instance, runs[0])
        record.update(warehouse_counts(home, setup["region"]))
    record.update({
        "wall_s": klines.wall_s,
        "startup_s": round(run["created_at"] - klines.spawned_at, 3),  # interpreter, imports, definitions, plan
        "teardown_s": round(klines.exited_at - run["ended_at"], 3),
        "bars_per_s": round(record["bars_stored"] / klines.wall_s, 1) if klines.wall_s else None,
        **{k: run[k] for k in ("run_id", "queued_s", "run_s", "step_s", "steps_s", "steps", *SPANS, "outside_steps_s",
                               "events",
                               "events_planned", "events_materialized", "row_count")},
    })
    return record


def run_dev(params: dict[str, Any]) -> dict[str, Any]:
    """Under `dagster dev`: the UI's backfill of the session range, then the nightly's Materialize."""
    from benchmarks.procs import free_port

    timeout = float(params.get("timeout_s", 1800))
    with user_setup(params) as setup:
        env, logs, home, region = setup["env"], setup["logs"], setup["home"], setup["region"]
        record = _describe(setup, params)
        record["securities_s"] = materialize_securities(env, logs, region, timeout).wall_s
        port = free_port()
        started = time.perf_counter()
        with spawned("dagster-dev", dagster_cmd("dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)),
                     env=env, cwd=ROOT, log_dir=logs) as dev:
            client = gql.Client(f"http://127.0.0.1:{port}/graphql")
            try:
                location, repository = gql.wait_ready(client, NIGHTLY_JOB, float(params.get("ready_timeout_s", 300)),
                                                      alive=lambda: dev.proc.poll() is None)
            except gql.GraphQLError as exc:
                raise ProcessFailedError(f"dagster dev did not become ready: {exc}\n{dev.why()}") from None
            record["dev_ready_s"] = round(time.perf_counter() - started, 3)
            with open_instance(home / "dagster") as instance:
                record["instance_settings"] = latency_settings(instance)
                backfill = ui_backfill(client, instance, setup["keys"], timeout, dev)
            record["backfill"] = {**backfill, **warehouse_counts(home, region)}
            nightly_key = partition_key(setup["partitions"], setup["sessions"][-1], region)
            with open_instance(home / "dagster") as instance:
                record["nightly"] = ui_nightly(client, instance, location, repository, nightly_key,
                                               float(params.get("nightly_timeout_s", 600)), dev)
    return record


def poll_until(fetch: Callable[[], dict[str, Any]], done: Callable[[dict[str, Any]], bool], timeout_s: float,
               describe: Callable[[dict[str, Any]], str]) -> tuple[dict[str, Any], float]:
    """Fetch every POLL_S until `done`; return the last state and when it was seen (the end-to-end clock)."""
    deadline = time.monotonic() + timeout_s
    while True:
        state = fetch()
        if done(state):
            return state, time.time()
        if time.monotonic() > deadline:
            raise ProcessFailedError(f"after {timeout_s:.0f}s: {describe(state)}")
        time.sleep(POLL_S)


def ui_backfill(client: gql.Client, instance, keys: list[str], timeout_s: float, dev,
                assets: Sequence[str] = (ASSET,)) -> dict[str, Any]:
    """Launch the backfill as the UI does, poll until it is done, and split its time with the run records."""
    mutation_at = time.time()
    params = gql.ui_backfill_params([assets[0]], keys, *([a] for a in assets[1:]))
    result = client(gql.LAUNCH_BACKFILL, {"backfillParams": params})
    result = result["launchPartitionBackfill"]
    if result["__typename"] != "LaunchBackfillSuccess":
        raise ProcessFailedError(f"launchPartitionBackfill refused: {gql.launch_error(result)}")
    backfill_id = result["backfillId"]
    def backfill_state() -> dict[str, Any]:
        state = client(gql.BACKFILL_STATUS, {"backfillId": backfill_id})["partitionBackfillOrError"]
        if state["__typename"] != "PartitionBackfill":
            raise ProcessFailedError(f"backfill {backfill_id}: {gql.launch_error(state)}")
        return state

    state, done_at = poll_until(
        backfill_state, lambda st: st["status"] in gql.BACKFILL_DONE, timeout_s,
        lambda st: f"backfill {backfill_id} still {st['status']}; runs {[r['status'] for r in st['runs']]}\n"
                   f"{dev.why()}")
    run_ids = [r["id"] for r in state["runs"]]
    if state["status"] not in ("COMPLETED_SUCCESS", "COMPLETED"):
        why = "\n".join(failure_summary(instance, r) for r in run_ids)
        raise ProcessFailedError(f"backfill {backfill_id} ended {state['status']}: "
                                 f"{(state.get('error') or {}).get('message', '')}\n{why}\n{dev.why()}")
    runs = [run_timeline(instance, r) for r in run_ids]
    main = max(runs, key=lambda r: r["run_s"]) if runs else {}
    return {
        "backfill_id": backfill_id, "status": state["status"], "partitions": state["numPartitions"],
        "runs": len(runs), **backfill_breakdown(mutation_at, done_at, runs),
        "backfill_record_s": round((state.get("endTimestamp") or done_at) - state["timestamp"], 3),
        **{k: main.get(k) for k in ("step_s", "steps_s", *SPANS, "outside_steps_s", "events", "events_planned",
                                    "events_materialized")},
        "events_all_runs": sum(r["events"] for r in runs),
    }


def ui_nightly(client: gql.Client, instance, location: str, repository: str, key: str, timeout_s: float,
               dev) -> dict[str, Any]:
    """The Materialize of one partition of the nightly job: its tags and config fetched as the UI fetches them,
    `launchRun`, then polled until the run ends."""
    found = client(gql.PARTITION_TAGS_AND_CONFIG, {
        "repositoryName": repository, "repositoryLocationName": location, "jobName": NIGHTLY_JOB,
        "partitionName": key, "assetKeys": [{"path": [ASSET]}]})["pipelineOrError"]
    partition = found.get("partition") if found["__typename"] == "Pipeline" else None
    if not partition or "results" not in partition["tagsOrError"]:
        raise ProcessFailedError(f"{NIGHTLY_JOB} has no partition {key}: {gql.launch_error(found)}")
    params = gql.ui_run_params(location=location, repository=repository, job=NIGHTLY_JOB,
                               tags=partition["tagsOrError"]["results"],
                               run_config_yaml=partition["runConfigOrError"].get("yaml"))
    launched_at = time.time()
    result = client(gql.LAUNCH_RUN, {"executionParams": params})["launchRun"]
    if result["__typename"] != "LaunchRunSuccess":
        raise ProcessFailedError(f"launchRun refused: {gql.launch_error(result)}")
    run_id = result["run"]["runId"]
    run, done_at = poll_until(
        lambda: client(gql.RUN_STATUS, {"runId": run_id})["runOrError"],
        lambda r: r["__typename"] == "Run" and r["status"] in gql.RUN_DONE, timeout_s,
        lambda r: f"nightly run {run_id} still {r.get('status')}\n{dev.why()}")
    if run["status"] != "SUCCESS":
        raise ProcessFailedError(f"nightly run {run_id} ended {run['status']}:\n{failure_summary(instance, run_id)}")
    timeline = run_timeline(instance, run_id)
    return {
        "partition": key, "run_id": run_id, "launch_to_success_s": round(done_at - launched_at, 3),
        "queued_s": round(timeline["started_at"] - launched_at, 3),  # launch -> run started (dequeue, worker)
        "run_s": timeline["run_s"], "seen_done_s": round(done_at - timeline["ended_at"], 3),
        **{k: timeline[k] for k in ("step_s", "steps_s", *SPANS, "outside_steps_s", "events", "events_planned",
                                    "events_materialized", "row_count")},
    }
