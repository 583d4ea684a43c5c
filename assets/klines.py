"""`klines_daily`: raw daily OHLCV per month x region, fetched with the fewest calls the API allows.

One single-run backfill covers any range of months and regions. Dagster would stamp the step's metadata on
every partition alike, so each partition gets its own figures through `add_asset_metadata(partition_key=...)`,
and whatever covers the whole run is prefixed `run_`.
"""

import datetime as dt
import warnings

import dagster as dg
import pandas as pd

from assets.clock import RunClock
from assets.factory import run_context
from assets.golden import exceptions_check, exceptions_check_spec
from assets.listings import SECURITIES_KEY
from assets.metadata import dataset_asset, fetch_metadata, latency_metadata, preview, snapshot_metadata
from assets.partitions import REGION, SESSION_TAG, calendar_days, key, month_region_partitions, months_by_region
from resources.itick import ITickResource
from resources.storage import StorageResource
from ticklake import markets
from ticklake.datasets.golden import RULES
from ticklake.datasets.klines import (
    DIFF_KEYS,
    IngestResult,
    PartitionReport,
    ingest_daily_bars,
    last_sessions,
    nightly_dates,
    rows_by_month,
    universe,
)
from ticklake.dictionary import KLINES_DAILY
from ticklake.dictionary.core import GOLDEN
from ticklake.quality.anomalies import anomalies
from ticklake.settings import max_daily_move, max_missing_share
from ticklake.sources.contract import FetchReport
from ticklake.storage import Lakehouse
from ticklake.storage.ddl import partition_address

ROWS_CHECK = "stored_rows_match_lake"
COVERAGE_CHECK = "every_session_has_bars"
ANSWERED_CHECK = "requested_codes_answered"
QUARANTINE_CHECK = "no_rows_quarantined"
PLAUSIBLE_CHECK = "daily_moves_plausible"
MONTH_CHECK = "month_complete"
MAX_LISTED = 50


# Two Dagster beta APIs, used on purpose: a range of partitions runs as one run (single-run backfill), and the
# region dimension maps to `securities`. Their notices are acknowledged here, where they are used, instead of
# printing on every CLI run and run start; any other beta API of ours is an error in the tests (pyproject.toml).
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r".*(backfill_policy|MultiToSingleDimensionPartitionMapping)",
                            category=dg.BetaWarning)
    klines_asset = dg.asset(
        partitions_def=month_region_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=[dg.AssetDep(SECURITIES_KEY, partition_mapping=dg.MultiToSingleDimensionPartitionMapping(REGION))],
        **dataset_asset(KLINES_DAILY),
        check_specs=[
            dg.AssetCheckSpec(ROWS_CHECK, asset="klines_daily", blocking=True,
                              description="Lakehouse rows of every partition the run wrote equal its lake file's rows"),
            dg.AssetCheckSpec(COVERAGE_CHECK, asset="klines_daily",
                              description="Every session the run fetched got bars from the source (a silent source "
                                          "warns)"),
            dg.AssetCheckSpec(ANSWERED_CHECK, asset="klines_daily",
                              description="The source answered for every requested code. A code left out (or sent as "
                                          "null) even after asking again keeps its stored bars and is listed here: a "
                                          "warning, an error when more than TICKLAKE_MAX_MISSING_SHARE of the codes "
                                          "(default 5%) went unanswered"),
            dg.AssetCheckSpec(QUARANTINE_CHECK, asset="klines_daily",
                              description="No row the source sent broke a hard rule. Broken rows go to the quarantine "
                                          "table (rule, reason, raw values) and their codes keep what is stored for "
                                          "those dates: a warning listing them (the step fails instead above "
                                          "TICKLAKE_MAX_REJECTED_SHARE of a page)"),
            dg.AssetCheckSpec(PLAUSIBLE_CHECK, asset="klines_daily",
                              description="Soft anomalies in what the run stored: close-to-close moves beyond "
                                          "TICKLAKE_MAX_DAILY_MOVE (default 25%) on a day without a recorded split, "
                                          "and stale prices (a bar equal to the previous close while volume traded). "
                                          "A warning: real markets move more than 10% in a day"),
            dg.AssetCheckSpec(MONTH_CHECK, asset="klines_daily",
                              description="Every month the run wrote is complete: all its sessions had closed. The "
                                          "month still in progress fails it (a warning naming the partitions and "
                                          "their sessions still to close), so it does not read as finished"),
            exceptions_check_spec("klines_daily"),
        ],
    )


