"""The production profile as its users meet it: backfills launched from the Dagster UI, timed from the click to
"completed", and what the asset page's partition bar then shows.

    .venv/bin/python -m benchmarks.distributed_ui [--workers 2] [--symbols 40] [--months 12] [--screenshots DIR]

Real services on this machine: PostgreSQL (Dagster's instance, the shared quota, the lake's catalog and commit
locks), RabbitMQ and Redis (Celery), moto's S3 server (the lake's data). `dagster-webserver`, `dagster-daemon`
and the Celery workers each run as their own "machine" (own DAGSTER_HOME and TICKLAKE_HOME), configured only by
deploy/dagster.yaml and the environment, as docs/deployment.md says. The UI's backfills carry no run config, so
everything runs at the real clock and a real quota window (ITICK_PLAN, default `pro`: 600 calls per minute),
against a simulator that enforces the same plan.

1. The reference data of every region: one backfill of the four reference assets over the region partitions.
2. Klines: one backfill of `klines_daily` over every month x region of the last `--months` whole months.

Writes benchmarks/results/distributed-ui.json; with `--screenshots`, PNGs of the asset's partitions page, the
backfill's runs and one klines run's page, rendered by headless Chromium (when installed).
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import dagster as dg

from benchmarks import ui_graphql as gql
from benchmarks.procs import free_port
from benchmarks.scenarios.userpath import ui_backfill
from itick_sim import SimSettings, Simulator, serve
from tests.distributed import REFERENCE_ASSETS, Cluster, audited_calls, busiest_window
from tests.services import postgres_database, s3_server
from ticklake.quality.expectations import SHARED_PREFIX, VALIDATION_PAGES
from ticklake.sources.quota import calls_per_minute
from ticklake.storage.object_store import location
from ticklake.storage.remote_tree import RemoteTree

TOKEN = "bench-token-not-a-secret"
REGIONS = ("US", "HK", "JP")
KLINES = "klines_daily"
JOB = "nightly_refresh"


def whole_months(today: dt.date, count: int) -> list[str]:
    """The `count` whole months before `today`'s month, oldest first, as month partition keys (YYYY-MM)."""
    months, year, month = [], today.year, today.month
    for _ in range(count):
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
        months.append(f"{year:04d}-{month:02d}")
    return months[::-1]


def klines_keys(months: list[str], regions: tuple[str, ...]) -> list[str]:
    """The month x region partition keys (`2024-06|US`), as the partitions page lists them."""
    return [f"{month}|{region}" for region in regions for month in months]


def steps_per_worker(instance, run_ids: list[str]) -> dict[str, int]:
    """How many steps each Celery worker ran, from the engine events dagster-celery records for every step."""
    counts: collections.Counter[str] = collections.Counter()
    for run_id in run_ids:
        for entry in instance.all_logs(run_id):
            event = entry.dagster_event
            if event is None or event.event_type_value != "ENGINE_EVENT":
                continue
            worker = (getattr(event.event_specific_data, "metadata", None) or {}).get("Celery worker")
            if worker is not None:
                counts[str(worker.value).split("@")[0].rsplit("-", 1)[0]] += 1  # worker-0-<queue>@host
    return dict(sorted(counts.items()))


def stored_validation_pages(storage_url: str) -> int:
    """Data Docs validation pages in the Great Expectations project every worker shares (object storage)."""
    stored = RemoteTree(location(storage_url), SHARED_PREFIX).listing()
    return sum(k.startswith(VALIDATION_PAGES) for k in stored)


