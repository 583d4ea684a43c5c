"""The lakehouse benchmark (issue 16) at a tiny scale: it runs end to end and its JSON carries every figure.

No speed is asserted here (targets live in the benchmark's verdicts); this fails when a figure goes missing, a
verdict cannot be computed, or the lake the benchmark builds does not hold the rows it wrote."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from benchmarks import cli, config, report
from benchmarks.scenarios import lakehouse

SHAPES = ("symbol_history", "cross_section")


def test_synthetic_month_matches_the_dictionary_and_walks_on():
    from ticklake.dictionary import KLINES_DAILY

    bars = lakehouse.Bars("US", lakehouse.symbol_codes(3), seed=1)
    days = lakehouse.weekdays(lakehouse.dt.date(2024, 6, 28), 20)
    first = bars.month(days[:10], ingested_at=lakehouse.dt.datetime(2024, 7, 1, tzinfo=lakehouse.dt.UTC), run_id="r")
    second = bars.month(days[10:], ingested_at=lakehouse.dt.datetime(2024, 7, 1, tzinfo=lakehouse.dt.UTC), run_id="r")
    assert first.schema.remove_metadata() == KLINES_DAILY.arrow_schema.remove_metadata()
    assert first.num_rows == 30
    assert all(d.weekday() < 5 for d in days)
    assert first.column("symbol").to_pylist()[:10] == ["S00000"] * 10  # the pipeline's (symbol, date) order
    assert first.column("close").to_pylist() != second.column("close").to_pylist()


@pytest.mark.slow
def test_tiny_lakehouse_json_has_every_figure(tmp_path, monkeypatch, capsys):
    pytest.importorskip("moto")
    tiny = config.SCALES["tiny"]
    smaller = replace(tiny, lake_symbols=20, lake_sessions=63, lake_nightly_sizes=((5, 40), (5, 130)),
                      lake_nights=(10, 40, 6), query_iterations=10, query_warmup=1, lake_s3=_postgres_up())
    monkeypatch.setitem(config.SCALES, "tiny", smaller)
    out = tmp_path / "lakehouse.json"
    assert cli.main(["--scale", "tiny", "--runs", "1", "--only", "lakehouse", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    lh = result["scenarios"]["lakehouse"]
    local = lh["queries"]["local"]
    assert local["rows"] == 20 * 63
    for engine in ("lake", "native"):
        for shape in SHAPES:
            m = local[engine][shape]
            assert 0 < m["p50_ms"] <= m["p99_ms"] <= m["max_ms"]
    assert local["lake"]["symbol_history"]["rows"] == 63
    assert local["lake"]["cross_section"]["rows"] == 20
    fresh = local["fresh_process"]
    assert fresh["rows"] == 63
    assert fresh["attach_and_first_query_ms"] > 0
    assert fresh["import_ms"] > 0
    assert local["bytes"]["lake_data"] > 0
    assert local["bytes"]["one_zstd_parquet_copy"] > 0
    assert local["maintenance"]["files_after"] <= local["maintenance"]["files_before"]
    if smaller.lake_s3:
        assert lh["queries"]["s3-postgres"]["rows"] == 20 * 63
    nightly = lh["nightly"]
    assert [s["lake_rows"] for s in nightly["sizes"]] == [4 * 5 * 40, 4 * 5 * 130]
    assert nightly["largest_vs_smallest"] > 0
    nights = lh["nights"]
    assert nights["nights"] == 6
    assert nights["symbol_p99_last_vs_first"] > 0
    assert nights["recent_p99_last_vs_first"] > 0  # like for like: the same number of sessions read
    assert nights["last_night"]["symbol_history"]["rows"] == 40 + 6  # every night's session landed
    metrics = {t["metric"] for t in result["targets"] if t["scenario"] == "lakehouse"}
    expected = 2 * len(lh["queries"]) + len(lh["queries"]) + 1 + 1 + 1  # shapes, fresh, bytes, nightly, nights
    assert len(metrics) == expected
    assert all(t["status"] in ("PASS", "MISS") for t in result["targets"] if t["scenario"] == "lakehouse")
    printed = capsys.readouterr().out
    assert "6. Lakehouse (issue 16)" in printed
    assert report.render(result).splitlines()[0] in printed


def _postgres_up() -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=2):
            return True
    except OSError:
        return False