@klines_asset
def klines_daily(context: dg.AssetExecutionContext, config: RunClock,
                 itick: ITickResource, storage: StorageResource):
    missing_share_limit = max_missing_share()  # a bad TICKLAKE_MAX_MISSING_SHARE fails the step before any fetch
    ctx = run_context(context, config, storage, itick, asset="klines_daily")
    lake, source = ctx.lake, ctx.source
    earlier = {id(c) for c in source.client.records}  # a client shared with earlier runs in this process
    results: list[IngestResult] = []
    nightly = context.run.tags.get(SESSION_TAG)
    for region, months in months_by_region(context.partition_keys).items():
        dates = calendar_days(months)
        if nightly:  # the schedule's run: only what is new (the reconciliation sensor re-checks the rest)
            dates = nightly_dates(lake, region=region, source=source.name,
                                  session=dt.date.fromisoformat(nightly), dates=dates)
            context.log.info(f"{region}: nightly run for {nightly}: fetching {dates[0]}..{dates[-1]}")
        results.append(ingest_daily_bars(ctx, region, dates=dates, codes=universe(lake, region)))
    _refuse_if_nothing_closed(results)
    for result in results:
        if result.unrequested:
            context.log.warning(f"{result.region}: dropped bars of {len(result.unrequested)} code(s) the source sent "
                                f"without being asked: {sorted(result.unrequested)[:MAX_LISTED]}")
    # Every partition gets its own figures first, then the run's (named run_*): a partition's page reads top down.
    lag = _data_lag_hours(lake, [r.region for r in results], config.instant())
    calls = [c for c in source.client.records if id(c) not in earlier]  # this process's calls (not workers')
    run = {**_run_metadata(results, source.spent(), source.name), **latency_metadata(calls, prefix="run_"),
           "run_data_lag_hours": dg.MetadataValue.json(lag), **snapshot_metadata(lake)}
    reports = {key(p.month, p.region): p for r in results for p in r.partitions.values()}
    for partition_key in context.partition_keys:
        report = reports.get(partition_key)
        # a month with no session at all would have no report: say what the run did, not a row count it never read
        own = (_partition_metadata(report) if report
               else {"sessions_fetched": dg.MetadataValue.int(0)})
        region_lag = lag.get(partition_key.split("|")[-1])
        if region_lag is not None:
            own["data_lag_hours"] = dg.MetadataValue.float(region_lag)
        context.add_asset_metadata({**own, **run}, partition_key=partition_key)
    yield dg.MaterializeResult()
    yield _rows_check(results, lake)
    yield _coverage_check(results)
    yield _answered_check(results, missing_share_limit)
    yield _quarantine_check(results)
    yield _plausibility_check(results, lake, source.name)
    yield _month_check(results)
    yield exceptions_check(lake, sorted({r.region for r in results}))


def _data_lag_hours(lake: Lakehouse, regions: list[str], now: dt.datetime) -> dict[str, float | None]:
    """Per region: hours from the close of its latest stored session to the run's `now` (None: nothing stored)."""
    latest = last_sessions(lake)
    out: dict[str, float | None] = {}
    for region in sorted(set(regions)):
        day = latest.get(region)
        out[region] = (None if day is None else
                       round((now - markets.session_close(region, pd.Timestamp(day).date())).total_seconds() / 3600, 2))
    return out


def _month_check(results: list[IngestResult]) -> dg.AssetCheckResult:
    """The month in progress is written as far as it has closed; this says so where the asset's checks show."""
    open_months = [(key(p.month, p.region), p) for r in results for p in r.partitions.values() if not p.complete]
    return dg.AssetCheckResult(
        check_name=MONTH_CHECK, passed=not open_months, severity=dg.AssetCheckSeverity.WARN,
        description=("; ".join(f"{k}: incomplete, {len(p.not_closed)} session(s) still to close"
                               for k, p in open_months) or "every month written is complete"),
        metadata={"incomplete_partitions": dg.MetadataValue.text(", ".join(k for k, _ in open_months) or "none"),
                  "sessions_not_closed": dg.MetadataValue.int(sum(len(p.not_closed) for _, p in open_months)),
                  "next_to_close": dg.MetadataValue.text(", ".join(
                      f"{k} {min(p.not_closed)}" for k, p in open_months if p.not_closed) or "none")},
    )


