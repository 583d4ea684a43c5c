"""The expectation suites are derived from the data dictionary, not written again."""

from __future__ import annotations

from ticklake.dictionary import DATASETS
from ticklake.quality import expectations


def test_value_sets_come_from_literal_patterns_only():
    assert expectations.value_set("^split$") == ["split"]
    assert expectations.value_set("^(a|b)$") == ["a", "b"]
    assert expectations.value_set(r"^[A-Z]{3}$") is None
    assert expectations.value_set(None) is None


def test_table_suite_covers_every_declared_constraint():
    for name in expectations.TABLES:
        dataset = DATASETS[name]
        configs = [e.configuration for e in expectations.table_expectations(dataset)]
        kinds = {(c.type, c.kwargs.get("column")) for c in configs}
        assert configs[0].kwargs["column_list"] == expectations.unique_key(dataset)
        for field in dataset.fields:
            assert (("expect_column_values_to_not_be_null", field.name) in kinds) == (not field.nullable)
            if field.strictly_positive or field.min_value is not None or field.max_value is not None:
                assert ("expect_column_values_to_be_between", field.name) in kinds, (name, field.name)
            if field.pattern:
                assert {("expect_column_values_to_be_in_set", field.name),
                        ("expect_column_values_to_match_regex", field.name)} & kinds, (name, field.name)


def test_every_suite_has_an_asset_and_docs_live_under_the_home(tmp_path):
    assert {s.name for s in expectations.suites()} >= {"klines_daily.completeness", "klines_daily.references"}
    assert expectations.docs_index(tmp_path).is_relative_to(tmp_path / "docs" / "great_expectations")
