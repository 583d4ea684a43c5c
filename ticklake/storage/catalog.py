"""Where the lake's catalog and data files live (TICKLAKE_CATALOG, TICKLAKE_STORAGE_URL), and how to attach it.

The lake is one DuckLake: a SQL catalog (tables, snapshots, which Parquet files hold which rows) plus Parquet data
files. Two catalogs are supported, chosen for who must read while the nightly run commits:

- embedded default, `sqlite:<TICKLAKE_HOME>/catalog.sqlite`: no service needed. The file is created in SQLite's
  WAL journal mode, in which readers never block the writer nor the writer readers: an analyst holding a session
  open for minutes sees one snapshot while the run commits beside it (in the default rollback journal the writer's
  COMMIT failed after ~5 s with "database is locked"). A DuckDB-file catalog is refused: DuckDB lets no writer in
  while any other process has the file attached, read-only included.
- production, `postgres:<libpq conninfo>`: every worker and reader on any machine; PostgreSQL's MVCC gives each
  transaction its snapshot. The password is never printed (`describe()`).

Data files go under `TICKLAKE_HOME/lake/`, or `s3://bucket/prefix/lake/` when TICKLAKE_STORAGE_URL is set, through
DuckDB's httpfs with a secret built from the standard AWS variables (or the credential chain).
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

import duckdb

from ticklake.storage import extensions
from ticklake.storage.object_store import retry_attempts
from ticklake.urls import redact_url, url_passwords

ALIAS = "lake"  # the name the lake is attached under, in ticklake's connections and in the docs' examples
SCHEMA_TABLE = "ticklake_schema"  # the fingerprint of the DDL the lake was last brought to (committed last)
CATALOG_FILE = "catalog.sqlite"
DATA_DIR = "lake"
CATALOG_VARIABLE = "TICKLAKE_CATALOG"


class CatalogError(RuntimeError):
    """The catalog could not be opened or used; the message names TICKLAKE_CATALOG (never its password)."""


@dataclass(frozen=True)
class Catalog:
    kind: Literal["sqlite", "postgres"]
    target: str  # the SQLite file, or the libpq conninfo (which may hold a password: see `describe`)
    data_path: str  # a local directory or an s3:// URL, ending in "/"

    @classmethod
    def from_settings(cls, home: Path, catalog: str | None = None, storage_url: str | None = None) -> Catalog:
        """The catalog TICKLAKE_CATALOG names (default: the SQLite file under `home`) and the data path that
        TICKLAKE_STORAGE_URL names (default: `home/lake/`)."""
        data = f"{storage_url.rstrip('/')}/{DATA_DIR}/" if storage_url else f"{Path(home) / DATA_DIR}/"
        if not catalog:
            return cls("sqlite", str(Path(home) / CATALOG_FILE), data)
        kind, _, target = catalog.partition(":")
        if kind == "sqlite" and target:
            return cls("sqlite", str(Path(target).expanduser().resolve()), data)
        if kind in ("postgres", "postgresql") and target:
            return cls("postgres", target.strip(), data)
        shown = describe_target(catalog)
        if kind in ("duckdb", "ducklake") or catalog.endswith((".duckdb", ".ducklake")):
            raise CatalogError(f"{CATALOG_VARIABLE}={shown!r} is refused: a DuckDB-file catalog admits no writer while "
                               "any other process has it attached (an analyst's read-only session blocks the nightly "
                               "run); use sqlite:<file> (the default) or postgres:<libpq conninfo>")
        raise CatalogError(f"{CATALOG_VARIABLE}={shown!r} is invalid: use sqlite:<file> or postgres:<libpq conninfo> "
                           "(e.g. postgres:host=127.0.0.1 dbname=ticklake user=ticklake), or unset it for the "
                           "embedded default")

    @property
    def is_remote(self) -> bool:
        return self.data_path.startswith("s3://")

    def describe(self) -> str:
        """TICKLAKE_CATALOG as a message may show it: the password, if any, is ***."""
        return f"{self.kind}:{describe_target(self.target)}"

    def extensions(self) -> tuple[str, ...]:
        """The DuckDB extensions `attach` needs: open the connection with `extensions.connect(preload=...)` of
        these to load them without DuckDB's per-LOAD signature check (`ticklake.storage.extensions` says why)."""
        names = ("ducklake", "sqlite_scanner" if self.kind == "sqlite" else "postgres_scanner")
        if self.is_remote:
            names += ("httpfs",) if os.environ.get("AWS_ACCESS_KEY_ID") else ("httpfs", "aws")
        return names

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A new in-memory DuckDB connection with what `attach` needs already loaded (nothing attached yet)."""
        return extensions.connect(preload=self.extensions())

    def attach(self, con: duckdb.DuckDBPyConnection, *, read_only: bool = False, alias: str = ALIAS) -> None:
        """Attach the lake to `con` as `alias` and make it the default catalog (`FROM klines_daily` reads it)."""
        extensions.load(con, *self.extensions())
        if self.is_remote:
            configure_s3(con)
        if self.kind == "sqlite":
            self._prepare_sqlite(read_only)
        else:
            con.execute("SET pg_connection_limit = 8")  # a worker's threads share a few catalog connections
        # No data inlining: every row lives in a Parquet file the catalog lists, so tools that read the files
        # directly (`python -m ticklake.sql --files`) see every row, not only those of commits over 10 rows.
        options = [f"DATA_PATH {_literal(self.data_path)}"] + (["READ_ONLY"] if read_only else
                                                               ["DATA_INLINING_ROW_LIMIT 0"])
        try:
            con.execute(f"ATTACH {_literal(f'ducklake:{self.kind}:{self.target}')} AS {alias} ({', '.join(options)})")
        except duckdb.Error as exc:
            hint = ("the catalog file and the data are under TICKLAKE_HOME unless TICKLAKE_CATALOG says otherwise: "
                    "check that its filesystem is writable and has free space" if self.kind == "sqlite" else
                    "check that the database is up, reachable from here, and that the user may connect to it")
            raise CatalogError(f"could not open the lake catalog {CATALOG_VARIABLE}={self.describe()} (data at "
                               f"{self.data_path}): {self.scrub(str(exc))}; {hint}") from None
        con.execute(f"USE {alias}")

    def scrub(self, text: str) -> str:
        """`text` with the catalog's password taken out (drivers quote their connection string in errors)."""
        for secret in catalog_passwords(self.target):
            text = text.replace(secret, "***")
        return text

    def _prepare_sqlite(self, read_only: bool) -> None:
        path = Path(self.target)
        if read_only:
            if not path.exists():
                raise CatalogError(f"no lake at {path} yet ({CATALOG_VARIABLE}={self.describe()}): run the pipeline "
                                   "first (`python3 dev.py demo`), or point TICKLAKE_HOME at the home that holds it")
            return
        if not self.is_remote:
            Path(self.data_path).mkdir(parents=True, exist_ok=True)
        _ensure_wal(path)


