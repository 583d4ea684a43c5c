#!/usr/bin/env python3
"""One entry point for a fresh machine with only Python 3.11+: set up, then run.

    python3 dev.py demo     # create .venv from requirements.lock, run the nightly job on the simulator
    python3 dev.py test     # same setup, then ruff and the whole test suite
    python3 dev.py bench    # same setup, then the benchmark suite (see benchmarks/README.md)
    python3 dev.py ui       # same setup, then `dagster dev` on the code location in workspace.yaml

Setup is idempotent: the virtualenv is rebuilt only when requirements.lock or pyproject.toml change.
Only the standard library is used here, because nothing else exists yet when it runs.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
LOCK = ROOT / "requirements.lock"
STAMP = VENV / ".ticklake-setup"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")


def _fingerprint() -> str:
    digest = hashlib.sha256()
    for path in (LOCK, ROOT / "pyproject.toml"):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _run(*cmd: str | Path, **env: str) -> None:
    merged = {**os.environ, **env}
    result = subprocess.run([str(c) for c in cmd], cwd=ROOT, env=merged)
    if result.returncode != 0:
        sys.exit(result.returncode)


def setup() -> None:
    """Create .venv and install the locked dependencies plus this project (editable)."""
    if sys.version_info < (3, 11):  # noqa: UP036 - this file runs under whatever python3 the user has
        sys.exit(f"ticklake needs Python 3.11+, this is {sys.version.split()[0]}")
    wanted = _fingerprint()
    if STAMP.exists() and STAMP.read_text() == wanted and PY.exists():
        return
    if VENV.exists() and not PY.exists():
        shutil.rmtree(VENV)
    if not VENV.exists():
        print(f"[setup] creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("[setup] installing locked dependencies (requirements.lock)", flush=True)
    pip = (PY, "-m", "pip", "--disable-pip-version-check", "-q")
    # The lock is a complete, hash-pinned resolution (uv pip compile --universal), so pip must not
    # resolve again: --no-deps installs exactly what is locked; `pip check` proves it is consistent.
    _run(*pip, "install", "--no-deps", "--require-hashes", "-r", LOCK)
    _run(*pip, "check")
    _run(*pip, "install", "--no-deps", "--no-build-isolation", "-e", ROOT)
    STAMP.write_text(wanted)


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in {"setup", "demo", "test", "bench", "ui"}:
        sys.exit(__doc__)
    command, rest = argv[0], argv[1:]
    setup()
    if command == "demo":
        _run(PY, "-m", "ticklake.demo", *rest)
    elif command == "test":
        _run(BIN / "ruff", "check", ".")
        _run(PY, "-m", "pytest", *(rest or ["-n", "2", "-q"]))
    elif command == "bench":
        _run(PY, "-m", "benchmarks", *rest)
    elif command == "ui":
        home = os.environ.get("DAGSTER_HOME") or str(ROOT / "data" / "dagster")
        Path(home).mkdir(parents=True, exist_ok=True)
        _run(BIN / "dagster", "dev", "-w", ROOT / "workspace.yaml", *rest, DAGSTER_HOME=home)


if __name__ == "__main__":
    main(sys.argv[1:])
