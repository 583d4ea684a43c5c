"""The write modes the dictionary declares, pure part (no I/O): a replace carries the lineage of unchanged rows
forward and counts what changed; intervals open, close and reopen, never losing a version; a snapshot upsert
replaces only the keys it brings."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from ticklake.dictionary import KLINES_DAILY, Dataset, Field
from ticklake.dictionary.fields import LINEAGE, REGION, SYMBOL, VALID_FROM, VALID_TO
from ticklake.storage.write_modes import carry_forward_lineage, contents, merge_intervals, upsert

RUN = pd.Timestamp("2024-06-28 23:00", tz="UTC").as_unit("ms")

HISTORY = Dataset(
    name="test_history", description="a test history", domain="reference_data",
    fields=(REGION, SYMBOL, Field("name", "string", "name", nullable=True), VALID_FROM, VALID_TO, *LINEAGE),
    key=("region", "symbol", "valid_from"), write_mode="intervals", in_lake=True,
)
SNAPSHOT = Dataset(
    name="test_snapshot", description="a test snapshot", domain="fundamentals",
    fields=(REGION, SYMBOL, Field("as_of", "date", "day"), Field("value", "float64", "v"), *LINEAGE),
    key=("region", "symbol", "as_of"), write_mode="snapshot", date_column="as_of",
)


def _bars(values: dict[str, float], ingested: str) -> pd.DataFrame:
    n = len(values)
    return pd.DataFrame({
        "region": pd.array(["US"] * n, dtype="string"),
        "symbol": pd.array(list(values), dtype="string"),
        "trade_date": pd.Series([pd.Timestamp("2024-01-02")] * n).astype("datetime64[ms]"),
        "open": list(values.values()), "high": list(values.values()), "low": list(values.values()),
        "close": list(values.values()), "volume": [1.0] * n, "turnover": [1.0] * n,
        "bar_ts": pd.Series([pd.Timestamp("2024-01-02 21:00", tz="UTC")] * n).astype("datetime64[ms, UTC]"),
        "source": pd.array(["itick"] * n, dtype="string"),
        "rule": pd.array(["single_source"] * n, dtype="string"),
        "sources": pd.array(["itick"] * n, dtype="string"),
        "max_rel_diff": [float("nan")] * n,
        "ingested_at": pd.Series([pd.Timestamp(ingested, tz="UTC")] * n).astype("datetime64[ms, UTC]"),
        "run_id": pd.array([f"run-{ingested}"] * n, dtype="string"),
    })


def test_carry_forward_keeps_lineage_of_unchanged_rows_and_flags_restatements():
    old = _bars({"A": 1.0, "B": 2.0, "C": 3.0}, "2024-01-03")
    new = _bars({"A": 1.0, "B": 2.5, "D": 4.0}, "2024-01-04")
    out, diff = carry_forward_lineage(new, old, KLINES_DAILY)
    assert diff == {"added": 1, "changed": 1, "removed": 1, "unchanged": 1}
    lineage = dict(zip(out["symbol"], out["run_id"], strict=True))
    assert lineage == {"A": "run-2024-01-03", "B": "run-2024-01-04", "D": "run-2024-01-04"}
    assert out.loc[out["symbol"] == "A", "ingested_at"].iloc[0] == pd.Timestamp("2024-01-03", tz="UTC")


def test_carry_forward_of_identical_data_is_a_no_op():
    old = _bars({"A": 1.0, "B": 2.0}, "2024-01-03")
    out, diff = carry_forward_lineage(_bars({"A": 1.0, "B": 2.0}, "2024-01-09"), old, KLINES_DAILY)
    pd.testing.assert_frame_equal(out.reset_index(drop=True), old.reset_index(drop=True))
    assert diff["unchanged"] == 2
    assert diff["changed"] == diff["added"] == diff["removed"] == 0


def _master(rows: list[tuple[str, str | None]]) -> pd.DataFrame:
    return pd.DataFrame({"region": pd.array(["US"] * len(rows), dtype="string"),
                         "symbol": pd.array([s for s, _ in rows], dtype="string"),
                         "name": pd.array([n for _, n in rows], dtype="string"),
                         "source": pd.array(["itick"] * len(rows), dtype="string"),
                         "ingested_at": [RUN] * len(rows), "run_id": pd.array(["r"] * len(rows), dtype="string")})


def _day(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def _versions(frame: pd.DataFrame) -> list[tuple]:
    out = frame.sort_values(["symbol", "valid_from"])
    return [(s, n, f.date().isoformat(), None if pd.isna(t) else t.date().isoformat())
            for s, n, f, t in out[["symbol", "name", "valid_from", "valid_to"]].itertuples(index=False)]


def test_intervals_open_close_and_reopen_and_keep_every_version():
    first, diff = merge_intervals(None, _master([("A", "Alpha"), ("B", "Beta")]), _day("2024-01-02"), HISTORY)
    assert diff["opened"] == 2
    second, diff = merge_intervals(first, _master([("A", "Alpha Inc"), ("C", "Gamma")]), _day("2024-02-01"), HISTORY)
    assert diff == {"opened": 2, "closed": 2, "unchanged": 0, "kept": 0}
    third, _ = merge_intervals(second, _master([("A", "Alpha Inc"), ("B", "Beta"), ("C", "Gamma")]),
                               _day("2024-03-01"), HISTORY)
    assert _versions(third) == [
        ("A", "Alpha", "2024-01-02", "2024-02-01"), ("A", "Alpha Inc", "2024-02-01", None),
        ("B", "Beta", "2024-01-02", "2024-02-01"), ("B", "Beta", "2024-03-01", None),  # B came back
        ("C", "Gamma", "2024-02-01", None)]
    again, diff = merge_intervals(third, _master([("A", "Alpha Inc"), ("B", "Beta"), ("C", "Gamma")]),
                                  _day("2024-03-01"), HISTORY)
    assert _versions(again) == _versions(third)
    assert diff["opened"] == diff["closed"] == 0


def test_a_partial_observation_closes_nothing_it_does_not_mention():
    first, _ = merge_intervals(None, _master([("A", "Alpha"), ("B", "Beta")]), _day("2024-01-02"), HISTORY)
    after, diff = merge_intervals(first, _master([("A", "Alpha")]), _day("2024-01-03"), HISTORY, complete=False)
    assert _versions(after) == _versions(first)
    assert diff["closed"] == 0


def test_intervals_refuse_out_of_order_and_duplicate_observations():
    first, _ = merge_intervals(None, _master([("A", "Alpha")]), _day("2024-02-01"), HISTORY)
    changed, _ = merge_intervals(first, _master([("A", "Alpha 2")]), _day("2024-03-01"), HISTORY)
    with pytest.raises(ValueError, match="older than the stored history"):
        merge_intervals(changed, _master([("A", "Alpha")]), _day("2024-02-15"), HISTORY)
    with pytest.raises(ValueError, match="lists some entities twice"):
        merge_intervals(None, _master([("A", "x"), ("A", "y")]), _day("2024-02-01"), HISTORY)
    with pytest.raises(ValueError, match="needs the observation's as_of"):
        contents(HISTORY, None, _master([("A", "x")]))


def _snap(rows: list[tuple[str, str, float]], run: str = "r1") -> pd.DataFrame:
    return pd.DataFrame({"region": pd.array(["US"] * len(rows), dtype="string"),
                         "symbol": pd.array([s for s, _, _ in rows], dtype="string"),
                         "as_of": pd.to_datetime([d for _, d, _ in rows]).astype("datetime64[ms]"),
                         "value": [v for _, _, v in rows],
                         "source": pd.array(["itick"] * len(rows), dtype="string"),
                         "ingested_at": [RUN] * len(rows), "run_id": pd.array([run] * len(rows), dtype="string")})


def test_a_snapshot_upsert_replaces_only_the_same_keys_and_keeps_unchanged_lineage():
    stored = _snap([("A", "2024-06-27", 1.0), ("B", "2024-06-27", 2.0), ("A", "2024-06-28", 3.0)])
    merged, diff = upsert(stored, _snap([("A", "2024-06-28", 3.0), ("B", "2024-06-28", 5.0)], run="r2"), SNAPSHOT)
    assert diff == {"added": 1, "changed": 0, "removed": 0, "unchanged": 1, "kept": 2}
    by_key = {(s, d.date().isoformat()): (v, r) for s, d, v, r in
              merged[["symbol", "as_of", "value", "run_id"]].itertuples(index=False)}
    assert by_key == {("A", "2024-06-27"): (1.0, "r1"), ("B", "2024-06-27"): (2.0, "r1"),
                      ("A", "2024-06-28"): (3.0, "r1"), ("B", "2024-06-28"): (5.0, "r2")}
