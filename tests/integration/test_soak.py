"""The soak at a small scale: with a fifth of the requests meeting a fault, re-run partitions end with exactly the
rows of a fault-free run. The full soak: `python -m benchmarks.soak --rate 0.1`."""

from __future__ import annotations

import json

import pytest

from benchmarks.soak import main

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_small_soak_loses_no_row(tmp_path):
    out = tmp_path / "soak.json"
    assert main(["--rate", "0.2", "--regions", "US,HK", "--months", "4", "--symbols", "4", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["faults_injected"] > 0  # the faults really met the run
    assert report["rows"] > 0
    assert report["rows_lost"] == 0
    assert report["lake_equal"] is True
    assert report["status_equal"] is True