def _quarantine_check(results: list[IngestResult]) -> dg.AssetCheckResult:
    rejected = [f"{r.region} {row.symbol} {pd.Timestamp(row.trade_date):%Y-%m-%d}: {row.reason}"
                for r in results for frame in r.quarantined for row in frame.itertuples()]
    return dg.AssetCheckResult(
        check_name=QUARANTINE_CHECK, passed=not rejected, severity=dg.AssetCheckSeverity.WARN,
        metadata={"rows_quarantined": dg.MetadataValue.int(len(rejected)),
                  "details": dg.MetadataValue.text("\n".join(rejected[:MAX_LISTED]) or "none"),
                  "query": dg.MetadataValue.text("SELECT * FROM quarantine ORDER BY ingested_at DESC")},
    )


def _plausibility_check(results: list[IngestResult], lake, source: str) -> dg.AssetCheckResult:
    found = []
    with lake.reader() as con:
        for r in results:
            if r.sessions:
                found += [f"{r.region} {a}" for a in anomalies(con, region=r.region, source=source,
                                                               first=r.sessions[0], last=r.sessions[-1])]
    return dg.AssetCheckResult(
        check_name=PLAUSIBLE_CHECK, passed=not found, severity=dg.AssetCheckSeverity.WARN,
        metadata={"anomalies": dg.MetadataValue.int(len(found)),
                  "max_daily_move": dg.MetadataValue.float(max_daily_move()),
                  "details": dg.MetadataValue.text("\n".join(found[:MAX_LISTED]) or "none")},
    )


def _refuse_if_nothing_closed(results: list[IngestResult]) -> None:
    """A run whose every session is still to close would mark partitions done with nothing in them."""
    if any(r.sessions for r in results) or not any(r.not_closed for r in results):
        return
    first = min(d for r in results for d in r.not_closed)
    raise dg.Failure(
        description=f"No requested session has closed yet (the first is {first}); nothing was fetched or written. "
                    "Materialize a month with a closed session, or wait for the nightly schedule.",
        allow_retries=False,
    )


def _partition_metadata(report: PartitionReport) -> dict[str, dg.MetadataValue]:
    """This partition's own figures: what its page in the UI shows."""
    sessions = report.sessions
    empty = report.sessions_without_bars
    return {
        "dagster/row_count": dg.MetadataValue.int(report.rows),
        "symbols": dg.MetadataValue.int(report.symbols),
        "sessions_fetched": dg.MetadataValue.int(len(sessions)),
        "first_session": dg.MetadataValue.text(sessions[0].isoformat() if sessions else "-"),
        "last_session": dg.MetadataValue.text(sessions[-1].isoformat() if sessions else "-"),
        "complete": dg.MetadataValue.bool(report.complete),
        "sessions_not_closed": dg.MetadataValue.int(len(report.not_closed)),
        "sessions_without_bars": dg.MetadataValue.int(len(empty)),
        "missing_codes": dg.MetadataValue.int(len(report.missing)),
        **({"missing_code_list": dg.MetadataValue.text(", ".join(sorted(report.missing)[:MAX_LISTED]))}
           if report.missing else {}),
        **{f"rows_{k}": dg.MetadataValue.int(report.diff[k]) for k in DIFF_KEYS},
        **{f"golden_{rule}": dg.MetadataValue.int(report.golden.get(rule, 0)) for rule in RULES},
        # the golden partition (lake_partitions.path); the source's own rows are at .../<source> of the raw layer
        "lake_path": dg.MetadataValue.text(partition_address(KLINES_DAILY, dict(region=report.region,
                                                                   month=report.month, source=GOLDEN))),
    }


