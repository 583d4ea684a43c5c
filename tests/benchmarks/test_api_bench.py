"""The read API benchmark at a tiny scale: a real `ticklake serve`, the load generator in its own process, every
figure in the JSON. No speed is asserted here (the goal's verdict is in the JSON)."""

from __future__ import annotations

import json

import pytest

from benchmarks import api as bench
from tests.services import require


def test_the_request_mix_is_a_zipf_popular_symbol_year_with_three_fields():
    paths = bench.paths(100, "2023-06-28", "2024-06-28", 2000, seed=1)
    assert paths == bench.paths(100, "2023-06-28", "2024-06-28", 2000, seed=1)  # seeded
    assert all(p.count("fields=trade_date,close,volume") == 1 and "start=2023-06-28" in p for p in paths)
    counts = sorted((paths.count(p) for p in set(paths)), reverse=True)
    assert counts[0] > 10 * counts[len(counts) // 2]  # a few symbols are asked for most
    steps = [{"rate": 100, "saturated": False, "p99_ms": 20.0, "statuses": {"200": 5}},
             {"rate": 250, "saturated": False, "p99_ms": 60.0, "statuses": {"200": 5}},
             {"rate": 500, "saturated": True, "p99_ms": 10.0, "statuses": {"200": 5}}]
    assert bench.best_rate(steps) == 100


@pytest.mark.slow
def test_tiny_api_bench_json_has_every_figure(tmp_path, capsys):
    require("Redis", "127.0.0.1", 6379)
    out = tmp_path / "api.json"
    assert bench.main(["--symbols", "20", "--sessions", "30", "--rates", "10,30", "--duration", "1",
                       "--workers", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["lake"]["rows"] == 20 * 30
    assert set(result["variants"]) == {"cache_off", "redis_cache"}
    for name, variant in result["variants"].items():
        assert [s["rate"] for s in variant["steps"]] == [10, 30]
        for step in variant["steps"]:
            assert step["sent"] + step["unsent"] == int(step["rate"])
            assert step["p50_ms"] <= step["p99_ms"] <= step["max_ms"]
            assert set(step["statuses"]) == {"200"}
            assert step["server_cpu_s"] >= 0
            assert step["server_side"]["audited"] == step["sent"]  # every answer audited, with its latency
            assert step["server_side"]["p99_ms"] <= step["p99_ms"] + 1
        if name == "redis_cache":
            assert variant["warm_up"]["requests"] > 0
            assert variant["steps"][-1]["hit_ratio"] == 1.0
        else:
            assert variant["steps"][-1]["cache"] == {"off": variant["steps"][-1]["sent"]}
    assert result["goal"]["verdict"] in {"PASS", "MISS"}
    assert "uptime" in result["machine_before"]
    assert "highest rate with p99" in capsys.readouterr().out
