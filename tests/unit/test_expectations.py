"""The table suites, by what they do to rows: a clean table passes, and each kind of bad row fails the expectation
that guards it, naming the column and the offending value; a bad distribution is a warning, not an error.

Validated as the warehouse_checks job validates (the suite's frame built by DuckDB, checked by Great Expectations),
on DuckDB tables made from frames; the Data Docs are not built.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

import duckdb
import pandas as pd
import pytest

from ticklake.dictionary import DATASETS
from ticklake.quality import expectations
from ticklake.storage.ddl import create_table_sql

NOT_NULL = "expect_column_values_to_not_be_null"
BETWEEN = "expect_column_values_to_be_between"
REGEX = "expect_column_values_to_match_regex"
IN_SET = "expect_column_values_to_be_in_set"
UNIQUE = "expect_compound_columns_to_be_unique"
PAIR = "expect_column_pair_values_a_to_be_greater_than_b"


def _bars(n: int = 4) -> pd.DataFrame:
    return pd.DataFrame({
        "region": ["US"] * n, "symbol": [f"S{i}" for i in range(n)],
        "trade_date": [pd.Timestamp("2024-01-02")] * n,
        "open": [10.0] * n, "high": [11.0] * n, "low": [9.0] * n, "close": [10.5] * n,
        "volume": [100.0] * n, "turnover": [1000.0] * n,
        "bar_ts": [pd.Timestamp("2024-01-02 21:00", tz="UTC")] * n,
        "rule": ["single_source"] * n, "sources": ["itick"] * n, "max_rel_diff": [float("nan")] * n,
        "source": ["itick"] * n, "ingested_at": [pd.Timestamp("2024-01-03", tz="UTC")] * n, "run_id": ["r"] * n,
    })


def _splits(n: int = 2) -> pd.DataFrame:
    return pd.DataFrame({
        "region": ["US"] * n, "symbol": [f"S{i}" for i in range(n)], "ex_date": [pd.Timestamp("2024-01-02")] * n,
        "action": ["split"] * n, "ratio": ["1:2"] * n, "ratio_from": [1.0] * n, "ratio_to": [2.0] * n,
        "factor": [0.5] * n, "source": ["itick"] * n, "ingested_at": [pd.Timestamp("2024-01-03", tz="UTC")] * n,
        "run_id": ["r"] * n,
    })


@pytest.fixture(scope="module")
def gx_context(tmp_path_factory):
    """One Great Expectations project for the module: each suite's expectations are rebuilt on every validation."""
    return expectations.context(tmp_path_factory.mktemp("home"))


@pytest.fixture
def validate(gx_context):
    def run(table: str, rows: pd.DataFrame, **others: pd.DataFrame) -> expectations.SuiteResult:
        """`table`'s suite over a DuckDB holding `rows` (and empty tables for the ones it joins, unless given).
        The tables hold what DuckDB's constraints would refuse: the suite is what must catch it."""
        con = duckdb.connect()
        for name, frame in {"corporate_actions": None, **others, table: rows}.items():
            if frame is None:
                con.execute(create_table_sql(DATASETS[name]))
            else:
                con.register("incoming", frame)
                con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM incoming')
                con.unregister("incoming")
        _, result = expectations._validate(gx_context, con, expectations.Suite(table, "expectations"))
        return result

    return run


def _failed(result: expectations.SuiteResult) -> set[tuple[str, str | None]]:
    return {(f.expectation, f.column) for f in result.failures}


def test_clean_bars_pass_every_expectation(validate):
    result = validate("klines_daily", _bars())
    assert result.success, result.failures
    assert result.rows == 4
    assert result.evaluated > 10  # the key, the non-null fields, the bounds, the patterns, the rules


