"""`python3 dev.py ui` starts the webserver and the daemon without a deprecation warning (issue 20, item 7): not
Dagster's SupersessionWarning for `dagster dev`, and no warning of the project's own making."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dev_py_ui_starts_without_warnings(tmp_path):
    port = _free_port()
    log = tmp_path / "ui.log"
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster"), "TICKLAKE_HOME": str(tmp_path / "home"),
           "ITICK_TOKEN": "", "ITICK_BASE_URL": ""}
    env.pop("PYTHONWARNINGS", None)  # what a user gets: Python's default filters
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "dev.py", "ui", "-p", str(port)], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, up = time.monotonic() + 120, False
        while time.monotonic() < deadline and proc.poll() is None and not up:
            try:
                up = urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2).status == 200
            except OSError:
                time.sleep(1)
        time.sleep(5)  # the daemon and both code servers have loaded the definitions by now
        text = log.read_text()
        assert up, text[-3000:]
        assert "daemon" in text.lower()  # the daemon started too
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)  # dev.py stops its webserver and daemon
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    text = log.read_text()
    assert "Warning" not in text, text[-3000:]
    assert "dg dev" not in text
