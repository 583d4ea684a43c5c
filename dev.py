#!/usr/bin/env python3
"""One entry point for a fresh machine with only Python 3.11+: set up, then run.

    python3 dev.py demo     # create .venv from requirements.lock, run a first night (reference data, klines,
                            # fundamentals, adjusted bars, every check) and a restatement on the simulator
    python3 dev.py test     # same setup, then ruff, lint-imports and the whole test suite (what CI runs)
    python3 dev.py test --fast  # the same without the slow tier (pytest -m "not slow"): ~3.5 min on 2 cores
    python3 dev.py bench    # same setup, then the benchmark suite (see benchmarks/README.md)
    python3 dev.py ui       # same setup, then the Dagster UI and daemon on the code location in workspace.yaml

Test tiers: the `slow` marker (pyproject.toml) is the slow tier: CLIs and code locations in child processes, the
benchmark smoke runs, the demo, the production profile on real services, the soak and fault matrices, whole job
suites and multi-night walks, multi-process writers and real-time quota windows. `test` runs both tiers (CI);
`test --fast` only the fast one, for the edit-test loop. Other arguments go to pytest (`test -k quota`; given any,
they replace the default `-n 2 -q`; `--fast` still adds `-m "not slow"`).

Setup is idempotent: the virtualenv is rebuilt only when requirements.lock or pyproject.toml change.
Only the standard library is used here, because nothing else exists yet when it runs.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
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


def _install_locked(pip: tuple) -> None:
    """pip install the lock, printing progress (a fresh install takes one to two minutes)."""
    total = sum(1 for line in LOCK.read_text().splitlines() if "==" in line and not line.startswith((" ", "#")))
    print(f"[setup] installing {total} locked packages from requirements.lock (1-2 min the first time)",
          flush=True)
    cmd = [str(c) for c in (*pip, "install", "--no-deps", "--require-hashes", "--progress-bar", "off", "-r", LOCK)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    seen, output, step = 0, [], max(1, total // 10)
    for line in proc.stdout:
        output.append(line)
        if line.startswith(("Collecting", "Processing", "Requirement already satisfied")):
            seen += 1
            if seen % step == 0 or seen == total:
                print(f"[setup]   {seen}/{total} packages resolved", flush=True)
    if proc.wait() != 0:
        sys.stdout.write("".join(output[-40:]))
        sys.exit(proc.returncode)
    print("[setup] done", flush=True)


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
    pip = (PY, "-m", "pip", "--disable-pip-version-check")
    # The lock is a complete, hash-pinned resolution (uv pip compile --universal), so pip must not
    # resolve again: --no-deps installs exactly what is locked; `pip check` proves it is consistent.
    _install_locked(pip)
    _run(*pip, "-q", "check")
    _run(*pip, "-q", "install", "--no-deps", "--no-build-isolation", "-e", ROOT)
    STAMP.write_text(wanted)


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in {"setup", "demo", "test", "bench", "ui"}:
        sys.exit(__doc__)
    command, rest = argv[0], argv[1:]
    setup()
    if command == "demo":
        _run(PY, "-m", "demo", *rest)
    elif command == "test":
        fast = "--fast" in rest
        rest = [a for a in rest if a != "--fast"]
        _run(BIN / "ruff", "check", ".")
        _run(BIN / "lint-imports", "--no-cache", PYTHONPATH=str(ROOT))  # layers point one way (pyproject.toml)
        _run(PY, "-m", "pytest", *(rest or ["-n", "2", "-q"]), *(["-m", "not slow"] if fast else []))
    elif command == "bench":
        _run(PY, "-m", "benchmarks", *rest)
    elif command == "ui":
        home = os.environ.get("DAGSTER_HOME") or str(ROOT / "data" / "dagster")
        Path(home).mkdir(parents=True, exist_ok=True)
        if not (Path(home) / "dagster.yaml").exists():  # the embedded default's instance settings
            shutil.copyfile(ROOT / "instance" / "dagster.yaml", Path(home) / "dagster.yaml")
        ui(rest, home)


def ui(webserver_args: list[str], home: str) -> None:
    """What `dagster dev` starts, by the entry points Dagster documents for running them (`dagster dev` itself is
    superseded in Dagster 1.13 and warns "Use 'dg dev' instead"; `dg` is another package, dagster-dg-cli): the
    webserver (`dagster-webserver`, any extra arguments go to it: `-p 3001`) and the daemon (`dagster-daemon run`:
    schedules, sensors, backfills), on the same instance and workspace; and the Data Docs server
    (`python -m ticklake.expectations serve`, on TICKLAKE_DATA_DOCS_URL's port, default 8766). Ctrl-C or SIGTERM stops
    them."""
    env = {**os.environ, "DAGSTER_HOME": home}
    workspace = ["-w", str(ROOT / "workspace.yaml")]
    procs = [subprocess.Popen([str(BIN / "dagster-webserver"), *workspace, *webserver_args], cwd=ROOT, env=env),
             subprocess.Popen([str(BIN / "dagster-daemon"), "run", *workspace], cwd=ROOT, env=env)]
    # the Data Docs over http, where the Great Expectations checks link them (TICKLAKE_DATA_DOCS_URL to move it);
    # not essential: when its port is taken, the UI runs on without it
    from urllib.parse import urlparse

    port = urlparse(os.environ.get("TICKLAKE_DATA_DOCS_URL") or "http://127.0.0.1:8766").port or 8766
    docs = subprocess.Popen([str(PY), "-m", "ticklake.expectations", "serve", "--port", str(port)], cwd=ROOT, env=env)

    def stop(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for p in [*procs, docs]:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)  # each shuts down cleanly on an interrupt (code servers included)
        for p in [*procs, docs]:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
    sys.exit(next((p.returncode for p in procs if p.returncode not in (0, None, -signal.SIGINT)), 0))


if __name__ == "__main__":
    main(sys.argv[1:])
