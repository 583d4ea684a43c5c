"""Pandera schemas derived from the data dictionary: each rule fails loudly, naming the rule and the rows."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from ticklake.dictionary import DATASETS, KLINES_DAILY
from ticklake.dictionary.schemas import DataValidationError, dataframe_schema, validate
from ticklake.storage.ddl import create_table_sql

DAY = dt.date(2024, 1, 2)


def _bars(n: int = 3) -> pd.DataFrame:
    return pd.DataFrame({
        "region": pd.array(["US"] * n, dtype="string"),
        "symbol": pd.array([f"S{i}" for i in range(n)], dtype="string"),
        "trade_date": pd.Series([pd.Timestamp(DAY)] * n).astype("datetime64[ms]"),
        "open": [10.0] * n, "high": [11.0] * n, "low": [9.0] * n, "close": [10.5] * n,
        "volume": [100.0] * n, "turnover": [1000.0] * n,
        "bar_ts": pd.Series([pd.Timestamp("2024-01-02 21:00", tz="UTC")] * n).astype("datetime64[ms, UTC]"),
        "source": pd.array(["itick"] * n, dtype="string"),
        "rule": pd.array(["single_source"] * n, dtype="string"),
        "sources": pd.array(["itick"] * n, dtype="string"),
        "max_rel_diff": [float("nan")] * n,
        "ingested_at": pd.Series([pd.Timestamp("2024-01-03", tz="UTC")] * n).astype("datetime64[ms, UTC]"),
        "run_id": pd.array(["r"] * n, dtype="string"),
    })


def test_a_clean_frame_passes():
    frame = _bars()
    pd.testing.assert_frame_equal(validate(frame, KLINES_DAILY, allowed_dates=[DAY]), frame)


@pytest.mark.parametrize(
    ("mutate", "rule"),
    [
        (lambda f: f.assign(volume=[100.0, -1.0, 100.0]), "volume >= 0"),
        (lambda f: f.assign(low=[9.0, 10.8, 9.0]), "low <= min(open, close)"),
        (lambda f: f.assign(high=[11.0, 10.2, 11.0]), "high >= max(open, close)"),
        (lambda f: f.assign(close=[10.5, np.nan, 10.5]), "close"),
        (lambda f: f.assign(open=[10.0, np.inf, 10.0], high=[11.0, np.inf, 11.0]), "open is finite"),
        (lambda f: f.assign(open=[10.0, 0.0, 10.0], low=[9.0, 0.0, 9.0]), "open > 0"),
        (lambda f: f.assign(symbol=pd.array(["S0", "S0", "S2"], dtype="string")),
         "duplicate_key"),
        (lambda f: f.assign(trade_date=pd.Series([pd.Timestamp(DAY), pd.Timestamp("2024-01-06"),
                                                  pd.Timestamp(DAY)]).astype("datetime64[ms]")),
         "trade_date inside the partition"),
    ],
)
def test_each_rule_names_itself_and_the_offending_row(mutate, rule):
    with pytest.raises(DataValidationError) as err:
        validate(mutate(_bars()), KLINES_DAILY, allowed_dates=[DAY])
    message = str(err.value)
    assert rule in message
    assert "US/S1/" in message or "US/S0/" in message
    assert "nothing was written" in message


def test_wrong_types_and_unknown_columns_are_refused():
    with pytest.raises(DataValidationError, match="volume"):
        validate(_bars().assign(volume=["1", "2", "3"]), KLINES_DAILY)
    with pytest.raises(DataValidationError, match="surprise"):
        validate(_bars().assign(surprise=1), KLINES_DAILY)


@pytest.mark.parametrize("dataset", list(DATASETS.values()), ids=list(DATASETS))
def test_schema_and_ddl_come_from_the_same_field_list(dataset):
    schema = dataframe_schema(dataset)
    ddl = create_table_sql(dataset)
    assert list(schema.columns) == dataset.columns
    for field in dataset.fields:
        assert f'"{field.name}" {field.duckdb_type}' in ddl
        assert schema.columns[field.name].nullable == field.nullable
        assert dataset.arrow_schema.field(field.name).type == field.arrow_type


def test_genuine_large_moves_and_zero_volume_are_not_broken_rows():
    """Hard rules reject impossible bars only: +11% in a day (the S&P 500 on 2008-10-13) and a day without trading
    pass; the move is left to a warning check."""
    from ticklake.dictionary.schemas import split_valid

    frame = _bars(3)
    frame.loc[1, ["open", "high", "low", "close"]] = [10.0, 11.7, 9.9, 11.6]  # +11.6% close to close
    frame.loc[2, "volume"] = 0.0
    frame.loc[2, "turnover"] = 0.0
    good, rejected = split_valid(frame, KLINES_DAILY)
    assert len(good) == 3
    assert rejected.rows.empty


def test_broken_rows_are_split_off_with_their_rule_and_values():
    from ticklake.dictionary.schemas import split_valid

    frame = _bars(4)
    frame.loc[1, "low"] = frame.loc[1, "high"] * 2
    frame.loc[3, "volume"] = -5.0
    good, rejected = split_valid(frame, KLINES_DAILY)
    assert good.index.tolist() == [0, 2]
    assert rejected.rules.tolist() == ["low <= min(open, close)", "volume: volume >= 0"]
    assert rejected.reasons.iloc[1] == "volume: volume >= 0: volume=-5.0"
    drifted = frame.drop(columns=["turnover"])  # schema drift: no row of it can be trusted
    with pytest.raises(DataValidationError):
        split_valid(drifted, KLINES_DAILY)