# One bad bar per row, each breaking one declared constraint: (column, value, the expectation that must catch it,
# the column it names). Rows 0..9 of the same table, so each expectation must flag its own row and no other.
BAD_BARS = [
    ("close", None, NOT_NULL, "close"),
    ("region", None, NOT_NULL, "region"),
    ("volume", -1.0, BETWEEN, "volume"),
    ("turnover", -0.5, BETWEEN, "turnover"),
    ("symbol", "S 1", REGEX, "symbol"),
    ("source", "ITICK", REGEX, "source"),
    ("low", 10.2, PAIR, None),  # low above open
    ("high", 10.2, PAIR, None),  # high below close
]


def test_each_bad_bar_fails_the_expectation_that_guards_it_naming_the_value(validate):
    rows = _bars(len(BAD_BARS) + 2).astype(object)
    for i, (column, value, _, _) in enumerate(BAD_BARS):
        rows.at[i, column] = value
    rows.at[len(BAD_BARS) + 1, "symbol"] = rows.at[len(BAD_BARS), "symbol"]  # the key twice
    result = validate("klines_daily", rows)
    assert result.severity == "error"
    assert Counter((f.expectation, f.column) for f in result.failures) == Counter(
        [(e, c) for _, _, e, c in BAD_BARS] + [(UNIQUE, "region, symbol, trade_date, source")])
    by_column = {f.column: f for f in result.failures if f.expectation not in (UNIQUE, PAIR)}
    for column, value, _, _ in BAD_BARS:
        if column in by_column:
            assert by_column[column].observed.startswith(f"1 of {len(rows)} unexpected"), by_column[column]
            if value is not None:  # (a null shows as whatever the frame holds for it)
                assert by_column[column].examples == (str(value),)


def test_a_price_of_zero_breaks_its_strict_lower_bound(validate):
    rows = _bars().assign(open=[10.0, 0.0, 10.0, 10.0], low=[9.0, 0.0, 9.0, 9.0])
    assert _failed(validate("klines_daily", rows)) == {(BETWEEN, "open"), (BETWEEN, "low")}


def test_a_literal_pattern_is_a_value_set_and_a_value_outside_it_fails(validate):
    assert validate("corporate_actions", _splits()).success
    result = validate("corporate_actions", _splits().assign(action=["split", "dividend"]))
    assert _failed(result) == {(IN_SET, "action")}
    assert result.failures[0].examples == ("dividend",)


def test_an_implausible_daily_return_is_a_warning_and_a_split_day_is_not_one(validate):
    two_days = pd.concat([_bars(), _bars().assign(trade_date=pd.Timestamp("2024-01-03"))], ignore_index=True)
    jump = two_days.assign(close=[10.5] * 5 + [30.0] * 3, high=[11.0] * 5 + [31.0] * 3)  # +186% for three codes
    result = validate("klines_daily", jump)
    assert not result.success
    assert result.severity == "warning"
    assert _failed(result) == {(BETWEEN, "daily_return")}
    splits = _splits(4).iloc[1:].assign(ex_date=pd.Timestamp("2024-01-03"), symbol=["S1", "S2", "S3"])
    assert validate("klines_daily", jump, corporate_actions=splits).success


def test_value_sets_come_from_literal_patterns_only():
    assert expectations.value_set("^split$") == ["split"]
    assert expectations.value_set("^(a|b)$") == ["a", "b"]
    assert expectations.value_set(r"^[A-Z]{3}$") is None
    assert expectations.value_set(None) is None


def test_the_cross_table_suites_exist_and_the_docs_live_under_the_home(tmp_path):
    assert {s.name for s in expectations.suites()} >= {"klines_daily.completeness", "klines_daily.references"}
    assert expectations.docs_index(tmp_path).is_relative_to(tmp_path / "docs" / "great_expectations")


def test_past_its_row_limit_a_table_is_validated_over_its_last_dates_only(validate, monkeypatch):
    monkeypatch.setattr(expectations, "FULL_SCAN_ROWS", 3)
    monkeypatch.setattr(expectations, "SESSIONS", 1)
    days = [_bars().assign(trade_date=pd.Timestamp(dt.date(2024, 1, d))) for d in (2, 3)]
    result = validate("klines_daily", pd.concat(days, ignore_index=True))
    assert result.rows == 4  # only the last trade date of the region, of 8 rows
