"""Runs each scenario run in a fresh interpreter, so peak RSS is per run and no cache survives between runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class RunFailedError(RuntimeError):
    pass


def run_in_subprocess(kind: str, params: dict[str, Any], *, env: dict[str, str] | None = None,
                      timeout_s: float = 3600.0, profile: Path | None = None) -> dict[str, Any]:
    """`python -m benchmarks.worker` with `params`; returns the JSON record the worker wrote."""
    with tempfile.TemporaryDirectory(prefix="ticklake-bench-run-") as tmp:
        out = Path(tmp) / "result.json"
        payload = {"kind": kind, "params": params, "out": str(out), "profile": str(profile) if profile else None}
        merged = {**os.environ, **(env or {})}
        merged["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), merged.get("PYTHONPATH", "")) if p)
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "benchmarks.worker", json.dumps(payload)], cwd=ROOT,
                              env=merged, capture_output=True, text=True, timeout=timeout_s)
        if proc.returncode != 0 or not out.exists():
            tail = "\n".join((proc.stderr or proc.stdout).splitlines()[-25:])
            raise RunFailedError(f"{kind} run failed (exit {proc.returncode}):\n{tail}")
        record = json.loads(out.read_text())
        record["process_s"] = round(time.perf_counter() - started, 3)  # including interpreter start and imports
        return record
