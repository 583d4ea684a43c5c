"""A lake-level Great Expectations suite over the pipeline's DuckDB, with Data Docs under TICKLAKE_HOME.

Every table suite is derived from the data dictionary (key unique, non-null fields, bounds, value sets and
patterns, row rules), so no field list is written twice. Three more kinds of suite look across tables:
completeness against calendar x universe, distributions (daily returns, P/E) and referential integrity.

Cost: DuckDB does the heavy lifting and hands Great Expectations small pandas frames. A table of up to
`FULL_SCAN_ROWS` rows is validated whole; a larger one only over its last `SESSIONS` dates per region, which is
what the nightly refresh wrote (a duplicate key shares its date, so uniqueness within the window is exact for
those rows; older rows were validated on the nights they were written). Completeness and references are
aggregates DuckDB computes over the whole tables. Great Expectations is imported lazily: loading the Dagster
code location does not pay for it.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote

import duckdb
import pandas as pd
from filelock import FileLock

from ticklake.dictionary import DATASETS, Dataset, Field
from ticklake.storage.frames import fetch_frame

if TYPE_CHECKING:
    from great_expectations.data_context import AbstractDataContext

    from ticklake.storage.locks import CommitLocks
    from ticklake.storage.remote_tree import RemoteTree

SESSIONS = 20  # the window a large table is validated over: its last SESSIONS dates per region
FULL_SCAN_ROWS = 250_000  # up to this many rows a table is validated whole
# Share of (session, listed symbol) pairs with a bar, per region, over the last SESSIONS. Not 1: sources keep
# listing codes that stopped trading, and single-day suspensions are normal (the simulator: about 88%).
MIN_COMPLETENESS = 0.85
EXAMPLES = 10  # unexpected values kept per failed expectation
DATASOURCE = "ticklake_warehouse"
SHARED_PREFIX = "great_expectations"  # the project's folder under TICKLAKE_STORAGE_URL (production profile)
SITE = "uncommitted/data_docs/local_site"  # the Data Docs site, within the project
INDEX_PAGE = f"{SITE}/index.html"
VALIDATION_PAGES = f"{SITE}/validations/"  # one page per validation run, under the suite's name
PROJECT_LOCK = "__great_expectations__"  # the lake lock that one worker's pull-validate-push holds
Severity = Literal["error", "warning"]
Kind = Literal["expectations", "completeness", "references"]
TABLES = ("securities", "trading_calendar", "security_master", "corporate_actions", "klines_daily",
          "klines_daily_adjusted", "fundamentals_daily", "fx_daily", "valuation_daily")


@dataclass(frozen=True)
class Distribution:
    """Most values of `column` lie in [low, high]: a warning, never an error (real markets move beyond any band).
    A column the table does not store is `derived`: the SQL of a relation over the validated rows (`{rows}`)."""

    column: str
    low: float
    high: float
    mostly: float
    derived: str | None = None
    note: str = ""  # what the scope sentence adds about the derived column


# A daily close-to-close move outside -50%..+100% is suspicious (split ex-dates excluded), but real markets move:
# only more than 1% of such rows is a warning. P/E beyond +-1000 in more than 5% of the rows is one too.
DAILY_RETURN_SQL = (
    "SELECT k.*, CASE WHEN s.ex_date IS NULL THEN k.close / lag(k.close) OVER "
    "(PARTITION BY k.region, k.symbol, k.source ORDER BY k.trade_date) - 1 END AS daily_return "
    "FROM ({rows}) k LEFT JOIN (SELECT DISTINCT region, symbol, ex_date FROM corporate_actions) s "
    "ON s.region = k.region AND s.symbol = k.symbol AND s.ex_date = k.trade_date")
PE = Distribution("pe", -1000.0, 1000.0, 0.95)
DISTRIBUTIONS: dict[str, tuple[Distribution, ...]] = {
    "klines_daily": (Distribution("daily_return", -0.5, 1.0, 0.99, derived=DAILY_RETURN_SQL,
                                  note="daily_return excludes split ex-dates"),),
    "fundamentals_daily": (PE,),
    "valuation_daily": (PE,),
}


@dataclass(frozen=True)
class Relation:
    """Every distinct `columns` value of `child` must exist in `parent`."""

    child: str
    parent: str
    columns: tuple[str, ...]

    @property
    def missing_column(self) -> str:
        return f"missing_from_{self.parent}"


RELATIONS = (
    Relation("klines_daily", "securities", ("region", "symbol")),
    Relation("corporate_actions", "securities", ("region", "symbol")),
    Relation("valuation_daily", "fundamentals_daily", ("region", "symbol", "as_of")),
)


@dataclass(frozen=True)
class Suite:
    """One expectation suite: `<table>.<kind>`, validated against one frame DuckDB builds."""

    table: str
    kind: Kind

    @property
    def name(self) -> str:
        return f"{self.table}.{self.kind}"


@dataclass(frozen=True)
class Failure:
    expectation: str
    column: str | None
    severity: Severity
    observed: str
    examples: tuple[str, ...]


@dataclass(frozen=True)
class SuiteResult:
    suite: Suite
    success: bool
    evaluated: int
    failures: tuple[Failure, ...]
    rows: int
    scope: str
    seconds: float
    docs_url: str | None
    stats: dict[str, Any]
    docs_object: str | None = None  # the production profile: the page's copy in object storage (s3://...)

    @property
    def severity(self) -> Severity:
        """An error when any failed expectation is one; a warning when only warnings failed."""
        return "error" if any(f.severity == "error" for f in self.failures) else "warning"


def suites() -> list[Suite]:
    return ([Suite(t, "expectations") for t in TABLES] + [Suite("klines_daily", "completeness")]
            + [Suite(r.child, "references") for r in RELATIONS])


def docs_root(home: Path) -> Path:
    """The Great Expectations project (a file context) under the home, never the working directory."""
    return home / "docs" / "great_expectations"


def docs_index(home: Path) -> Path:
    return docs_root(home) / INDEX_PAGE


# --- expectations derived from the data dictionary ------------------------------------------------------------


def _gxe() -> Any:
    import great_expectations.expectations as gxe

    return gxe


def value_set(pattern: str | None) -> list[str] | None:
    """`^split$` or `^(a|b)$`: a pattern that is only literal alternatives declares a value set."""
    match = re.fullmatch(r"\^\(?([A-Za-z0-9_|]+)\)?\$", pattern or "")
    return match.group(1).split("|") if match else None


def _field_expectations(field: Field) -> list:
    gxe, out = _gxe(), []
    if not field.nullable:
        out.append(gxe.ExpectColumnValuesToNotBeNull(column=field.name))
    low = 0 if field.strictly_positive and field.min_value is None else field.min_value
    if low is not None or field.max_value is not None:
        out.append(gxe.ExpectColumnValuesToBeBetween(column=field.name, min_value=low, max_value=field.max_value,
                                                     strict_min=field.strictly_positive))
    values = value_set(field.pattern)
    if values:
        out.append(gxe.ExpectColumnValuesToBeInSet(column=field.name, value_set=values))
    elif field.pattern:
        out.append(gxe.ExpectColumnValuesToMatchRegex(column=field.name, regex=field.pattern))
    return out


def _rule_expectations(dataset: Dataset) -> list:
    gxe, out = _gxe(), []
    for rule in dataset.rules:
        for other in rule.others:
            a, b = (rule.column, other) if rule.op in (">", ">=") else (other, rule.column)
            out.append(gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A=a, column_B=b, or_equal=rule.op in (">=", "<="), ignore_row_if="either_value_is_missing"))
    return out


def unique_key(dataset: Dataset) -> list[str]:
    """The dictionary key, within one source (each source's rows are its own)."""
    return [*dataset.key, *(["source"] if "source" in dataset.columns and "source" not in dataset.key else [])]


def _warning(expectation: Any) -> Any:
    expectation.meta = {**(expectation.meta or {}), "severity": "warning"}
    return expectation


def _distribution_expectations(table: str) -> list:
    gxe = _gxe()
    return [_warning(gxe.ExpectColumnValuesToBeBetween(column=d.column, min_value=d.low, max_value=d.high,
                                                       mostly=d.mostly)) for d in DISTRIBUTIONS.get(table, ())]


def table_expectations(dataset: Dataset) -> list:
    """Key unique, every field's declared constraints, the row rules, and the table's distributions."""
    gxe = _gxe()
    return [gxe.ExpectCompoundColumnsToBeUnique(column_list=unique_key(dataset)),
            *(e for f in dataset.fields for e in _field_expectations(f)),
            *_rule_expectations(dataset), *_distribution_expectations(dataset.name)]


def _expectations(suite: Suite) -> list:
    gxe = _gxe()
    if suite.kind == "expectations":
        return table_expectations(DATASETS[suite.table])
    if suite.kind == "completeness":
        return [_warning(gxe.ExpectColumnValuesToNotBeNull(column="share")),
                _warning(gxe.ExpectColumnValuesToBeBetween(column="share", min_value=MIN_COMPLETENESS,
                                                           max_value=1)),
                _warning(gxe.ExpectColumnValuesToBeBetween(column="sessions_without_bars", min_value=0,
                                                           max_value=0))]
    relation = next(r for r in RELATIONS if r.child == suite.table)
    return [gxe.ExpectColumnValuesToBeNull(column=relation.missing_column)]


# --- frames DuckDB builds ---------------------------------------------------------------------------------------


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]


