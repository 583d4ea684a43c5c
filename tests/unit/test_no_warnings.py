"""Loading the code location prints no warning: what `dagster dev`, the CLI and every run start would show."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a child process loads the code location

ROOT = Path(__file__).resolve().parents[2]


def test_loading_the_definitions_raises_no_warning_at_all():
    # -W error: any warning, ours or a library's on our behalf (Dagster attributes the `backfill_policy` beta
    # notice to its own decorator, so pytest's per-module filters cannot see it), fails the import.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ITICK_", "TICKLAKE_", "PYTHONWARNINGS"))}
    code = "import definitions; definitions.defs.get_repository_def()"  # resolving the definitions too
    out = subprocess.run([sys.executable, "-W", "error", "-c", code], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stderr == ""
