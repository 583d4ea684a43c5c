"""DuckDB extensions from their PyPI wheels: loaded from the installed files, never downloaded at run time.

DuckLake, the SQLite and PostgreSQL catalogs and httpfs (S3) are DuckDB extensions. DuckDB would fetch them from
its extension repository on first use, which a machine without internet cannot reach. Each is published on PyPI
as `duckdb-extension-<name>` for exactly one DuckDB version (pinned together in requirements.lock), holding the
signed binary under `extensions/v<version>/<name>.duckdb_extension`, so LOAD takes that file.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

import duckdb

# Connections never reach the network for an extension: a missing one is an error naming its wheel.
OFFLINE_CONFIG = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}


class ExtensionMissingError(RuntimeError):
    """An extension's wheel is not installed for this DuckDB version."""


@cache
def extension_file(name: str) -> Path:
    """The binary of extension `name` inside its installed wheel, for the running DuckDB version."""
    package = f"duckdb_extension_{name}"
    spec = importlib.util.find_spec(package)
    version = duckdb.__version__
    wheel = f"duckdb-extension-{name.replace('_', '-')}=={version}"
    if spec is None or not spec.submodule_search_locations:
        raise ExtensionMissingError(f"DuckDB extension {name!r} is not installed: install {wheel} "
                                    "(requirements.lock pins it; `python3 dev.py setup` installs the lock)")
    root = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(root.glob(f"extensions/v{version}/{name}.duckdb_extension"))
    if not found:
        shipped = sorted(p.parent.name for p in root.glob(f"extensions/*/{name}.duckdb_extension"))
        raise ExtensionMissingError(f"the installed {package} ships {name} for DuckDB {shipped or 'no version'}, "
                                    f"not for the running DuckDB {version}: install {wheel}")
    return found[0]


def load(con: duckdb.DuckDBPyConnection, *names: str) -> None:
    """LOAD each extension from its wheel file (a no-op for one the connection's database already loaded)."""
    loaded = {r[0] for r in con.execute("SELECT extension_name FROM duckdb_extensions() WHERE loaded").fetchall()}
    for name in names:
        if name not in loaded:
            con.execute(f"LOAD '{extension_file(name)}'")


def connect(database: str = ":memory:", *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that never downloads an extension."""
    return duckdb.connect(database, read_only=read_only, config=dict(OFFLINE_CONFIG))
