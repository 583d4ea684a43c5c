"""Every environment variable docs/configuration.md documents is read through `ticklake.settings`' helpers: a bad
value is a ConfigError naming the variable, the value (never a secret's) and the rule, where the variable is read.
And every variable the code reads is documented there (or, for the production profile's own, in
docs/deployment.md)."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest

from resources.itick import ITickResource
from resources.storage import StorageResource
from ticklake import settings
from ticklake.quality import expectations
from ticklake.settings import ConfigError
from ticklake.sources.itick.config import ENV_FIELDS, check_config
from ticklake.urls import redact_url

ROOT = Path(__file__).resolve().parents[2]
SECRET = "tok-51c0e9a7d2b4 f68e"  # a space: not a valid token


def _run_start(resource: Callable[[], dg.ConfigurableResource]) -> Callable[[], None]:
    """Initialise the resource as a run does (EnvVars resolved, `setup_for_execution` called) and raise what
    Dagster reports as the cause."""

    def initialise() -> None:
        try:
            with dg.build_resources({"resource": resource()}):
                pass
        except dg.DagsterResourceFunctionError as exc:
            raise exc.__cause__ from None

    return initialise


def _home_file(tmp_path: Path) -> str:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    return str(blocker)


# Where each variable is read: definitions load (ITickResource.from_env, assets/partitions.py) or run start
# (resource initialisation, the klines step's first line).
READERS: dict[str, Callable[[], object]] = {
    "ITICK_TOKEN": _run_start(ITickResource.from_env),
    "ITICK_BASE_URL": ITickResource.from_env,
    "ITICK_PLAN": ITickResource.from_env,
    "ITICK_MAX_CODES": ITickResource.from_env,
    "ITICK_BAR_TIME": ITickResource.from_env,
    "TICKLAKE_HOME": _run_start(StorageResource),
    "TICKLAKE_CATALOG": _run_start(StorageResource),
    "TICKLAKE_SNAPSHOT_RETENTION_DAYS": settings.snapshot_retention_days,
    "TICKLAKE_DATA_DOCS_URL": expectations.docs_base_url,
    "TICKLAKE_REGIONS": settings.regions,
    "TICKLAKE_START_DATE": settings.start_date,
    "TICKLAKE_FETCH_PROCESSES": ITickResource.from_env,
    "TICKLAKE_SIM_SYMBOLS": ITickResource.from_env,
    "TICKLAKE_SIM_SEED": ITickResource.from_env,
    "TICKLAKE_MAX_MISSING_SHARE": settings.max_missing_share,
    "TICKLAKE_FUNDAMENTALS_BUDGET": lambda: settings.fundamentals_budget(5),
    "TICKLAKE_MAX_VANISHED_SHARE": settings.max_vanished_share,
    "TICKLAKE_RECONCILE_SESSIONS": settings.reconcile_sessions,
    "TICKLAKE_MAX_REJECTED_SHARE": settings.max_rejected_share,
    "TICKLAKE_MAX_DAILY_MOVE": settings.max_daily_move,
    "TICKLAKE_FRESHNESS_HOURS": settings.freshness_hours,
    "TICKLAKE_SOURCES": settings.sources_file,
    "TICKLAKE_TENANTS": settings.tenants_file,
    "TICKLAKE_REDIS_URL": settings.redis_url,
    "TICKLAKE_API_CACHE_SECONDS": settings.api_cache_seconds,
    "TICKLAKE_API_CACHE_ENTRIES": settings.api_cache_entries,
    "TICKLAKE_API_SNAPSHOT_MS": settings.api_snapshot_ms,
    "TICKLAKE_API_AUDIT_FLUSH_MS": settings.api_audit_flush_ms,
    "TICKLAKE_API_THREADS": settings.api_threads,
}

BAD_VALUES = [
    ("ITICK_TOKEN", SECRET, "visible ASCII characters without spaces"),
    ("ITICK_BASE_URL", "127.0.0.1:8765", "http:// or https:// URL"),
    ("ITICK_BASE_URL", "ftp://example.org", "http:// or https:// URL"),
    ("ITICK_BASE_URL", "http://host:port", "http:// or https:// URL"),
    ("ITICK_PLAN", "gold", "free, base, pro, premium or a positive whole number"),
    ("ITICK_PLAN", "0", "free, base, pro, premium or a positive whole number"),
    ("ITICK_PLAN", "1.5", "free, base, pro, premium or a positive whole number"),
    ("ITICK_MAX_CODES", "abc", "whole number from 1 to 1000"),
    ("ITICK_MAX_CODES", "0", "whole number from 1 to 1000"),
    ("ITICK_MAX_CODES", "1001", "whole number from 1 to 1000"),
    ("ITICK_MAX_CODES", "5000", "whole number from 1 to 1000"),
    ("ITICK_BAR_TIME", "local", "one of exchange_local, utc"),
    ("TICKLAKE_HOME", _home_file, "must be a directory"),
    ("TICKLAKE_CATALOG", "duckdb:/x/catalog.duckdb", "admits no writer while any other process has it attached"),
    ("TICKLAKE_CATALOG", "mysql:host=db", "use sqlite:<file> or postgres:<libpq conninfo>"),
    ("TICKLAKE_SNAPSHOT_RETENTION_DAYS", "0", "whole number from 1 to 36500"),
    ("TICKLAKE_DATA_DOCS_URL", "127.0.0.1:8766", "http:// or https:// URL"),
    ("TICKLAKE_SNAPSHOT_RETENTION_DAYS", "a month", "whole number from 1 to 36500"),
    ("TICKLAKE_REGIONS", "US,XX", "comma-separated list of DE, GB, HK, JP, SG, SH, SZ, US"),
    ("TICKLAKE_REGIONS", ",", "comma-separated list of"),
    ("TICKLAKE_START_DATE", "2024-13-01", "date written YYYY-MM-DD"),
    ("TICKLAKE_START_DATE", "yesterday", "date written YYYY-MM-DD"),
    ("TICKLAKE_START_DATE", f"{dt.date.today().year + 1}-01-01", "not after"),
    ("TICKLAKE_FETCH_PROCESSES", "-1", "whole number from 0 to 16"),
    ("TICKLAKE_FETCH_PROCESSES", "17", "whole number from 0 to 16"),
    ("TICKLAKE_SIM_SYMBOLS", "0", "whole number from 1 to 100000"),
    ("TICKLAKE_SIM_SEED", "-1", "whole number >= 0"),
    ("TICKLAKE_SIM_SEED", "0x10", "whole number >= 0"),
    ("TICKLAKE_MAX_MISSING_SHARE", "2", "fraction from 0 to 1"),
    ("TICKLAKE_MAX_MISSING_SHARE", "-0.1", "fraction from 0 to 1"),
    ("TICKLAKE_MAX_MISSING_SHARE", "nan", "fraction from 0 to 1"),
    ("TICKLAKE_MAX_MISSING_SHARE", "5%", "fraction from 0 to 1"),
    ("TICKLAKE_MAX_VANISHED_SHARE", "1.5", "fraction from 0 to 1"),
    ("TICKLAKE_RECONCILE_SESSIONS", "0", "whole number"),
    ("TICKLAKE_MAX_REJECTED_SHARE", "1.5", "fraction from 0 to 1"),
    ("TICKLAKE_MAX_DAILY_MOVE", "-1", "fraction from 0 to 1"),
    ("TICKLAKE_FUNDAMENTALS_BUDGET", "-1", "whole number >= 0"),
    ("TICKLAKE_FUNDAMENTALS_BUDGET", "lots", "whole number >= 0"),
    ("TICKLAKE_FRESHNESS_HOURS", "-1", "whole number from 0 to 168"),
    ("TICKLAKE_FRESHNESS_HOURS", "6.5", "whole number from 0 to 168"),
    ("TICKLAKE_SOURCES", "/nonexistent/sources.toml", "must be the path of an existing file"),
    ("TICKLAKE_SOURCES", lambda tmp_path: str(tmp_path), "must be the path of an existing file"),
    ("TICKLAKE_TENANTS", "/nonexistent/tenants.toml", "must be the path of an existing file"),
    ("TICKLAKE_REDIS_URL", "http://127.0.0.1:6379", "use redis://host:6379/0"),
    ("TICKLAKE_REDIS_URL", "rediss:/:s3cret-pass@127.0.0.1", "use redis://host:6379/0"),
    ("TICKLAKE_API_CACHE_SECONDS", "-1", "whole number from 0 to 86400"),
    ("TICKLAKE_API_CACHE_ENTRIES", "many", "whole number from 0 to 1000000"),
    ("TICKLAKE_API_SNAPSHOT_MS", "1.5", "whole number from 0 to 60000"),
    ("TICKLAKE_API_AUDIT_FLUSH_MS", "10", "whole number from 50 to 60000"),
    ("TICKLAKE_API_THREADS", "0", "whole number from 1 to 256"),
]


CONFIGURATION_DOC = ROOT / "docs" / "configuration.md"
DEPLOYMENT_DOC = ROOT / "docs" / "deployment.md"
# Where the code reads the environment: the library, the Dagster layer and the instance/worker settings.
READING_CODE = ("ticklake", "resources", "assets", "checks", "automation", "demo", "deploy", "definitions.py")
# Read by the code, documented by others: Dagster's own and the AWS SDK's variables.
NOT_OURS = {"DAGSTER_HOME", "AWS_DEFAULT_REGION"}


def _table_variables(path: Path, heading: str) -> set[str]:
    """The variables named in the first column of the table(s) under `heading` (up to the next `## ` heading)."""
    text = path.read_text()
    assert f"\n{heading}\n" in text, f"{path.relative_to(ROOT)} has no {heading!r} section"
    section = text.split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    return {name for cell in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", cell)}


def _documented() -> set[str]:
    """The variables in docs/configuration.md's "Configuration (environment)" table."""
    return _table_variables(CONFIGURATION_DOC, "## Configuration (environment)")