def _window(con: duckdb.DuckDBPyConnection, dataset: Dataset) -> tuple[str, str]:
    """A WHERE clause for the rows validated, and a sentence saying which they are."""
    total = _count(con, dataset.name)
    if total <= FULL_SCAN_ROWS or not dataset.date_column:
        return "TRUE", f"all {total:,} rows"
    column = dataset.date_column
    where = (f'("region", "{column}") IN (SELECT (region, d) FROM (SELECT DISTINCT region, "{column}" AS d '
             f'FROM "{dataset.name}") QUALIFY row_number() OVER (PARTITION BY region ORDER BY d DESC) <= {SESSIONS})')
    return where, f"last {SESSIONS} {column} dates per region of {total:,} rows"


def _table_frame(con: duckdb.DuckDBPyConnection, dataset: Dataset) -> tuple[pd.DataFrame, str]:
    where, scope = _window(con, dataset)
    sql = f'SELECT * FROM "{dataset.name}" WHERE {where}'
    for d in DISTRIBUTIONS.get(dataset.name, ()):
        if d.derived:
            sql = d.derived.format(rows=sql)
            scope += f"; {d.note}" if d.note else ""
    return fetch_frame(con.execute(sql)), scope


COMPLETENESS_SQL = """
WITH sessions AS (
    SELECT c.region, c.date AS session FROM trading_calendar c
    WHERE c.is_session AND c.date <= (SELECT max(trade_date) FROM klines_daily k WHERE k.region = c.region)
    QUALIFY row_number() OVER (PARTITION BY c.region ORDER BY c.date DESC) <= $sessions),
latest AS (
    SELECT region, symbol, listing_date, delisting_date FROM security_master
    QUALIFY row_number() OVER (PARTITION BY region, symbol ORDER BY valid_from DESC, ingested_at DESC) = 1),
pairs AS (
    SELECT s.region, s.session, l.symbol FROM sessions s JOIN latest l ON l.region = s.region
    AND (l.listing_date IS NULL OR l.listing_date <= s.session)
    AND (l.delisting_date IS NULL OR l.delisting_date > s.session)),
bars AS (
    SELECT DISTINCT region, symbol, trade_date FROM klines_daily
    WHERE trade_date >= (SELECT min(session) FROM sessions))
SELECT s.region, count(DISTINCT s.session) AS sessions, min(s.session) AS first_session,
       max(s.session) AS last_session, count(p.symbol) AS pairs, count(b.symbol) AS pairs_with_bar,
       count(b.symbol) / nullif(count(p.symbol), 0) AS share,
       count(DISTINCT s.session) - count(DISTINCT b.trade_date) AS sessions_without_bars,
       string_agg(CASE WHEN b.symbol IS NULL AND p.symbol IS NOT NULL THEN p.symbol || ' ' || p.session END, ', '
                  ORDER BY p.session DESC, p.symbol) AS missing
FROM sessions s
LEFT JOIN pairs p ON p.region = s.region AND p.session = s.session
LEFT JOIN bars b ON b.region = p.region AND b.symbol = p.symbol AND b.trade_date = p.session
GROUP BY s.region ORDER BY s.region
"""