def screenshot(url: str, out: Path) -> str | None:
    """Render `url` as a person would see it (headless Chromium, after the page's scripts ran); None when
    Chromium is not installed (`apt-get install -y chromium`)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        return None
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1600,1000", "--virtual-time-budget=20000", f"--screenshot={out}", url],
                   capture_output=True, timeout=120, check=False)
    return str(out) if out.exists() else None


def run(workers: int, symbols: int, months_count: int, plan: str, screenshots: Path | None) -> dict[str, Any]:
    per_minute = calls_per_minute(plan)
    months = whole_months(dt.date.today(), months_count)
    server = serve(Simulator(SimSettings(symbols_per_region=symbols, calls_per_window=per_minute,
                                         window_seconds=60.0, tokens=frozenset({TOKEN}))))
    record: dict[str, Any] = {"workers": workers, "symbols_per_region": symbols, "regions": list(REGIONS),
                              "months": [months[0], months[-1]], "plan": plan}
    try:
        with tempfile.TemporaryDirectory() as base, postgres_database() as pg, s3_server() as s3:
            cluster = Cluster.create(Path(base), postgres_url=pg, storage_url=s3.url("ui"), itick_url=server.url,
                                     token=TOKEN, plan=per_minute, regions=list(REGIONS),
                                     start_date=f"{months[0]}-01", s3_env=s3.env)
            port = free_port()
            try:
                started = time.perf_counter()
                for i in range(workers):
                    cluster.start_worker(f"worker-{i}")
                cluster.start_daemon()
                cluster.start_webserver(port)
                cluster.wait_ready()
                client = gql.Client(f"http://127.0.0.1:{port}/graphql")
                gql.wait_ready(client, JOB, 300, alive=lambda: cluster.webserver.poll() is None)
                record["ready_s"] = round(time.perf_counter() - started, 2)
                with cluster.instance() as instance:
                    reference = ui_backfill(client, instance, list(REGIONS), 1800, cluster, assets=REFERENCE_ASSETS)
                    klines = ui_backfill(client, instance, klines_keys(months, REGIONS), 3600, cluster)
                    record["reference"] = _summary(reference)
                    record["klines"] = _summary(klines)
                    run_ids = [r.dagster_run.run_id for r in instance.get_run_records()]
                    record["steps_per_worker"] = steps_per_worker(instance, run_ids)
                    klines_runs = instance.get_run_records(
                        dg.RunsFilter(tags={"dagster/backfill": klines["backfill_id"]}), limit=1)
                record["partition_bar"] = {a: gql.partition_stats(client, a) for a in (KLINES, "securities")}
                record["data_docs_pages_stored"] = stored_validation_pages(s3.url("ui"))
                if screenshots is not None:
                    screenshots.mkdir(parents=True, exist_ok=True)
                    ui = f"http://127.0.0.1:{port}"
                    record["screenshots"] = [s for s in (
                        screenshot(f"{ui}/assets/{KLINES}?view=partitions", screenshots / "klines-partitions.png"),
                        screenshot(f"{ui}/runs/b/{klines['backfill_id']}?tab=runs",
                                   screenshots / "klines-backfill.png"),
                        *(screenshot(f"{ui}/runs/{r.dagster_run.run_id}", screenshots / "klines-run.png")
                          for r in klines_runs),
                    ) if s]
            finally:
                cluster.stop()
            starts = audited_calls(cluster)
    finally:
        server.close()
    counters = server.simulator.counters.snapshot()
    record.update({"calls": len(starts), "server_429": counters["rate_limited"],
                   "busiest_minute_calls": busiest_window(starts, 60.0), "plan_per_minute": per_minute})
    return record


def _summary(backfill: dict[str, Any]) -> dict[str, Any]:
    keep = ("status", "partitions", "runs", "e2e_s", "pickup_s", "queued_s", "run_s", "completion_s",
            "daemon_overhead_s", "events_all_runs")
    return {k: backfill.get(k) for k in keep}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--symbols", type=int, default=40, help="symbols per region")
    parser.add_argument("--months", type=int, default=12, help="whole months before this one")
    parser.add_argument("--plan", default="pro", help="ITICK_PLAN, also what the simulator grants per minute")
    parser.add_argument("--screenshots", type=Path, default=None, help="directory for PNGs of the UI's pages")
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "distributed-ui.json")
    args = parser.parse_args(argv)
    record = run(args.workers, args.symbols, args.months, args.plan, args.screenshots)
    for name in ("reference", "klines"):
        b = record[name]
        print(f"{name:>9}: {b['partitions']} partitions in {b['runs']} runs, click -> completed {b['e2e_s']:.1f} s "
              f"(runs {b['run_s']:.1f} s, first run after {b['pickup_s']:.1f} s, seen done "
              f"{b['completion_s']:.1f} s after the last run), {b['status']}")
    bar = record["partition_bar"][KLINES]
    print(f"partition bar ({KLINES}): {bar['numMaterialized']} of {bar['numPartitions']} materialized, "
          f"{bar['numFailed']} failed, {bar['numMaterializing']} in progress")
    print(f"Data Docs validation pages in the shared project: {record['data_docs_pages_stored']}")
    print(f"steps per worker: {record['steps_per_worker']}; iTick calls {record['calls']}, 429s "
          f"{record['server_429']}, busiest minute {record['busiest_minute_calls']}/{record['plan_per_minute']}")
    args.json.write_text(json.dumps({"machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
                                     "settings": {k: str(v) for k, v in vars(args).items()}, "run": record},
                                    indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