def _read_by_the_code() -> set[str]:
    """Every variable the code names as a string (`os.environ.get("TICKLAKE_X")`, `env_int("TICKLAKE_X", ...)`)
    or that the instance and worker settings read (`env: TICKLAKE_X`)."""
    files = [p for entry in READING_CODE for p in ((ROOT / entry).rglob("*") if (ROOT / entry).is_dir()
                                                    else [ROOT / entry]) if p.suffix in {".py", ".yaml", ".yml"}]
    names: set[str] = set()
    for path in files:
        text = path.read_text()
        names |= set(re.findall(r"""["']((?:ITICK|TICKLAKE|DAGSTER|AWS)_[A-Z0-9_]+)["']""", text))
        names |= set(re.findall(r"\benv:\s*([A-Z][A-Z0-9_]+)", text))
    return names


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """Each case sets one variable; the rest keep their defaults."""
    for name in READERS:
        monkeypatch.delenv(name, raising=False)


def test_every_documented_variable_has_a_reader_and_a_bad_value_case():
    assert _documented() == set(READERS)
    assert {name for name, _, _ in BAD_VALUES} == set(READERS)


def test_every_variable_the_code_reads_is_documented():
    production = _table_variables(DEPLOYMENT_DOC, "## The production environment")
    read = _read_by_the_code()
    assert {"ITICK_TOKEN", "TICKLAKE_HOME", "TICKLAKE_COORDINATION_URL", "TICKLAKE_MAX_CONCURRENT_RUNS"} <= read
    undocumented = read - _documented() - production - NOT_OURS
    assert not undocumented, f"read by the code but documented in neither page: {sorted(undocumented)}"


