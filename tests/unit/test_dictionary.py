"""The dictionary is the one source of truth: its declarations are checked, its docs are current, its row rules
mean the same in pandas and SQL, and every stored dataset is an asset with its column schema. (The write modes
it declares: tests/unit/test_write_modes.py.)"""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from ticklake.dictionary import DATASETS, KLINES_DAILY, Dataset, RowRule
from ticklake.dictionary.docs import TABLES_MD, render
from ticklake.dictionary.fields import LINEAGE, REGION
from ticklake.storage.frames import fetch_frame


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
