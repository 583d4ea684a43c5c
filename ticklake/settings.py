"""Where ticklake keeps its data, and the knobs read from the environment (documented in docs/configuration.md).

Every environment variable is read through the `env_*` helpers below, so a bad value is refused with a
`ConfigError` that names the variable, the value and the rule it breaks, never a parser's traceback.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from ticklake.urls import is_postgres_url, parsed_url, redact_url

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value breaks its rule; the message names the environment variable to fix."""


@dataclass(frozen=True)
class Paths:
    home: Path

    @property
    def lake(self) -> Path:
        """The lake's data files (Parquet, written by DuckLake) in the embedded default."""
        return self.home / "lake"

    @property
    def catalog(self) -> Path:
        """The embedded lake catalog (SQLite in WAL mode): what `ticklake.connect()` and analysts attach."""
        return self.home / "catalog.sqlite"

    @property
    def audit(self) -> Path:
        return self.home / "audit"

    @property
    def state(self) -> Path:
        return self.home / "state"


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    return None if value is None or value.strip() == "" else value


def env_parsed(name: str, default: T, parse: Callable[[str], T], rule: str) -> T:
    """`parse(os.environ[name])`, or `default` when unset or blank; a value that fails is a ConfigError."""
    raw = _raw(name)
    if raw is None:
        return default
    try:
        return parse(raw.strip())
    except (ValueError, TypeError):
        raise ConfigError(f"{name}={raw!r} is invalid: {rule}") from None


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    rule = "must be a whole number" + _bounds(minimum, maximum)

    def parse(text: str) -> int:
        value = int(text)
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise ValueError
        return value

    return env_parsed(name, default, parse, rule)


def env_choice(name: str, default: str, choices: Sequence[str]) -> str:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError
        return text

    return env_parsed(name, default, parse, f"must be one of {', '.join(choices)}")


def env_date(name: str, default: dt.date, *, latest: dt.date | None = None) -> dt.date:
    def parse(text: str) -> dt.date:
        day = dt.date.fromisoformat(text)
        if latest is not None and day > latest:
            raise ValueError
        return day

    rule = "must be a date written YYYY-MM-DD" + (f", not after {latest}" if latest is not None else "")
    return env_parsed(name, default, parse, rule)


