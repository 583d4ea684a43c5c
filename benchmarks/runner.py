"""Runs each scenario run in a fresh interpreter, so peak RSS is per run and no cache survives between runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class RunFailedError(RuntimeError):
    pass


def _tail(text: str | None, lines: int = 60) -> str:
    return "\n".join((text or "").splitlines()[-lines:])


def _shutdown(proc: subprocess.Popen, grace_s: float) -> tuple[str, str]:
    """SIGTERM, then SIGKILL after `grace_s`: the worker's handlers stop its own children (servers, dagster dev)
    before it exits, which an immediate SIGKILL would prevent."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.communicate(timeout=grace_s)
    except BaseException:
        proc.kill()
        return proc.communicate()


def run_in_subprocess(kind: str, params: dict[str, Any], *, env: dict[str, str] | None = None,
                      timeout_s: float = 3600.0, profile: Path | None = None, grace_s: float = 60.0
                      ) -> dict[str, Any]:
    """`python -m benchmarks.worker` with `params`; returns the JSON record the worker wrote.

    On a timeout or Ctrl-C the worker gets SIGTERM and `grace_s` to clean up before it is killed."""
    with tempfile.TemporaryDirectory(prefix="ticklake-bench-run-") as tmp:
        out = Path(tmp) / "result.json"
        payload = {"kind": kind, "params": params, "out": str(out), "profile": str(profile) if profile else None}
        merged = {**os.environ, **(env or {})}
        merged["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), merged.get("PYTHONPATH", "")) if p)
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "benchmarks.worker", json.dumps(payload)], cwd=ROOT,
                                env=merged, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            stdout, stderr = proc.communicate(timeout=timeout_s)
        except BaseException as exc:  # timeout or Ctrl-C: let the worker stop what it started
            stdout, stderr = _shutdown(proc, grace_s)
            if isinstance(exc, subprocess.TimeoutExpired):
                raise RunFailedError(f"{kind} run timed out after {timeout_s:.0f}s:\n{_tail(stderr or stdout)}") \
                    from None
            raise
        if proc.returncode != 0 or not out.exists():
            raise RunFailedError(f"{kind} run failed (exit {proc.returncode}):\n{_tail(stderr or stdout)}")
        record = json.loads(out.read_text())
        record["process_s"] = round(time.perf_counter() - started, 3)  # including interpreter start and imports
        return record
