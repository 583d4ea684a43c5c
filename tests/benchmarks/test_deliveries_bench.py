"""The deliveries benchmark at a tiny scale: every case side by side, its JSON carries every figure, and the suite's
report shows them. No speed is asserted here."""

from __future__ import annotations

import json

import pytest

from benchmarks import cli, report
from benchmarks import deliveries as bench


def test_the_deliveries_scenario_is_registered_and_runs_by_default():
    assert "deliveries" in cli.SCENARIOS
    assert "deliveries" in cli.DEFAULT_SCENARIOS
    assert "userpath" not in cli.DEFAULT_SCENARIOS


@pytest.mark.slow
def test_tiny_deliveries_bench_json_has_every_figure(tmp_path, capsys):
    out = tmp_path / "deliveries.json"
    assert bench.main(["--symbols", "12", "--sessions", "42", "--runs", "2", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["lake_rows"] == 12 * 42
    assert sorted(result["cases"]) == ["csv", "csv_usd", "jsonl", "parquet"]
    for case in result["cases"].values():
        assert case["rows"] == 12 * 42
        assert case["files"] == result["months"]
        assert 0 < case["first_best_s"] <= case["first_median_s"]
        assert case["rows_per_s_best"] >= case["rows_per_s_median"] > 0
        assert case["unchanged_median_s"] > 0
        assert case["restated_files_written"] == 1
        assert len(case["runs"]["first"]) == 2
    assert "rows/s best" in capsys.readouterr().out
    results = {"scenarios": {"deliveries": result}, "scale": {"name": "tiny"}, "meta": {}}
    rendered = "\n".join(report.render_deliveries(result))
    assert "csv_usd" in rendered
    assert [t["scenario"] for t in report.targets(results)] == ["deliveries"] * 4