def _completeness_frame(con: duckdb.DuckDBPyConnection) -> tuple[pd.DataFrame, str]:
    frame = fetch_frame(con.execute(COMPLETENESS_SQL, {"sessions": SESSIONS}))
    frame["missing"] = frame["missing"].map(lambda text: ", ".join(str(text or "").split(", ")[:EXAMPLES]))
    return frame, (f"(session, listed symbol) pairs over each region's last {SESSIONS} sessions up to its latest "
                   "bar (trading_calendar x security_master)")


def _references_frame(con: duckdb.DuckDBPyConnection, relation: Relation) -> tuple[pd.DataFrame, str]:
    cols = ", ".join(f'"{c}"' for c in relation.columns)
    on = " AND ".join(f'p."{c}" = c."{c}"' for c in relation.columns)
    label = " || ' ' || ".join(f'CAST(c."{c}" AS VARCHAR)' for c in relation.columns)
    frame = fetch_frame(con.execute(
        f"SELECT c.*, CASE WHEN p.{relation.columns[0]} IS NULL THEN {label} END AS {relation.missing_column} "
        f"FROM (SELECT DISTINCT {cols} FROM {relation.child}) c "
        f"LEFT JOIN (SELECT DISTINCT {cols} FROM {relation.parent}) p ON {on}"))
    return frame, f"distinct ({', '.join(relation.columns)}) of {relation.child}, looked up in {relation.parent}"


