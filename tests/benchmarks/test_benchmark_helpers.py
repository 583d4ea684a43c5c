"""The benchmark suite's own helpers, the seed-article baseline's storage, and a tiny end-to-end smoke run."""

from __future__ import annotations

import json
import sqlite3

import pytest

from benchmarks import report
from benchmarks.cli import main
from benchmarks.scenarios import baseline
from benchmarks.scenarios.queries import QUERIES
from benchmarks.stats import median, median_record, percentile, quota_minutes, quota_table, theoretical_min_calls


def test_median_and_percentile_match_numpy_conventions():
    assert median([3, 1, 2]) == 2
    assert median([4, 1, 2, 3]) == 2.5
    data = list(range(1, 101))  # 1..100
    assert percentile(data, 50) == pytest.approx(50.5)
    assert percentile(data, 99) == pytest.approx(99.01)
    assert percentile(data, 0) == 1
    assert percentile(data, 100) == 100
    assert percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError, match="nothing"):
        percentile([], 50)


def test_median_record_takes_numeric_medians_and_keeps_the_rest():
    runs = [{"wall_s": 3.0, "calls": 41, "transport": "inprocess", "ok": True},
            {"wall_s": 1.0, "calls": 41, "transport": "inprocess", "ok": False},
            {"wall_s": 2.0, "calls": 43, "transport": "inprocess", "ok": True}]
    assert median_record(runs) == {"wall_s": 2.0, "calls": 41, "transport": "inprocess", "ok": True}


def test_theoretical_minimum_is_batches_times_pages_plus_reference_calls():
    assert theoretical_min_calls(5000, 2520) == 100 * 3 + 1  # 5,000 symbols x 10 years
    assert theoretical_min_calls(5001, 1000) == 101 * 1 + 1
    assert theoretical_min_calls(1, 1, reference_calls=0) == 1
    assert theoretical_min_calls(0, 2520) == 1  # nothing to fetch: only the symbol list


def test_quota_time_and_one_hour_fit_per_plan():
    assert quota_minutes(301, 120) == pytest.approx(301 / 120)
    table = quota_table(400, {"free": 5, "base": 120})
    assert table["free"] == {"calls_per_minute": 5, "quota_minutes": 80.0, "fits_window": False}
    assert table["base"]["fits_window"] is True


def test_seed_article_cache_kline_writes_one_table_per_code(tmp_path, monkeypatch):
    monkeypatch.setattr(baseline, "DB_PATH", str(tmp_path / "market_data.db"))
    bars = [{"t": 1_700_000_000_000 + i, "o": 1.0, "h": 2.0, "l": 0.5, "c": 1.5, "v": 100.0, "tu": 150.0}
            for i in range(5)]
    baseline.cache_kline("AAPL", bars)
    baseline.cache_kline("AAPL", bars[:2])  # the article appends: no key, no upsert
    baseline.cache_kline("MSFT", bars[:1])
    with sqlite3.connect(tmp_path / "market_data.db") as con:
        tables = sorted(r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
        assert tables == ["kline_AAPL", "kline_MSFT"]
        assert con.execute("SELECT count(*) FROM kline_AAPL").fetchone()[0] == 7
        row = con.execute("SELECT * FROM kline_MSFT").fetchone()
    assert row == ("1700000000000", 1.0, 2.0, 0.5, 1.5, 100.0)  # TEXT affinity turns `t` into text


def test_query_registry_entries_are_complete():
    names = [q.name for q in QUERIES]
    assert len(names) == len(set(names))
    assert {"symbol_history", "date_cross_section", "portfolio_year"} <= set(names)
    assert all(q.sql.count("?") >= 1 for q in QUERIES)


@pytest.mark.slow
def test_tiny_scale_runs_every_scenario(tmp_path, capsys):
    out = tmp_path / "tiny.json"
    assert main(["--scale", "tiny", "--runs", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["scenarios"]) == {"backfill", "nightly", "queries", "baseline", "lakehouse", "golden",
                                        "deliveries"}
    assert result["scenarios"]["deliveries"]["cases"]["parquet"]["rows_per_s_best"] > 0
    golden = result["scenarios"]["golden"]
    assert golden["goal"]["input_rows"] > 0
    assert [c["sources"] for c in golden["growth_with_sources"]] == [1, 2, 3]
    backfill = result["scenarios"]["backfill"]
    for transport in ("inprocess", "loopback"):
        m = backfill[transport]["median"]
        assert m["bars"] > 0
        assert m["calls"] == m["min_calls"]
        assert m["server_429"] == 0
    assert result["scenarios"]["nightly"]["loopback+quota:base"]["median"]["server_429"] == 0
    assert result["scenarios"]["baseline"]["comparison"]["same_bars"] is True
    queries = result["scenarios"]["queries"]["median"]["queries"]
    assert all(q["p99_ms"] > 0 for q in queries.values())
    assert {t["status"] for t in result["targets"]} <= {"PASS", "MISS", "-"}
    printed = capsys.readouterr().out
    assert "Targets (issue #3)" in printed
    assert report.render(result).splitlines()[0] in printed
