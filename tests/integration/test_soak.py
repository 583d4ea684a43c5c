"""The soak at a small scale: with a fifth of the requests meeting a fault, re-run partitions end with exactly the
rows of a fault-free run. The full soak: `python -m benchmarks.soak --rate 0.1`."""

from __future__ import annotations

import pytest

from benchmarks.soak import main

pytestmark = pytest.mark.integration


def test_a_small_soak_loses_no_row(tmp_path, capsys):
    out = tmp_path / "soak.json"
    assert main(["--rate", "0.2", "--regions", "US,HK", "--months", "4", "--symbols", "4", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "rows lost 0" in printed
    assert "faults injected 0 " not in printed