def frame(con: duckdb.DuckDBPyConnection, suite: Suite) -> tuple[pd.DataFrame, str]:
    """The frame a suite validates, and what it covers."""
    if suite.kind == "expectations":
        return _table_frame(con, DATASETS[suite.table])
    if suite.kind == "completeness":
        return _completeness_frame(con)
    return _references_frame(con, next(r for r in RELATIONS if r.child == suite.table))


# --- running ---------------------------------------------------------------------------------------------------


def context(home: Path) -> AbstractDataContext:
    """A file context rooted under the home (created on first use), with one pandas data source."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="file", context_root_dir=docs_root(home))
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)  # run logs, not a terminal
    ctx.variables.save()
    if DATASOURCE not in ctx.data_sources.all():
        ctx.data_sources.add_pandas(DATASOURCE)
    return ctx


def _validation(ctx: AbstractDataContext, suite: Suite) -> Any:
    """The suite's validation definition, its expectations rebuilt from the dictionary on every run."""
    import great_expectations as gx

    source = ctx.data_sources.get(DATASOURCE)
    asset = (source.get_asset(suite.name) if suite.name in source.get_asset_names()
             else source.add_dataframe_asset(suite.name))
    batch = next((b for b in asset.batch_definitions if b.name == "frame"), None) or \
        asset.add_batch_definition_whole_dataframe("frame")
    gx_suite = ctx.suites.add_or_update(gx.ExpectationSuite(name=suite.name, expectations=_expectations(suite)))
    return ctx.validation_definitions.add_or_update(gx.ValidationDefinition(name=suite.name, data=batch,
                                                                            suite=gx_suite))


