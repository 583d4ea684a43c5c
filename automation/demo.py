"""The quick-start run: refresh the security master, run the nightly job over the most recent trading days
of every configured region (one single-run backfill per region), then print what was built.

    python -m automation.demo [--sessions 20]

Uses the embedded simulator unless ITICK_TOKEN / ITICK_BASE_URL are set. Runs are recorded in the Dagster
instance at $DAGSTER_HOME (default $TICKLAKE_HOME/dagster), so `python3 dev.py ui` shows them afterwards.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
import warnings
from pathlib import Path

import dagster as dg

from ticklake import markets, settings

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
INSTANCE_YAML = "telemetry:\n  enabled: false\n"


def recent_sessions(region: str, count: int, now: dt.datetime) -> list[dt.date]:
    """The last `count` completed sessions of `region` as of `now`."""
    last = markets.last_completed_session(region, now)
    if last is None:
        return []
    return markets.sessions(region, last - dt.timedelta(days=count * 2 + 20), last)[-count:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=20, help="trading days per region (default 20)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="dagster")

    paths = settings.Paths(settings.home())
    os.environ.setdefault("DAGSTER_HOME", str(paths.home / "dagster"))
    dagster_home = Path(os.environ["DAGSTER_HOME"])
    dagster_home.mkdir(parents=True, exist_ok=True)
    if not (dagster_home / "dagster.yaml").exists():
        (dagster_home / "dagster.yaml").write_text(INSTANCE_YAML)
    from automation.jobs import run_partition_range
    from definitions import build_definitions

    defs = build_definitions()
    itick = defs.resources["itick"]
    now = dt.datetime.now(dt.UTC)
    started = time.perf_counter()
    calls = 0
    with dg.DagsterInstance.get() as instance:
        for region in settings.regions():
            ref = defs.resolve_job_def("reference_refresh").execute_in_process(
                instance=instance, partition_key=region, run_config=QUIET)
            days = recent_sessions(region, args.sessions, now)
            result = run_partition_range(defs, region, days[0], days[-1], instance=instance, run_config=QUIET)
            calls += _metadata(ref, "securities", "api_calls") + _metadata(result, "klines_daily", "api_calls")
            print(f"{region}: {len(days)} sessions {days[0]}..{days[-1]}, "
                  f"{_metadata(result, 'klines_daily', 'dagster/row_count')} bars, "
                  f"{_metadata(ref, 'securities', 'dagster/row_count')} securities")
    elapsed = time.perf_counter() - started
    _summary(paths, itick.endpoint, calls, elapsed)
    return 0


def _metadata(result: dg.ExecuteInProcessResult, asset: str, name: str) -> int:
    total = 0
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        if materialization.asset_key == dg.AssetKey(asset) and name in materialization.metadata:
            total += int(materialization.metadata[name].value)
            break  # a multi-partition run reports the same figures on every partition
    return total


def _summary(paths: settings.Paths, endpoint: str, calls: int, elapsed: float) -> None:
    import duckdb

    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        counts = con.execute(
            "SELECT 'klines_daily', count(*), count(DISTINCT (region, symbol)), min(trade_date), max(trade_date) "
            "FROM klines_daily "
            "UNION ALL SELECT 'securities', count(*), count(DISTINCT (region, symbol)), min(first_seen), "
            "max(last_seen) "
            "FROM securities"
        ).fetchall()
        example = con.execute(
            "SELECT region, symbol, trade_date, close, volume FROM klines_daily "
            "WHERE region = 'US' ORDER BY trade_date DESC, symbol LIMIT 3"
        ).fetchall()
    print()
    print(f"source      {endpoint}")
    print(f"api calls   {calls} (kline + symbol-list calls, counted by the client)")
    print(f"took        {elapsed:.1f}s")
    for name, rows, symbols, first, last in counts:
        print(f"{name:<12}{rows:>8} rows  {symbols:>5} symbols  {first} .. {last}")
    print(f"lake        {paths.lake}")
    print(f"warehouse   {paths.warehouse}")
    print(f"audit log   {paths.audit}")
    print()
    print("Try:")
    python = os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd()) else sys.executable
    print(f"  {python} -c \"import duckdb; print(duckdb.connect('{paths.warehouse}', read_only=True).sql("
          "\\\"SELECT * FROM klines_daily WHERE region='US' ORDER BY trade_date DESC LIMIT 5\\\"))\"")
    if example:
        print(f"  e.g. {example[0]}")


if __name__ == "__main__":
    sys.exit(main())