_PREPARED: set[Path] = set()
_PREPARED_LOCK = threading.Lock()


def _ensure_wal(path: Path) -> None:
    """Put the SQLite catalog in WAL mode, once per process and before DuckDB opens it here.

    Only then: POSIX file locks belong to the process, so closing any descriptor of the file (Python's own sqlite3,
    even a plain open()) would drop the locks DuckDB's SQLite holds on it, and the next catalog query fails with
    "disk I/O error". The journal mode is read from the header (bytes 18-19 are 2 in WAL mode) before that."""
    path = path.resolve()
    with _PREPARED_LOCK:
        if path in _PREPARED:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            header = path.read_bytes()[:20] if path.exists() else b""
            if len(header) < 20 or header[18:20] != b"\x02\x02":
                with contextlib.closing(sqlite3.connect(path, timeout=30)) as db:
                    db.execute("PRAGMA journal_mode=WAL")
        except (OSError, sqlite3.Error) as exc:
            raise CatalogError(f"could not open the lake catalog {path} ({CATALOG_VARIABLE}, TICKLAKE_HOME): "
                               f"{exc}") from None
        _PREPARED.add(path)


_PG_PASSWORD = re.compile(r"(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)")


def describe_target(target: str) -> str:
    """A conninfo or URL without its password."""
    if "://" in target:
        return redact_url(target)
    return _PG_PASSWORD.sub(lambda m: f"{m.group(1)}***", target)


def catalog_passwords(target: str) -> list[str]:
    found = url_passwords(target) if "://" in target else []
    for match in _PG_PASSWORD.finditer(target):
        value = match.group(2)
        found += [value, value.strip("'")]
    return [v for v in found if len(v) >= 3]


def configure_s3(con: duckdb.DuckDBPyConnection) -> None:
    """An httpfs secret from the standard AWS variables (or the credential chain when no key is set); retries of
    5xx and slow-down answers as TICKLAKE_S3_MAX_ATTEMPTS says. Secrets live in this connection's memory only."""
    env = os.environ
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
    options = {"TYPE": "s3", "REGION": region}
    if env.get("AWS_ACCESS_KEY_ID"):
        options |= {"KEY_ID": env["AWS_ACCESS_KEY_ID"], "SECRET": env.get("AWS_SECRET_ACCESS_KEY", "")}
        if env.get("AWS_SESSION_TOKEN"):
            options["SESSION_TOKEN"] = env["AWS_SESSION_TOKEN"]
    else:
        extensions.load(con, "aws")
        options["PROVIDER"] = "credential_chain"
    if endpoint:
        parsed = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
        options |= {"ENDPOINT": parsed.netloc, "USE_SSL": "true" if parsed.scheme == "https" else "false",
                    "URL_STYLE": "path"}
    body = ", ".join(f"{k} {v if k in ('TYPE', 'PROVIDER', 'USE_SSL') else _literal(v)}" for k, v in options.items())
    con.execute(f"CREATE OR REPLACE SECRET ticklake_s3 ({body})")
    attempts = _s3_attempts()
    con.execute(f"SET http_retries = {max(attempts - 1, 0)}")
    con.execute("SET http_retry_wait_ms = 200")
    con.execute("SET http_retry_backoff = 2")


def _s3_attempts() -> int:
    try:
        return retry_attempts()
    except ValueError as exc:
        raise CatalogError(str(exc)) from None


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