def _failure(result: Any) -> Failure:
    config, details = result.expectation_config, result.result or {}
    examples = details.get("partial_unexpected_list") or []
    observed = (f"{details['unexpected_count']} of {details['element_count']} unexpected "
                f"({details.get('unexpected_percent', 0):.2f}%)" if "unexpected_count" in details
                else f"observed {details.get('observed_value')}")
    return Failure(expectation=config.type, column=config.kwargs.get("column") or
                   ", ".join(config.kwargs.get("column_list") or []) or None,
                   severity=(config.meta or {}).get("severity", "error"), observed=observed,
                   examples=tuple(str(e) for e in examples[:EXAMPLES]))


def _validate(ctx: AbstractDataContext, con: duckdb.DuckDBPyConnection, suite: Suite) -> tuple[Any, SuiteResult]:
    started = time.perf_counter()
    data, scope = frame(con, suite)
    result = _validation(ctx, suite).run(batch_parameters={"dataframe": data}, result_format={
        "result_format": "SUMMARY", "partial_unexpected_count": EXAMPLES})
    failures = tuple(_failure(r) for r in result.results if not r.success)
    stats = {"rows": len(data), **({"by_region": json.loads(data.to_json(orient="records", date_format="iso"))}
                                   if suite.kind == "completeness" else {})}
    return result, SuiteResult(suite=suite, success=result.success, evaluated=len(result.results),
                               failures=failures, rows=len(data), scope=scope,
                               seconds=time.perf_counter() - started, docs_url=None, stats=stats)


def run(con: duckdb.DuckDBPyConnection, home: Path, names: Iterable[str] | None = None, *,
        shared: RemoteTree | None = None, locks: CommitLocks | None = None) -> list[SuiteResult]:
    """Validate the selected suites (all by default) and rebuild the Data Docs for their results, once.

    With `shared` (the production profile) the project is the one every worker keeps in object storage: under
    `locks` (the lake's cross-machine locks), pull what other workers validated, validate, and push what this run
    wrote, so the Data Docs index lists every worker's validations and the site can be read from one place."""
    wanted = set(names) if names is not None else None
    selected = [s for s in suites() if wanted is None or s.name in wanted]
    root = docs_root(home)
    root.parent.mkdir(parents=True, exist_ok=True)
    if (shared is None) != (locks is None):
        raise ValueError("a shared Great Expectations project needs the cross-machine lock, and only it")
    local = FileLock(root.parent / ".great_expectations.lock")  # one writer of the GX project here at a time
    with local, locks.hold([PROJECT_LOCK]) if locks is not None else contextlib.nullcontext():
        if shared is not None:
            shared.pull(root)
        ctx = context(home)
        validated = [_validate(ctx, con, s) for s in selected]
        started = time.perf_counter()
        ctx.build_data_docs(resource_identifiers=[_identifier(r) for r, _ in validated])
        make_offline(root)
        docs_seconds = time.perf_counter() - started
        results = [_with_docs(ctx, r, s, docs_seconds / max(1, len(validated))) for r, s in validated]
        if shared is not None:
            shared.push(root)
            results = [_shared_docs(r, root, shared) for r in results]
        return results


def _shared_docs(result: SuiteResult, root: Path, shared: RemoteTree) -> SuiteResult:
    """The stored copy of the result's Data Docs page (`s3://...`), which every machine can fetch."""
    url = result.docs_url or ""
    local = Path(unquote(url.removeprefix("file://"))) if url.startswith("file://") else None
    if local is None or not local.is_relative_to(root):
        return result
    return SuiteResult(**{**result.__dict__, "docs_object": shared.url(local.relative_to(root).as_posix())})


def _identifier(result: Any) -> Any:
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    return ValidationResultIdentifier(expectation_suite_identifier=ExpectationSuiteIdentifier(result.suite_name),
                                      run_id=result.meta["run_id"], batch_identifier=result.batch_id)


def _with_docs(ctx: AbstractDataContext, result: Any, summary: SuiteResult, docs_seconds: float) -> SuiteResult:
    urls = ctx.get_docs_sites_urls(resource_identifier=_identifier(result))
    url = urls[0].get("site_url") if urls else None
    return SuiteResult(**{**summary.__dict__, "docs_url": url, "seconds": summary.seconds + docs_seconds})