def _run_metadata(results: list[IngestResult], fetch: FetchReport, source_name: str) -> dict[str, dg.MetadataValue]:
    """Figures that cover the whole run; every partition of the run carries them, so they say so."""
    diff = {k: sum(r.diff[k] for r in results) for k in DIFF_KEYS}
    return {
        "run_partitions": dg.MetadataValue.int(sum(len(r.partitions) for r in results)),
        "run_rows": dg.MetadataValue.int(sum(r.rows for r in results)),
        "run_sessions_fetched": dg.MetadataValue.int(sum(len(r.sessions) for r in results)),
        **{f"run_rows_{k}": dg.MetadataValue.int(v) for k, v in diff.items()},
        "run_unrequested_codes": dg.MetadataValue.int(sum(len(r.unrequested) for r in results)),
        "run_rows_quarantined": dg.MetadataValue.int(sum(r.rejected_rows for r in results)),
        "run_rows_off_window": dg.MetadataValue.int(sum(r.off_window_rows for r in results)),
        "source": dg.MetadataValue.text(source_name),
        "run_preview": preview(next((r.preview for r in results if r.preview is not None), None)),
        **fetch_metadata(fetch, prefix="run_"),
    }


def _rows_check(results: list[IngestResult], lake: Lakehouse) -> dg.AssetCheckResult:
    mismatches = []
    for r in results:
        written = {m: p for m, p in r.partitions.items() if p.committed}
        if not written:
            continue
        stored = rows_by_month(lake, r.region, min(written), max(written))
        mismatches += [f"{r.region} {m}: lake {p.rows} vs lake {stored.get(m, 0)}"
                       for m, p in written.items() if stored.get(m, 0) != p.rows]
    return dg.AssetCheckResult(
        check_name=ROWS_CHECK, passed=not mismatches, severity=dg.AssetCheckSeverity.ERROR,
        metadata={"partitions_checked": dg.MetadataValue.int(sum(p.committed for r in results
                                                                 for p in r.partitions.values())),
                  "mismatches": dg.MetadataValue.int(len(mismatches)),
                  "details": dg.MetadataValue.text("\n".join(mismatches[:MAX_LISTED]) or "none")},
    )


def _coverage_check(results: list[IngestResult]) -> dg.AssetCheckResult:
    """Closed sessions that got no bar at all. Sessions still to close in the current month are expected (the
    partition says `complete: false`), so they are listed for information, not counted as a failure."""
    empty = [f"{r.region} {d} ({markets.market(r.region).calendar})" for r in results
             for p in r.partitions.values() for d in p.sessions_without_bars]
    pending = [f"{r.region} {d}" for r in results for d in r.not_closed]
    return dg.AssetCheckResult(
        check_name=COVERAGE_CHECK, passed=not empty, severity=dg.AssetCheckSeverity.WARN,
        metadata={"sessions_without_bars": dg.MetadataValue.int(len(empty)),
                  "details": dg.MetadataValue.text("\n".join(empty[:MAX_LISTED]) or "none"),
                  "sessions_not_closed": dg.MetadataValue.text(", ".join(pending[:MAX_LISTED]) or "none")},
    )


def _answered_check(results: list[IngestResult], limit: float) -> dg.AssetCheckResult:
    missing = sorted({(r.region, c) for r in results for c in r.missing})
    share = max((len(r.missing) / max(r.requested_codes, 1) for r in results), default=0.0)
    severity = dg.AssetCheckSeverity.ERROR if share > limit else dg.AssetCheckSeverity.WARN
    return dg.AssetCheckResult(
        check_name=ANSWERED_CHECK, passed=not missing, severity=severity,
        metadata={"unanswered_codes": dg.MetadataValue.int(len(missing)),
                  "unanswered_share": dg.MetadataValue.float(round(share, 4)),
                  "error_above_share": dg.MetadataValue.float(limit),
                  "codes": dg.MetadataValue.text(", ".join(f"{r}:{c}" for r, c in missing[:MAX_LISTED]) or "none"),
                  "rule": dg.MetadataValue.text("Unanswered codes keep their stored bars. Warning when some codes "
                                                "went unanswered; error above TICKLAKE_MAX_MISSING_SHARE.")},
    )