@pytest.mark.parametrize(("variable", "value", "rule"), BAD_VALUES,
                         ids=[f"{n}={v if isinstance(v, str) else 'file'}" for n, v, _ in BAD_VALUES])
def test_a_bad_value_names_the_variable_the_value_and_the_rule(monkeypatch, tmp_path, variable, value, rule):
    value = value if isinstance(value, str) else value(tmp_path)
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as err:
        READERS[variable]()
    message = str(err.value)
    assert variable in message
    assert rule in message
    if variable in ("ITICK_TOKEN", "TICKLAKE_REDIS_URL"):
        assert value not in message  # a secret is never shown, not even to say it is wrong
        assert value[:12] not in message
    else:
        assert repr(value) in message
    assert not set(ENV_FIELDS.values()) & set(re.findall(r"\w+", message))  # never a field name


# The extremes each variable accepts. The resource's pydantic bounds must accept them too, or a value the
# environment allowed would be refused later under a field name nobody set.
EDGES = {
    "ITICK_PLAN": ("1", "premium", "999999"),
    "ITICK_MAX_CODES": ("1", "1000"),
    "ITICK_BAR_TIME": ("exchange_local", "utc"),
    "TICKLAKE_FETCH_PROCESSES": ("0", "16"),
    "TICKLAKE_SIM_SYMBOLS": ("1", "100000"),
    "TICKLAKE_SIM_SEED": ("0", str(2**64)),
}


def test_every_accepted_value_is_accepted_by_the_resource_too(monkeypatch):
    assert set(EDGES) == set(ENV_FIELDS)
    for variable, values in EDGES.items():
        for value in values:
            monkeypatch.setenv(variable, value)
            resource = ITickResource.from_env()  # pydantic validates the fields here
            assert str(getattr(resource, ENV_FIELDS[variable])) == value
            check_config(resource.config)