def _bounds(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f" from {minimum} to {maximum}"
    if minimum is not None:
        return f" >= {minimum}"
    return f" <= {maximum}" if maximum is not None else ""


def env_fraction(name: str, default: float) -> float:
    def parse(text: str) -> float:
        value = float(text)
        if not 0 <= value <= 1:  # also refuses nan
            raise ValueError
        return value

    return env_parsed(name, default, parse, "must be a fraction from 0 to 1, e.g. 0.05")


URL_RULE = "must be an http:// or https:// URL with a host, e.g. http://127.0.0.1:8765"


def is_http_url(text: str) -> bool:
    """An http(s) URL with a host and, if any, a numeric port: what httpx can send a request to."""
    url = parsed_url(text, ("http", "https"))
    return url is not None and bool(url.hostname)


def env_url(name: str) -> str | None:
    """An http(s) URL (`is_http_url`), or None when unset. Not a secret, so a bad value is shown."""

    def parse(text: str) -> str:
        if not is_http_url(text):
            raise ValueError
        return text

    return env_parsed(name, None, parse, URL_RULE)


def env_secret(name: str) -> str | None:
    """The raw value (never stripped: a stray newline is the holder's mistake to see, not ours to hide), or None
    when unset or empty. It is checked where it is used and never shown in any message."""
    return os.environ.get(name) or None


def storage_url() -> str | None:
    """TICKLAKE_STORAGE_URL: `s3://bucket/prefix` puts the lake's data files
    in S3-compatible object storage (the production profile); unset, they stay under TICKLAKE_HOME."""

    def parse(text: str) -> str:
        parts = urlsplit(text)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError
        return text.rstrip("/")

    return env_parsed("TICKLAKE_STORAGE_URL", None, parse,
                      "use s3://bucket/prefix (credentials and endpoint come from the AWS_* variables), or unset it "
                      "to keep everything under TICKLAKE_HOME")


def catalog() -> str | None:
    """TICKLAKE_CATALOG: where the lake's catalog lives. Unset: `sqlite:<TICKLAKE_HOME>/catalog.sqlite` (embedded);
    `postgres:<libpq conninfo>` in production (ticklake.storage.catalog says why those two). Parsed and checked by
    `ticklake.storage.catalog.Catalog`; returned raw here (it may hold a password, so it is never shown)."""
    raw = _raw("TICKLAKE_CATALOG")
    return raw.strip() if raw else None


def coordination_url() -> str | None:
    """TICKLAKE_COORDINATION_URL: the PostgreSQL database every worker shares for the quota and the lake lock
    (the production profile); unset, both are local files under TICKLAKE_HOME."""

    raw = _raw("TICKLAKE_COORDINATION_URL")
    if raw is None:
        return None
    if not is_postgres_url(raw.strip()):  # the message shows the URL without its password, wherever written
        raise ConfigError(f"TICKLAKE_COORDINATION_URL={redact_url(raw.strip())!r} is invalid: use "
                          "postgresql://user@host:5432/database")
    return raw.strip()


def home() -> Path:
    """TICKLAKE_HOME, default ./data (relative to the working directory); created when missing."""

    def parse(text: str) -> Path:
        path = Path(text).expanduser().resolve()
        if path.exists() and not path.is_dir():
            raise ValueError
        return path

    return env_parsed("TICKLAKE_HOME", Path("data").resolve(), parse,
                      "must be a directory (created when missing), not a file")


def sources_file() -> Path | None:
    """TICKLAKE_SOURCES: the sources file (TOML: the vendor file drops and the golden copy's arbitration policy, read
    by `ticklake.sources.declared`; docs/golden-copy.md). Unset: `$TICKLAKE_HOME/sources.toml` when that file exists
    (where the demo writes one), else iTick is the only source. A path that does not exist or is not a file is
    refused here; the file's contents are checked when it is loaded."""

    def parse(text: str) -> Path:
        path = Path(text).expanduser()
        if not path.is_file():
            raise ValueError
        return path.resolve()

    beside_the_lake = home() / "sources.toml"
    return env_parsed("TICKLAKE_SOURCES", beside_the_lake if beside_the_lake.is_file() else None, parse,
                      "must be the path of an existing file (the TOML sources file, docs/golden-copy.md), or unset "
                      "it to keep iTick the only source")


def toml_key(*parts: str) -> str:
    """A dotted TOML key as a person writes it (`tenants.risk.datasets.klines_daily`; odd parts quoted)."""
    return ".".join(p if re.fullmatch(r"[A-Za-z0-9_-]+", p) else '"' + p.replace("\\", "\\\\").replace('"', '\\"') + '"'
                    for p in parts)


def read_toml_file(path: Path, what: str, error: type[ValueError]) -> dict:
    """A declaration file's TOML document; `error("<what> <path>: <why>")` when it cannot be read, is not UTF-8 or is
    not TOML (the sources and tenants files)."""
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise error(f"{what} {path}: cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise error(f"{what} {path}: is not UTF-8 text") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{what} {path}: is not valid TOML: {exc}") from None


def tenants_file() -> Path | None:
    """TICKLAKE_TENANTS: the tenants file (TOML: each business line's datasets, fields, regions, dates, format, delivery
    target and API access; read by `ticklake.products.tenants`, docs/data-products.md). Unset:
    `$TICKLAKE_HOME/tenants.toml` when that file exists (where the demo writes one), else there are no tenants."""

    def parse(text: str) -> Path:
        path = Path(text).expanduser()
        if not path.is_file():
            raise ValueError
        return path.resolve()

    beside_the_lake = home() / "tenants.toml"
    return env_parsed("TICKLAKE_TENANTS", beside_the_lake if beside_the_lake.is_file() else None, parse,
                      "must be the path of an existing file (the TOML tenants file, docs/data-products.md), or unset "
                      "it for no tenants")


def redis_url() -> str | None:
    """TICKLAKE_REDIS_URL: the Redis the read API shares its rate limits and hot-data cache through
    (redis://host:6379/0); unset, both stay in the serving process. It may hold a password: never shown."""
    raw = _raw("TICKLAKE_REDIS_URL")
    if raw is None:
        return None
    parts = urlsplit(raw.strip())
    if not (parts.scheme in ("redis", "rediss") and parts.hostname) and not (parts.scheme == "unix" and parts.path):
        raise ConfigError("TICKLAKE_REDIS_URL is invalid (its value is not shown: it may hold a password): use "
                          "redis://host:6379/0 (or rediss://, unix:///path), or unset it to keep rate limits and the "
                          "cache in the process")
    return raw.strip()


def regions() -> tuple[str, ...]:
    """TICKLAKE_REGIONS (comma-separated), default US,HK,SH,JP; each must be a known market."""
    from ticklake.markets import DEFAULT_REGIONS, MARKETS  # pandas: not loaded for settings that need none

    def parse(text: str) -> tuple[str, ...]:
        chosen = tuple(dict.fromkeys(r.strip().upper() for r in text.split(",") if r.strip()))
        if not chosen or any(r not in MARKETS for r in chosen):
            raise ValueError
        return chosen

    return env_parsed("TICKLAKE_REGIONS", DEFAULT_REGIONS, parse,
                      f"must be a comma-separated list of {', '.join(sorted(MARKETS))}")


def start_date() -> dt.date:
    """TICKLAKE_START_DATE: the first month partition is the month holding this date (default 2016-01-01).

    Refused when that month starts before a configured region's calendar knows it whole (every partition of
    every region must be fetchable), or lies in the future (there would be no partition to run)."""
    from ticklake import markets

    start = env_date("TICKLAKE_START_DATE", dt.date(2016, 1, 1), latest=dt.date.today())
    month = start.replace(day=1)
    if month >= markets.RECENT_START:  # every calendar knows these: no calendar is built for the common case
        return start
    for region in regions():
        earliest = markets.earliest_start(region)
        if month < earliest:
            raise ConfigError(
                f"TICKLAKE_START_DATE={start.isoformat()!r} is invalid with region {region} in TICKLAKE_REGIONS: "
                f"its month starts before the {markets.market(region).calendar} calendar is known (partitions are "
                f"whole months); set TICKLAKE_START_DATE on or after {earliest}, or leave {region} out"
            )
    return start


def max_missing_share() -> float:
    """TICKLAKE_MAX_MISSING_SHARE: above this share of unanswered codes the answered-codes check is an error."""
    return env_fraction("TICKLAKE_MAX_MISSING_SHARE", 0.05)


def max_rejected_share() -> float:
    """TICKLAKE_MAX_REJECTED_SHARE: above this share of a page's rows breaking a hard rule, the step fails instead
    of quarantining them and writing the rest (a single rejected row is always quarantined)."""
    return env_fraction("TICKLAKE_MAX_REJECTED_SHARE", 0.05)


def max_daily_move() -> float:
    """TICKLAKE_MAX_DAILY_MOVE: a close-to-close move beyond this share, on a day without a recorded split, is a
    warning (never a rejection: real markets move more than 10% in a day)."""
    return env_fraction("TICKLAKE_MAX_DAILY_MOVE", 0.25)


def max_vanished_share() -> float:
    """TICKLAKE_MAX_VANISHED_SHARE: a symbol list missing more than this share of the listed symbols at once is
    taken for a truncated answer, not for delistings: the security master refuses it and keeps what it holds."""
    return env_fraction("TICKLAKE_MAX_VANISHED_SHARE", 0.10)


# Minutes of the plan's quota one region's fundamentals refresh may spend per run by default (see below).
FUNDAMENTALS_DEFAULT_MINUTES = 20


def fundamentals_budget(calls_per_minute: float) -> int:
    """TICKLAKE_FUNDAMENTALS_BUDGET: /stock/info calls one region's fundamentals refresh may make per run.

    Default: FUNDAMENTALS_DEFAULT_MINUTES of the plan's quota (free 100, base 2,400 calls), so a run of every
    default region stays within a night's quiet hours and the rest of the universe waits for the next night."""
    default = max(1, int(calls_per_minute * FUNDAMENTALS_DEFAULT_MINUTES))
    return env_int("TICKLAKE_FUNDAMENTALS_BUDGET", default, minimum=0)


def parse_instant(text: str | None) -> dt.datetime:
    """An ISO 8601 instant with a zone (a run's or a sensor's "now"), or the wall clock for None."""
    if text is None:
        return dt.datetime.now(dt.UTC)
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ConfigError(f"now={text!r} needs a time zone, e.g. 2024-06-28T23:00:00+00:00")
    return value.astimezone(dt.UTC)


def reconcile_sessions() -> int:
    """TICKLAKE_RECONCILE_SESSIONS: how many of a region's last sessions the reconciliation sensor re-fetches."""
    return env_int("TICKLAKE_RECONCILE_SESSIONS", 5, minimum=1)
def freshness_hours() -> int:
    """TICKLAKE_FRESHNESS_HOURS: hours after a region's exchange-local midnight by which the session that midnight
    ends must be stored (the `klines_daily_fresh_<region>` checks)."""
    return env_int("TICKLAKE_FRESHNESS_HOURS", 6, minimum=0, maximum=168)


# How long DuckLake snapshots are kept (lake_maintenance expires older ones; docs/lake-operations.md).
SNAPSHOT_RETENTION_DEFAULT_DAYS = 30


def snapshot_retention_days() -> int:
    """TICKLAKE_SNAPSHOT_RETENTION_DAYS: how far back the lake can be time-travelled (`AT (TIMESTAMP => ...)`,
    `AT (VERSION => n)` with a run's `lake_snapshot_id`); `lake_maintenance` expires snapshots superseded before
    then and deletes the files only they referenced.

    Default 30 days: every run of the last month (a whole monthly partition's nightly rewrites, and four weekly
    maintenance runs) can be re-read exactly as it committed, the window in which a bad run is noticed and
    investigated. Restatement history does not depend on it: the `_history` tables, the `_as_of` macros and the
    `reconciliation_log` ledger are tables, never expired. 0 is refused rather than read as "forever" or "keep
    nothing" (the latter destroys time travel); to keep every snapshot use the maximum, 36500."""
    return env_int("TICKLAKE_SNAPSHOT_RETENTION_DAYS", SNAPSHOT_RETENTION_DEFAULT_DAYS, minimum=1, maximum=36500)


def api_cache_seconds() -> int:
    """TICKLAKE_API_CACHE_SECONDS: how long the read API keeps an encoded answer in its hot-data cache (Redis with
    TICKLAKE_REDIS_URL, else a small in-process LRU), keyed by tenant, lake snapshot, statement and format, so a
    new commit is never hidden by it. Default 300; 0 turns the cache off."""
    return env_int("TICKLAKE_API_CACHE_SECONDS", 300, minimum=0, maximum=86400)


def api_cache_entries() -> int:
    """TICKLAKE_API_CACHE_ENTRIES: answers the in-process cache keeps per serving process (least recently used
    first out; used without TICKLAKE_REDIS_URL). Default 2048; 0 turns it off."""
    return env_int("TICKLAKE_API_CACHE_ENTRIES", 2048, minimum=0, maximum=1_000_000)


def api_snapshot_ms() -> int:
    """TICKLAKE_API_SNAPSHOT_MS: how long the read API reuses the lake's current snapshot id before reading it
    again; a commit becomes visible to the API at most this long after it lands. Default 1000; 0 reads it for
    every request."""
    return env_int("TICKLAKE_API_SNAPSHOT_MS", 1000, minimum=0, maximum=60_000)


def api_audit_flush_ms() -> int:
    """TICKLAKE_API_AUDIT_FLUSH_MS: how often the read API appends its buffered `api_audit` rows to the lake (one
    commit, one snapshot and one small file per flush and serving process; sooner when 5,000 rows are waiting, and
    on shutdown). Default 5000."""
    return env_int("TICKLAKE_API_AUDIT_FLUSH_MS", 5000, minimum=50, maximum=60_000)


def api_threads() -> int:
    """TICKLAKE_API_THREADS: queries one serving process runs at once (each on its own DuckDB cursor, in a thread,
    so the event loop never waits on the lake). Default 8."""
    return env_int("TICKLAKE_API_THREADS", 8, minimum=1, maximum=256)
