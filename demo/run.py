"""The quick-start run, per configured region: the reference data (symbol list, trading calendar, point-in-time
security master, splits), the nightly klines job over the most recent months (one single-run backfill), the
fundamentals (valuation snapshots within the call budget, FX, valuation), then the split-adjusted bars; then the
`warehouse_checks` job once (lake-wide checks, freshness, Great Expectations), so that every check has a result; it
drops one vendor file into a second source's drop and shows the golden copy arbitrating it (demo/golden.py); it
prints what was built and queries to try, and walks through a restatement being detected by the reconciliation
sensor, recorded and applied (three simulated evenings in a temporary home).

    python -m demo [--months 2]

Uses the embedded simulator unless ITICK_TOKEN / ITICK_BASE_URL are set. Runs are recorded in the Dagster
instance at $DAGSTER_HOME (default $TICKLAKE_HOME/dagster), so `python3 dev.py ui` shows them afterwards.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from ticklake import markets, settings
from ticklake.dictionary import DATASETS

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
ROOT = Path(__file__).resolve().parents[1]
INSTANCE_YAML = ROOT / "instance" / "dagster.yaml"  # the embedded default's settings
LOCATION = "ticklake"  # workspace.yaml's location_name: the code location `python3 dev.py ui` loads
REPOSITORY = "__repository__"  # the repository Dagster makes of a Definitions object


def show_in_ui(instance: dg.DagsterInstance, run_id: str, location: str = LOCATION) -> None:
    """Attribute an in-process run to the UI's code location, as if it had been launched there.

    `execute_in_process` records a run with its job's name but no code-location origin and no repository label, so
    the UI's job pages (runs filtered by job name and the `.dagster/repository` tag) say "No runs found" and the
    Overview timeline (runs grouped by their repository origin) leaves it out. Dagster has no public call to set
    them on an in-process run; this does what `dagster run migrate-repository` does (`replace_job_origin`), after
    adding the label tag that call only updates."""
    from dagster._core.remote_origin import (
        ManagedGrpcPythonEnvCodeLocationOrigin,
        RemoteJobOrigin,
        RemoteRepositoryOrigin,
    )
    from dagster._core.storage.tags import REPOSITORY_LABEL_TAG
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    run = instance.get_run_by_id(run_id)
    if run is None:
        return
    target = LoadableTargetOrigin(executable_path=sys.executable, module_name="definitions", attribute="defs",
                                  working_directory=str(ROOT))
    repository = RemoteRepositoryOrigin(
        code_location_origin=ManagedGrpcPythonEnvCodeLocationOrigin(loadable_target_origin=target,
                                                                    location_name=location),
        repository_name=REPOSITORY)
    origin = RemoteJobOrigin(repository_origin=repository, job_name=run.job_name)
    instance.add_run_tags(run_id, {REPOSITORY_LABEL_TAG: repository.get_label()})
    instance.run_storage.replace_job_origin(instance.get_run_by_id(run_id), origin)


def recent_months(region: str, count: int, now: dt.datetime) -> list[str]:
    """The last `count` months of `region` up to the one holding its last completed session, oldest first."""
    last = markets.last_completed_session(region, now)
    if last is None:
        return []
    months = [f"{last:%Y-%m}"]
    while len(months) < count:
        first = dt.date.fromisoformat(months[0] + "-01") - dt.timedelta(days=1)
        months.insert(0, f"{first:%Y-%m}")
    return months


@dataclass
class FirstNight:
    """The runs of a first night: per region (reference, klines, fundamentals, analytics), then the checks."""

    months: dict[str, list[str]]
    regions: dict[str, tuple[dg.ExecuteInProcessResult, ...]]
    checks: dg.ExecuteInProcessResult


def first_night(defs: dg.Definitions, instance: dg.DagsterInstance, months: dict[str, list[str]], *,
                run_config: dict | None = None) -> FirstNight:
    """What a first night's schedules run, in their order: per region `reference_refresh` (securities_<region>),
    `nightly_refresh` over its months (one single-run backfill), `fundamentals_refresh`, `analytics_refresh`; then
    `warehouse_checks` once (warehouse_checks_daily, 06:00 UTC: the lake-wide checks, each region's freshness and
    the Great Expectations suites), so that every asset check of the definitions has a result."""
    from automation.jobs import run_partition_range

    regions = {}
    for region, its_months in months.items():
        if not its_months:
            continue
        ref = defs.resolve_job_def("reference_refresh").execute_in_process(
            instance=instance, partition_key=region, run_config=run_config)
        klines = run_partition_range(defs, region, its_months[0], its_months[-1], instance=instance,
                                     run_config=run_config)
        fundamentals = defs.resolve_job_def("fundamentals_refresh").execute_in_process(
            instance=instance, partition_key=region, run_config=run_config)
        analytics = defs.resolve_job_def("analytics_refresh").execute_in_process(
            instance=instance, partition_key=region, run_config=run_config)
        regions[region] = (ref, klines, fundamentals, analytics)
    checks = defs.resolve_job_def("warehouse_checks").execute_in_process(
        instance=instance, run_config=run_config, raise_on_error=False)  # a failed check is a result, not a crash
    for result in [*(r for results in regions.values() for r in results), checks]:
        show_in_ui(instance, result.run_id)
    return FirstNight(months={r: m for r, m in months.items() if m}, regions=regions, checks=checks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--months", type=int, default=2, help="months per region, the current one included "
                                                              "(default 2)")
    parser.add_argument("--skip-walkthrough", action="store_true",
                        help="skip the restatement walk-through (three simulated evenings, about 10 s)")
    args = parser.parse_args(argv)

    paths = settings.Paths(settings.home())
    os.environ.setdefault("DAGSTER_HOME", str(paths.home / "dagster"))
    dagster_home = Path(os.environ["DAGSTER_HOME"])
    dagster_home.mkdir(parents=True, exist_ok=True)
    if not (dagster_home / "dagster.yaml").exists():
        shutil.copyfile(INSTANCE_YAML, dagster_home / "dagster.yaml")
    from definitions import build_definitions
    from demo import golden, tenants
    from resources.itick import ITickResource
    from ticklake.sources.itick.config import EMBEDDED

    drop = golden.declare(paths, embedded=ITickResource.from_env().endpoint == EMBEDDED)  # a second source
    tenants.declare(paths)  # two business lines served from the lake
    defs = build_definitions()
    itick = defs.resources["itick"]
    now = dt.datetime.now(dt.UTC)
    started = time.perf_counter()
    calls = 0
    with dg.DagsterInstance.get() as instance:
        night = first_night(defs, instance, {region: recent_months(region, args.months, now)
                                             for region in settings.regions()}, run_config=QUIET)
        for region, (ref, result, fundamentals, analytics) in night.regions.items():
            months = night.months[region]
            calls += (_calls(ref) + _metadata(result, "klines_daily", "run_api_calls") + _calls(fundamentals)
                      + _calls(analytics))
            print(f"{region}: months {months[0]}..{months[-1]}, "
                  f"{_metadata(result, 'klines_daily', 'run_sessions_fetched')} sessions, "
                  f"{_metadata(result, 'klines_daily', 'run_rows')} bars, "
                  f"{_metadata(ref, 'securities', 'dagster/row_count')} securities, "
                  f"{_metadata(ref, 'corporate_actions', 'dagster/row_count')} splits, "
                  f"{_metadata(fundamentals, 'fundamentals_daily', 'refreshed')} valuation snapshots, "
                  f"{_metadata(analytics, 'klines_daily_adjusted', 'dagster/row_count')} adjusted bars")
        evaluations = night.checks.get_asset_check_evaluations()
        failed = sorted(e.check_name for e in evaluations if not e.passed)
        print(f"checks: {len(evaluations)} lake-wide checks evaluated (warehouse_checks), "
              f"{len(evaluations) - len(failed)} passed" + (f"; failed: {', '.join(failed)}" if failed else ""))
        arbitrated = golden.drop_a_file(defs, instance, drop, now, show_in_ui) if drop is not None else None
        delivered = tenants.deliver(defs, instance, show_in_ui)
    elapsed = time.perf_counter() - started
    _summary(paths, itick.endpoint, calls, elapsed)
    if arbitrated is not None:
        print()
        print("\n".join(golden.describe(arbitrated, _short(Path(sys.executable).parent / "ticklake"))))
    if delivered.manifests:
        print()
        print("\n".join(tenants.describe(delivered, _short(Path(sys.executable).parent / "ticklake"),
                                         "" if paths.home == Path("data").resolve() else
                                         f"TICKLAKE_HOME={_short(paths.home)} ", _short)))
    if not args.skip_walkthrough:
        from demo import walkthrough

        print()
        print("\n".join(walkthrough.describe(walkthrough.run())))
    return 0


def _metadata(result: dg.ExecuteInProcessResult, asset: str, name: str) -> int:
    total = 0
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        if materialization.asset_key == dg.AssetKey(asset) and name in materialization.metadata:
            total += int(materialization.metadata[name].value)
            break  # a multi-partition run reports the same figures on every partition
    return total


def _calls(result: dg.ExecuteInProcessResult) -> int:
    """API calls of every asset of a single-partition run."""
    return sum(int(e.step_materialization_data.materialization.metadata["api_calls"].value)
               for e in result.get_asset_materialization_events()
               if "api_calls" in e.step_materialization_data.materialization.metadata)


def _summary(paths: settings.Paths, endpoint: str, calls: int, elapsed: float) -> None:
    import ticklake

    with ticklake.connect(paths.home) as con:
        counts = [(d.name, con.execute(f'SELECT count(*) FROM "{d.name}"').fetchall()[0][0], d.domain)
                  for d in DATASETS.values()]
        silent = con.execute("SELECT count(*) FROM securities s ANTI JOIN klines_daily k USING (region, symbol)"
                             ).fetchall()[0][0]
        region, symbol, last = con.execute(
            "SELECT region, symbol, max(trade_date) FROM klines_daily GROUP BY ALL ORDER BY count(*) DESC, 1, 2 LIMIT 1"
        ).fetchall()[0]
        split = next(iter(con.execute(  # a split inside the stored bars, to show raw and adjusted side by side
            "SELECT c.region, c.symbol, c.ex_date FROM corporate_actions c JOIN klines_daily k ON k.region = c.region "
            "AND k.symbol = c.symbol AND k.trade_date = c.ex_date ORDER BY c.ex_date DESC LIMIT 1").fetchall()), None)
        queries = [
            f"SELECT trade_date, open, high, low, close, volume FROM klines_daily WHERE region = '{region}' AND "
            f"symbol = '{symbol}' ORDER BY trade_date DESC LIMIT 3",
            f"SELECT count(*) AS symbols FROM universe_on('{region}', DATE '{last}')",
            f"SELECT symbol, as_of, market_cap, market_cap_usd, pe, pe_percentile FROM valuation_daily "
            f"WHERE region = '{region}' ORDER BY market_cap_usd DESC LIMIT 3",
            "SELECT region, partition, rows, sessions, complete, run_id FROM lake_partitions "
            "WHERE dataset = 'klines_daily' ORDER BY region, partition DESC LIMIT 4",
        ]
        if split is None:  # no split inside these months: list the latest ones
            queries.insert(1, "SELECT region, symbol, ex_date, ratio, factor FROM corporate_actions "
                              "ORDER BY ex_date DESC LIMIT 3")
        else:  # the raw and the adjusted close around the latest split
            queries.insert(1, f"SELECT a.trade_date, r.close AS raw_close, a.close AS adjusted_close, "
                              f"a.adjustment_factor FROM klines_daily_adjusted a JOIN klines_daily r USING (region, "
                              f"symbol, trade_date) WHERE region = '{split[0]}' AND symbol = '{split[1]}' AND "
                              f"a.trade_date BETWEEN DATE '{split[2]}' - 5 AND DATE '{split[2]}' + 3 ORDER BY 1")
        shown = [(q, str(con.sql(q))) for q in queries]
    print()
    print(f"source      {endpoint}")
    print(f"api calls   {calls} (every call of every asset, counted by the client)")
    print(f"took        {elapsed:.1f}s")
    print("tables      (rows; every table and column is described in docs/tables.md)")
    for name, rows, domain in counts:
        print(f"            {name:<28}{rows:>10,}  {domain}")
    if silent:
        print(f"            {silent} securities have no bars in these months: the security master keeps delisted "
              "and suspended codes (no survivorship bias); list them with\n            SELECT * FROM securities "
              "ANTI JOIN klines_daily USING (region, symbol)")
    print(f"lake        {_short(paths.catalog)}   (the DuckLake catalog: tables, snapshots, which files hold what)")
    print(f"            {_short(paths.lake)}/   (its Parquet data files)")
    print(f"audit log   {_short(paths.audit)}")
    print()
    python = _short(Path(sys.executable))
    home = "" if paths.home == Path("data").resolve() else f"TICKLAKE_HOME={_short(paths.home)} "
    print(f"Try ({home}{python} -m ticklake.sql opens an interactive session on the same lake):")
    for query, output in shown:
        print(f"  {home}{python} -m ticklake.sql \"{query}\"")
        print("\n".join("    " + line for line in output.rstrip().splitlines()))


def _short(path: Path) -> str:
    """A path relative to the working directory when it lies inside it (what a user can paste)."""
    try:
        return os.path.relpath(path) if Path(path).resolve().is_relative_to(Path.cwd()) else str(path)
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