# --- Data Docs that read with no network, served over http --------------------------------------------------------

DOCS_URL_ENV = "TICKLAKE_DATA_DOCS_URL"  # where `python -m ticklake.expectations serve` answers, as the UI links it
DEFAULT_DOCS_PORT = 8766
_REMOTE_TAG = re.compile(r"""<(script|link)\b[^>]*\b(?:src|href)=["']https?://[^"']*["'][^>]*>(?:\s*</script>)?""",
                         re.IGNORECASE)
_OFFLINE_CSS = "static/styles/ticklake_offline.css"
_OFFLINE_MARK = "<!-- ticklake: offline -->"
OFFLINE_STYLE = """body { font-family: system-ui, sans-serif; margin: 0 2rem 2rem; color: #222; }
table { border-collapse: collapse; margin: 1rem 0; width: 100%; }
th, td { border: 1px solid #ccc; padding: .3rem .5rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } .passed { color: #1a7f37; } .failed { color: #cf222e; font-weight: bold; }
.card { border: 1px solid #ddd; margin: .8rem 0; padding: .3rem .8rem; } nav, .navbar { margin: .5rem 0; }
.d-none, .collapse:not(.show) { display: revert; } img { max-height: 2rem; }
"""


def docs_base_url() -> str:
    """The http address the Data Docs are served at (TICKLAKE_DATA_DOCS_URL, default the local `serve` command); a
    value that is no http(s) URL is refused naming the variable, rather than linked from every check."""
    from ticklake import settings

    return (settings.env_url(DOCS_URL_ENV) or f"http://127.0.0.1:{DEFAULT_DOCS_PORT}").rstrip("/")


def docs_http_url(home: Path, file_url: str | None) -> str | None:
    """The http address of a page of the site (given as GX's file:// URL), or None when it is not in the site."""
    if not file_url or not file_url.startswith("file://"):
        return None
    site = (docs_root(home) / SITE).resolve()
    page = Path(unquote(file_url.removeprefix("file://"))).resolve()
    return f"{docs_base_url()}/{page.relative_to(site).as_posix()}" if page.is_relative_to(site) else None


def _validation_rows(root: Path) -> list[dict[str, Any]]:
    """Every validation the project stored, newest first: suite, run time, success, counts, its page in the site."""
    rows = []
    store = root / "uncommitted" / "validations"
    for path in store.rglob("*.json"):
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        page = (Path(SITE) / "validations" / path.relative_to(store)).with_suffix(".html")
        stats = result.get("statistics") or {}
        rows.append({"suite": result.get("suite_name", "?"), "run_time": (result.get("meta") or {}).get("run_time", ""),
                     "success": bool(result.get("success")), "evaluated": stats.get("evaluated_expectations", 0),
                     "failed": stats.get("unsuccessful_expectations", 0),
                     "page": page.relative_to(SITE).as_posix(), "exists": (root / page).is_file()})
    return sorted(rows, key=lambda r: (r["run_time"], r["suite"]), reverse=True)


def _index_table(rows: list[dict[str, Any]]) -> str:
    import html

    body = "".join(
        f'<tr><td><a href="{html.escape(r["page"])}">{html.escape(r["suite"])}</a></td><td>{html.escape(r["run_time"])}'
        f'</td><td class="{"passed" if r["success"] else "failed"}">{"passed" if r["success"] else "failed"}</td>'
        f'<td>{r["evaluated"]}</td><td>{r["failed"]}</td></tr>' for r in rows if r["exists"])
    return (f'{_OFFLINE_MARK}<section id="ticklake-validations"><h2>Validation results ({len(rows)})</h2>'
            "<table><thead><tr><th>suite</th><th>run time (UTC)</th><th>status</th><th>expectations</th>"
            f"<th>failed</th></tr></thead><tbody>{body}</tbody></table></section>")


