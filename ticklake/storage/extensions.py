"""DuckDB extensions from their PyPI wheels: loaded from the installed files, never downloaded at run time.

DuckLake, the SQLite and PostgreSQL catalogs and httpfs (S3) are DuckDB extensions. DuckDB would fetch them from
its extension repository on first use, which a machine without internet cannot reach. Each is published on PyPI
as `duckdb-extension-<name>` for exactly one DuckDB version (pinned together in requirements.lock), holding the
signed binary under `extensions/v<version>/<name>.duckdb_extension`, so LOAD takes that file.

**Signature checks, and why `connect(preload=...)` skips them for the wheels' own files.** On every LOAD DuckDB
verifies the file's RSA signature, which means hashing the whole binary (25-40 MB each): ~100 ms per extension, two
or three per connection, most of a fresh process's `ticklake.connect()`. That check exists to catch a binary
spoofed on its way down from DuckDB's HTTP extension repository. Here nothing is downloaded at run time
(`OFFLINE_CONFIG`): the files come from wheels whose sha256 requirements.lock pins (`--require-hashes`), verified
by pip when they were installed, and they sit in the same site-packages as DuckDB's own binary, which holds the
public keys the check uses and is itself never verified at load: whoever could replace an extension file there
could replace that binary too, so the check adds no protection against them. So `connect(preload=names)` opens the
database with `allow_unsigned_extensions`, LOADs exactly the files `extension_file` finds inside each wheel's own
package (and only if the wheel's RECORD lists that file at that size), then turns `allow_unsigned_extensions`
off before the connection is handed out. DuckDB refuses to turn it back on while the database runs ("Cannot change
allow_unsigned_extensions setting while database is running"), so any later LOAD in that connection, by ticklake
or by an analyst, is signature-checked as usual (`tests/unit/test_lakehouse.py` proves both); `load()` on any
other connection LOADs with DuckDB's check.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
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


@cache
def wheel_file(name: str) -> Path | None:
    """`extension_file(name)` if it sits beside DuckDB's own package (one site-packages) and the installed wheel's
    RECORD lists exactly that file at its current size (the file pip installed from the hash-pinned wheel), else
    None (then only a signature-checked LOAD takes it)."""
    path = extension_file(name)
    package_dir = path.parents[2]  # <site-packages>/duckdb_extension_<name>/extensions/v<version>/<file>
    if package_dir.parent.resolve() != Path(duckdb.__file__).resolve().parents[1]:
        return None
    relative = path.relative_to(package_dir.parent).as_posix()
    record = package_dir.parent / f"{package_dir.name}-{duckdb.__version__}.dist-info" / "RECORD"
    try:
        lines = record.read_text().splitlines()
        size = path.stat().st_size
    except OSError:
        return None
    for line in lines:
        recorded, _, rest = line.partition(",")
        if recorded == relative:
            return path if rest.rpartition(",")[2] == str(size) else None
    return None


def load(con: duckdb.DuckDBPyConnection, *names: str) -> None:
    """LOAD each extension from its wheel file (a no-op for one the connection's database already loaded)."""
    loaded = {r[0] for r in con.execute("SELECT extension_name FROM duckdb_extensions() WHERE loaded").fetchall()}
    for name in names:
        if name not in loaded:
            con.execute(f"LOAD '{extension_file(name)}'")


def connect(database: str = ":memory:", *, read_only: bool = False,
            preload: Iterable[str] = ()) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that never downloads an extension, with the extensions `preload` names loaded from their
    wheels' files without DuckDB's signature check (the module docstring says why that is safe), and no unsigned
    LOAD possible afterwards."""
    names = list(dict.fromkeys(preload))
    trusted = [n for n in names if wheel_file(n) is not None]
    config: dict = dict(OFFLINE_CONFIG)
    if trusted:
        config["allow_unsigned_extensions"] = True
    con = duckdb.connect(database, read_only=read_only, config=config)
    try:
        for name in trusted:
            con.execute(f"LOAD '{wheel_file(name)}'")
        if trusted:
            con.execute("SET allow_unsigned_extensions = false")  # one-way while the database runs
        if untrusted := [n for n in names if n not in trusted]:
            load(con, *untrusted)
    except BaseException:
        con.close()
        raise
    return con
