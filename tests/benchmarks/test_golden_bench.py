"""The golden-copy arbitration benchmark at a tiny scale: its frames look like the raw layer, its JSON carries every
figure. No speed is asserted here (the goal's verdict is in the JSON)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import golden as bench
from ticklake.datasets.golden import AGREED, PRIORITY, SINGLE, arbitrate
from ticklake.dictionary.market_data import KLINES_DAILY_BY_SOURCE
from ticklake.storage.frames import from_arrow


def test_synthetic_frame_has_the_raw_layers_columns_and_divergences():
    bars = bench.frame(200, 50, 2)
    empty = from_arrow(KLINES_DAILY_BY_SOURCE, KLINES_DAILY_BY_SOURCE.arrow_schema.empty_table())
    for column in bars.columns:
        assert bars[column].dtype == empty[column].dtype, column
    per_source = bars.groupby("source")["close"].size()
    assert set(per_source.index) == {"itick", "quandl"}
    assert bars["file"].isna().sum() == per_source["itick"]  # the API's rows name no file
    assert bars.loc[bars["source"] == "quandl", "bar_ts"].isna().all()
    result = arbitrate(bars, bench.policy(2), "US")
    keys = len(result.golden)
    assert keys == 200 * 50
    assert 0 < result.counts[SINGLE] < 0.02 * keys  # ~0.5% held by one source
    assert 0 < result.counts[PRIORITY] < 0.01 * keys  # ~0.1% beyond tolerance
    assert result.counts[AGREED] == keys - result.counts[SINGLE] - result.counts[PRIORITY]
    assert (result.exceptions["field"] == "close").sum() == result.counts[PRIORITY]
    assert np.isclose(bench.frame(200, 50, 2)["close"], bars["close"]).all()  # seeded: the same frame every time


@pytest.mark.slow
def test_tiny_golden_bench_json_has_every_figure(tmp_path, capsys):
    out = tmp_path / "golden.json"
    assert bench.main(["--symbols", "30", "--sessions", "10,20", "--sources", "1,2,3", "--runs", "2",
                       "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["goal"]["input_rows"] > 30 * 20
    assert result["goal"]["verdict"] in {"PASS", "MISS"}
    assert [g["sessions"] for g in result["growth_with_sessions"]] == [10, 20]
    assert [g["sources"] for g in result["growth_with_sources"]] == [1, 2, 3]
    assert result["growth_with_sources"][0]["input_rows"] == 30 * 20
    for case in result["cases"]:
        m = case["arbitrate"]
        assert 0 < m["best_s"] <= m["median_s"]
        assert m["bars_per_s_best"] >= m["bars_per_s_median"] > 0
        assert m["peak_rss_delta_mb"] >= 0
        assert len(m["runs_s"]) == 2
        assert case["golden_rows"] == 30 * case["sessions"]
    single = result["single_source_vs_arbitrate"]
    assert single["single_source_best_s"] > 0
    assert single["arbitrate_best_s"] > 0
    assert "bars/s" in capsys.readouterr().out