def make_offline(root: Path) -> int:
    """Make the Data Docs site read fully with no network: GX's pages load jQuery, Bootstrap, bootstrap-table and
    Vega from public CDNs (the package ships none of them), and the index lists its results only through
    bootstrap-table. Every page loses its remote scripts and styles and gets a small local stylesheet instead (the
    pages' content is plain HTML); the index gets a static table of every stored validation, newest first, linking
    each validation page. Idempotent: run after every build. Returns the pages rewritten."""
    site = root / SITE
    if not site.is_dir():
        return 0
    (site / _OFFLINE_CSS).parent.mkdir(parents=True, exist_ok=True)
    (site / _OFFLINE_CSS).write_text(OFFLINE_STYLE)
    rewritten = 0
    for page in site.rglob("*.html"):
        text = page.read_text()
        depth = len(page.relative_to(site).parts) - 1
        css = f'<link rel="stylesheet" href="{"../" * depth}{_OFFLINE_CSS}">'
        new = _REMOTE_TAG.sub("", text)
        # GX's logo is fetched from its S3 bucket with the project's id in the query: use the packaged copy
        new = re.sub(r"""src=["']https?://great-expectations-web-assets[^"']*/([\w.-]+?)(?:\?[^"']*)?["']""",
                     lambda m, up="../" * depth: f'src="{up}static/images/{m.group(1)}"', new)
        new = re.sub(r"<section id=\"ticklake-validations\">.*?</section>", "", new, flags=re.DOTALL)
        new = new.replace(_OFFLINE_MARK, "")
        if page == site / "index.html":
            new = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + _index_table(_validation_rows(root)), new, count=1)
        else:
            new = new.replace("<body", _OFFLINE_MARK + "<body", 1)
        if css not in new:
            new = new.replace("</head>", css + "</head>", 1)
        if new != text:
            page.write_text(new)
            rewritten += 1
    return rewritten


def serve(home: Path, port: int, host: str = "127.0.0.1") -> None:
    """Serve the Data Docs site over http (what the checks' `data_docs` links point at)."""
    import functools
    import http.server

    site = docs_root(home) / SITE
    site.mkdir(parents=True, exist_ok=True)
    make_offline(docs_root(home))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    with http.server.ThreadingHTTPServer((host, port), handler) as server:
        print(f"Data Docs of {site} at http://{host}:{server.server_address[1]}/index.html", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    """`python -m ticklake.expectations docs`: the Data Docs every worker published (TICKLAKE_STORAGE_URL), copied
    into this machine's TICKLAKE_HOME; prints the index to open in a browser. `... serve [--port 8766]`: serve the
    site over http, readable with no network (the checks link it; `python3 dev.py ui` starts it)."""
    import argparse
    import sys

    from ticklake import settings
    from ticklake.storage.object_store import location
    from ticklake.storage.remote_tree import RemoteTree

    parser = argparse.ArgumentParser(prog="python -m ticklake.expectations",
                                     description="docs: copy the shared Data Docs down from object storage and print "
                                                 "the index; serve: serve the Data Docs over http (offline)")
    parser.add_argument("command", choices=["docs", "serve"])
    parser.add_argument("--port", type=int, default=DEFAULT_DOCS_PORT, help=f"serve: port (default "
                                                                          f"{DEFAULT_DOCS_PORT})")
    parser.add_argument("--host", default="127.0.0.1", help="serve: address to bind (default 127.0.0.1)")
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(settings.home(), args.port, args.host)
        return 0
    home = settings.home()
    url = settings.storage_url()
    if url is not None:
        pulled = RemoteTree(location(url), SHARED_PREFIX).pull(docs_root(home))
        print(f"{pulled} file(s) copied from {url}/{SHARED_PREFIX}", file=sys.stderr)
        make_offline(docs_root(home))
    index = docs_index(home)
    if not index.is_file():
        print(f"no Data Docs yet at {index}: run the warehouse_checks job first", file=sys.stderr)
        return 2
    print(f"file://{index}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
