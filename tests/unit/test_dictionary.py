"""The dictionary is the one source of truth: its declarations are checked, its docs are current, and the
write modes it declares behave as documented (pure functions, no I/O)."""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import pytest

from ticklake.dictionary import DATASETS, KLINES_DAILY, Dataset, Field, RowRule
from ticklake.dictionary.docs import TABLES_MD, render
from ticklake.dictionary.fields import LINEAGE, REGION, SYMBOL, VALID_FROM, VALID_TO
from ticklake.storage.frames import fetch_frame
from ticklake.storage.write_modes import contents, merge_intervals, upsert

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


def test_the_table_reference_is_rendered_from_the_dictionary():
    assert TABLES_MD.read_text() == render(), "docs/tables.md is stale: run `python -m ticklake.docs --write`"
    for name in DATASETS:
        assert f"### `{name}`" in render()


def test_a_dataset_declaring_unknown_columns_or_modes_is_refused():
    with pytest.raises(ValueError, match="unknown or duplicate columns"):
        Dataset("x", "x", (REGION, *LINEAGE), key=("region", "symbol"))
    with pytest.raises(ValueError, match="write_mode"):
        Dataset("x", "x", (REGION, *LINEAGE), key=("region",), write_mode="append")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="valid_from and valid_to"):
        Dataset("x", "x", (REGION, *LINEAGE), key=("region",), write_mode="intervals")
    with pytest.raises(ValueError, match="`source` field"):
        Dataset("x", "x", (REGION,), key=("region",))


def test_row_rules_mean_the_same_in_pandas_and_in_sql():
    frame = pd.DataFrame({"open": [1.0, 2.0, 1.0, None], "close": [1.5, 1.0, 1.0, 1.0],
                          "low": [0.9, 1.5, 1.2, 1.0], "high": [1.6, 2.5, 1.3, 1.0]})
    for rule in KLINES_DAILY.rules:
        in_sql = fetch_frame(duckdb.sql(f"SELECT {rule.sql} AS ok FROM frame"))["ok"].tolist()
        assert rule.holds(frame).tolist() == in_sql
    assert RowRule("low", "<=", ("open", "close")).holds(frame).tolist() == [True, False, False, True]


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


def test_every_stored_dataset_is_an_asset_grouped_by_its_domain_with_its_column_schema():
    from definitions import defs

    specs = {spec.key.to_user_string(): spec for spec in defs.resolve_all_asset_specs()}
    # history tables are written with their dataset, operations tables (lake_partitions, the ledger) by the pipeline
    for dataset in (d for d in DATASETS.values() if d.in_lake and not d.history_for and d.domain != "operations"):
        spec = specs[dataset.name]
        assert spec.group_name == dataset.domain
        columns = spec.metadata["dagster/column_schema"].columns
        assert [(c.name, c.type, c.description) for c in columns] == [
            (f.name, f.dagster_type, f.doc) for f in dataset.fields]
        assert spec.metadata["dagster/table_name"] == f"lake.{dataset.name}"