def test_a_start_date_before_a_regions_calendar_names_the_month_to_start_from(monkeypatch):
    monkeypatch.setenv("TICKLAKE_REGIONS", "US,SH")
    monkeypatch.setenv("TICKLAKE_START_DATE", "1985-01-01")
    with pytest.raises(ConfigError, match=r"TICKLAKE_START_DATE='1985-01-01' is invalid with region SH in "
                                          r"TICKLAKE_REGIONS.*on or after 1991-01-01, or leave SH out"):
        settings.start_date()
    monkeypatch.setenv("TICKLAKE_START_DATE", "1990-12-03")  # XSHG's first session, but its month starts earlier
    with pytest.raises(ConfigError, match="on or after 1991-01-01"):
        settings.start_date()
    monkeypatch.setenv("TICKLAKE_START_DATE", "1991-01-15")
    assert settings.start_date() == dt.date(1991, 1, 15)
    monkeypatch.setenv("TICKLAKE_REGIONS", "US")
    monkeypatch.setenv("TICKLAKE_START_DATE", "1985-01-01")
    assert settings.start_date() == dt.date(1985, 1, 1)


@pytest.mark.slow
@pytest.mark.parametrize(("env", "expected"), [
    ({"ITICK_MAX_CODES": "abc"}, "ITICK_MAX_CODES='abc' is invalid: must be a whole number from 1 to 1000"),
    ({"TICKLAKE_REGIONS": "SH", "TICKLAKE_START_DATE": "1985-01-01"}, "on or after 1991-01-01"),
], ids=["max-codes", "start-date"])
def test_loading_the_definitions_with_a_bad_value_fails_naming_the_variable(env, expected):
    clean = {k: v for k, v in os.environ.items() if k not in READERS}
    out = subprocess.run([sys.executable, "-c", "import definitions"], cwd=ROOT, env={**clean, **env},
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("ticklake.settings.ConfigError: ")
    assert expected in last
    assert "ValidationError" not in out.stderr
    assert not set(ENV_FIELDS.values()) & set(re.findall(r"\w+", out.stderr))  # not even in the traceback


@pytest.mark.parametrize("url", ["mysql://ticklake:hunter2@db.internal/ticklake", "db.internal:5432",
                                 "postgresql://ticklake:hunter2@db.internal:port/ticklake",
                                 "mysql://db.internal/ticklake?password=hunter2&sslmode=require"])
def test_a_bad_coordination_url_is_refused_at_run_start_never_showing_its_password(monkeypatch, url):
    monkeypatch.setenv("TICKLAKE_COORDINATION_URL", url)
    with pytest.raises(ConfigError, match=r"TICKLAKE_COORDINATION_URL='.*' is invalid: use postgresql://") as err:
        _run_start(ITickResource.from_env)()  # check_config, as the resource's setup runs it
    assert "hunter2" not in str(err.value)
    assert redact_url(url) in str(err.value)


@pytest.mark.parametrize("url", ["postgresql://ticklake@db.internal:5432/ticklake", "postgres://db.internal/ticklake",
                                 "postgresql://ticklake:s3cret@db.internal/ticklake?sslmode=require",
                                 "postgresql:///ticklake?host=/var/run/postgresql"])
def test_postgres_urls_are_accepted_as_the_coordination_url(monkeypatch, url):
    monkeypatch.setenv("TICKLAKE_COORDINATION_URL", f" {url} ")
    assert settings.coordination_url() == url
    monkeypatch.setenv("TICKLAKE_COORDINATION_URL", "")
    assert settings.coordination_url() is None


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://ticklake:s3cret@db:5432/ticklake", "postgresql://ticklake:***@db:5432/ticklake"),
    ("postgresql://ticklake:p%40ss@db/ticklake", "postgresql://ticklake:***@db/ticklake"),
    ("postgresql://ticklake:p@ss@db/ticklake", "postgresql://ticklake:***@db/ticklake"),
    ("postgresql://:s3cret@db/ticklake", "postgresql://:***@db/ticklake"),
    ("postgres://db/ticklake?password=s3cret&sslmode=require", "postgres://db/ticklake?password=***&sslmode=require"),
    ("postgresql:///ticklake?password=s3cret&host=/tmp", "postgresql:///ticklake?password=***&host=/tmp"),
    ("postgresql://ticklake@db/ticklake", "postgresql://ticklake@db/ticklake"),
    ("postgresql:///ticklake?host=/var/run/postgresql", "postgresql:///ticklake?host=/var/run/postgresql"),
    ("postgresql://[db:s3cret/x", "(a URL that cannot be parsed, not shown)"),
])
def test_redact_url_masks_every_password(url, shown):
    assert redact_url(url) == shown
