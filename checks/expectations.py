"""The Great Expectations suite (ticklake.quality.expectations) as asset checks: one check per suite, on the asset whose
table it validates (`<table>_expectations`, `klines_daily_completeness`, `<table>_references`).

One multi-asset check runs any subset in one step: Great Expectations is imported and its Data Docs rebuilt once,
not once per check. It validates only in runs that materialize no asset (warehouse_checks, or the checks executed
alone): a run that materializes assets, such as a UI backfill of klines_daily, which Dagster always gives every check
of the asset, skips it instead of paying seconds of Great Expectations for a lake-wide suite.

A failed expectation the dictionary declares (a key, a bound, a reference) is an ERROR; completeness and
distributions (daily returns, P/E) are WARN, because real markets move and sources keep listing codes that stopped
trading. The metadata carries the statistics and a link to the suite's Data Docs page (in the production profile
`data_docs_object` and `data_docs_index` instead: the copies in the project every worker shares, in object storage).
"""

import dagster as dg

from assets.adjusted import klines_daily_adjusted
from assets.corporate_actions import corporate_actions
from assets.fundamentals import fundamentals_daily, fx_daily, valuation_daily
from assets.klines import klines_daily
from assets.listings import listings
from assets.trading_calendar import trading_calendar
from resources.storage import StorageResource
from ticklake.quality import expectations

_ASSETS = {k.to_user_string(): k for a in (listings, trading_calendar, corporate_actions, klines_daily,
                                          klines_daily_adjusted, fundamentals_daily, fx_daily, valuation_daily)
           for k in a.keys}
_DESCRIPTIONS = {
    "expectations": "Great Expectations suite derived from the data dictionary: key unique (per source), non-null "
                    "fields, bounds, value sets and patterns, row rules; plus the table's distributions",
    "completeness": "Great Expectations: per region, the share of (session, listed symbol) pairs with a bar over the "
                    f"last {expectations.SESSIONS} sessions is at least {expectations.MIN_COMPLETENESS:.0%}, and no "
                    "session is without bars",
    "references": "Great Expectations: every key this table refers to exists in the table it refers to",
}


def _check_name(suite: expectations.Suite) -> str:
    return f"{suite.table}_{suite.kind}"


_SUITES: dict[dg.AssetCheckKey, tuple[dg.AssetCheckSpec, expectations.Suite]] = {
    spec.key: (spec, suite) for spec, suite in (
        (dg.AssetCheckSpec(_check_name(s), asset=_ASSETS[s.table], description=_DESCRIPTIONS[s.kind]), s)
        for s in expectations.suites())
}


def _failures_markdown(result: expectations.SuiteResult) -> str:
    if not result.failures:
        return "none"
    rows = [f"| {f.severity} | {f.expectation} | {f.column or ''} | {f.observed} | {', '.join(f.examples)} |"
            for f in result.failures]
    return "\n".join(["| severity | expectation | column | observed | examples |", "|---|---|---|---|---|", *rows])


def _metadata(result: expectations.SuiteResult, index: str, home) -> dict[str, dg.MetadataValue]:
    metadata = {
        "suite": dg.MetadataValue.text(result.suite.name),
        "expectations_evaluated": dg.MetadataValue.int(result.evaluated),
        "expectations_failed": dg.MetadataValue.int(len(result.failures)),
        "rows_validated": dg.MetadataValue.int(result.rows),
        "scope": dg.MetadataValue.text(result.scope),
        "seconds": dg.MetadataValue.float(round(result.seconds, 3)),
        "failures": dg.MetadataValue.md(_failures_markdown(result)),
    }
    if result.docs_object:  # the production profile: the pages as stored for every machine, not the worker's copy
        metadata["data_docs_index"] = dg.MetadataValue.url(index)
        metadata["data_docs_object"] = dg.MetadataValue.url(result.docs_object)
    else:  # served over http (`python -m ticklake.expectations serve`, started by `python3 dev.py ui`): the UI
        # opens an http link, never a file:// one ("Not allowed to load local resource")
        metadata["data_docs_index"] = dg.MetadataValue.url(f"{expectations.docs_base_url()}/index.html")
        page = expectations.docs_http_url(home, result.docs_url)
        if page:
            metadata["data_docs"] = dg.MetadataValue.url(page)
        metadata["data_docs_path"] = dg.MetadataValue.path(index)
    if "by_region" in result.stats:
        metadata["by_region"] = dg.MetadataValue.json(result.stats["by_region"])
    return metadata


def _check_result(key: dg.AssetCheckKey, result: expectations.SuiteResult, index: str,
                  home) -> dg.AssetCheckResult:
    severity = dg.AssetCheckSeverity.ERROR if result.severity == "error" else dg.AssetCheckSeverity.WARN
    return dg.AssetCheckResult(asset_key=key.asset_key, check_name=key.name, passed=result.success,
                               severity=severity, metadata=_metadata(result, index, home))


@dg.multi_asset_check(specs=[spec for spec, _ in _SUITES.values()], can_subset=True, name="great_expectations",
                      description="The lake-level Great Expectations suite, with Data Docs under TICKLAKE_HOME "
                                  "(one project for all workers in object storage, in the production profile)")
def great_expectations_checks(context: dg.AssetCheckExecutionContext, storage: StorageResource):
    materialized = set(context.run.asset_selection or ()) | set(context.job_def.asset_layer.selected_asset_keys)
    if materialized:
        # A run that materializes assets: an asset backfill from the UI, or `dagster asset materialize`. Dagster
        # puts every check of the selected assets into such a run (asset backfills always run the implicit asset
        # job with all of them), and importing Great Expectations alone costs seconds per run. The suites look at
        # the whole lake, not at what one run wrote, so they run in the checks-only runs: the warehouse_checks job
        # (daily), or Execute on the checks in the UI. Here they yield nothing: the UI shows them as skipped.
        context.log.info(f"Great Expectations: skipped in a run that materializes assets "
                         f"({', '.join(sorted(k.to_user_string() for k in materialized))}); "
                         "the suites run in the warehouse_checks job, or when their checks alone are executed")
        return
    selected = {_SUITES[key][1].name: key for key in context.selected_asset_check_keys}
    home = storage.paths.home
    shared, locks = storage.expectations_sharing()
    with storage.lakehouse().reader() as con:
        results = expectations.run(con, home, selected, shared=shared, locks=locks)
    index = str(expectations.docs_index(home))
    if shared is None:
        where = f"{expectations.docs_base_url()}/index.html (python -m ticklake.expectations serve; {index})"
    else:  # the worker's copy is of no use on another machine: name the stored index and how to read it
        index = shared.url(expectations.INDEX_PAGE)
        where = f"{index} (`python -m ticklake.expectations docs` copies the site to any machine)"
    context.log.info(f"Great Expectations: {len(results)} suite(s) validated; Data Docs at {where}")
    for result in results:
        yield _check_result(selected[result.suite.name], result, index, home)


ASSET_CHECKS = [great_expectations_checks]
CHECK_KEYS = list(_SUITES)
