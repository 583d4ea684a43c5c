"""Splits: the ratio parser (hypothesis), the wire transform, backward adjustment and the split checks. Pure."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticklake.datasets.corporate_actions import split_misses, unrecorded_jumps
from ticklake.datasets.klines_adjusted import adjust, factor_steps
from ticklake.sources.itick.fetchers.corporate_actions import splits_frame
from ticklake.sources.splits import SplitRowError, parse_ratio

ROW = "US /stock/split item 7"
_VALID = re.compile(r"\s*(\d+(\.\d+)?)\s*:\s*(\d+(\.\d+)?)\s*")
sides = st.integers(min_value=1, max_value=10**6)


@given(sides, sides)
def test_from_to_parses_to_its_sides_and_factor_is_from_over_to(ratio_from, ratio_to):
    assert parse_ratio(f"{ratio_from}:{ratio_to}", row=ROW) == (ratio_from, ratio_to)


@given(st.text(max_size=12))
def test_anything_else_is_an_error_naming_the_row(text):
    match = _VALID.fullmatch(text)
    if match and float(match.group(1)) > 0 and float(match.group(3)) > 0:
        return
    with pytest.raises(SplitRowError, match=re.escape(ROW)):
        parse_ratio(text, row=ROW)


@pytest.mark.parametrize("text", ["", " ", "0:1", "1:0", "a:b", "1:2:3", "-1:2", "1:-2", "1/2", "1:", ":2",
                                  "1e3:1", "inf:1", None, 2])
def test_each_malformed_ratio_is_an_error_naming_the_row(text):
    with pytest.raises(SplitRowError, match=re.escape(ROW)):
        parse_ratio(text, row=ROW)


def test_decimal_ratios_with_spaces_around_the_colon_parse():
    assert parse_ratio(" 1.5 : 1 ", row=ROW) == (1.5, 1.0)


def _item(code="AAPL", d=1718856000000, v="1:4", n="Apple"):  # 2024-06-20 00:00 New York
    return {"d": d, "r": "US", "n": n, "c": code, "v": v}


def test_wire_items_to_rows_in_the_exchange_time_zone():
    frame = splits_frame([_item(), _item()], "US")  # the same split listed twice is one
    assert len(frame) == 1
    row = frame.iloc[0]
    assert str(row["ex_date"].date()) == "2024-06-20"  # 04:00 UTC is still the 20th in New York
    assert (row["ratio"], row["ratio_from"], row["ratio_to"], row["factor"]) == ("1:4", 1.0, 4.0, 0.25)


def test_every_bad_wire_row_is_named_and_nothing_is_returned():
    items = [_item(v="1:0"), _item(code="A B"), _item(d=None), "junk", _item(code="X", v="1:2"), _item(code="X")]
    with pytest.raises(SplitRowError) as err:
        splits_frame(items, "US")
    text = str(err.value)
    for part in ("item 0", "'1:0'", "item 1", "whitespace", "item 2", "ex-date", "item 3", "X 2024-06-20: listed "
                 "with different ratios"):
        assert part in text, part


def _bars(closes: list[float], symbol: str = "S") -> pd.DataFrame:
    days = pd.bdate_range("2024-01-01", periods=len(closes)).astype("datetime64[ms]")
    return pd.DataFrame({"region": "US", "symbol": symbol, "trade_date": days, "open": closes, "high": closes,
                         "low": closes, "close": closes, "volume": 100.0, "turnover": 1e4})


def _splits(*rows: tuple[str, str, float]) -> pd.DataFrame:
    return pd.DataFrame({"symbol": [r[0] for r in rows], "ex_date": pd.to_datetime([r[1] for r in rows]),
                         "factor": [r[2] for r in rows]})


def test_backward_adjustment_is_continuous_and_raw_after_the_last_split():
    raw = _bars([100, 101, 50.5, 51, 12.75, 13.0])  # 1:2 on Jan 3, 1:4 on Jan 5
    splits = _splits(("S", "2024-01-03", 0.5), ("S", "2024-01-05", 0.25))
    out = adjust(raw, splits)
    assert out["adjustment_factor"].tolist() == [0.125, 0.125, 0.25, 0.25, 1.0, 1.0]
    assert out["close"].tolist() == [12.5, 12.625, 12.625, 12.75, 12.75, 13.0]
    assert out["volume"].tolist() == [800.0, 800.0, 400.0, 400.0, 100.0, 100.0]
    assert out["turnover"].tolist() == raw["turnover"].tolist()


def test_other_symbols_and_no_splits_are_untouched():
    raw = pd.concat([_bars([10, 5], "S"), _bars([7, 7], "T")], ignore_index=True)
    out = adjust(raw, _splits(("S", "2024-01-02", 0.5)))
    assert out.sort_values(["symbol", "trade_date"])["close"].tolist() == [5.0, 5.0, 7.0, 7.0]
    assert factor_steps(_splits()).empty


def test_a_split_missing_from_the_closes_and_a_jump_without_a_split_are_both_named():
    pairs = pd.DataFrame({"symbol": ["S", "T", "U"], "trade_date": pd.to_datetime(["2024-01-03"] * 3),
                          "close": [50.0, 99.0, 20.0], "prev_close": [100.0, 100.0, 100.0]})
    splits = _splits(("S", "2024-01-03", 0.5), ("T", "2024-01-03", 0.5), ("V", "2024-01-03", 2.0))
    misses, unverified = split_misses(pairs, splits)
    assert len(misses) == 1
    assert misses[0].startswith("T 2024-01-03")
    assert unverified == ["V 2024-01-03"]
    assert [j.split(":")[0] for j in unrecorded_jumps(pairs, splits)] == ["U 2024-01-03"]  # x0.2 = 1:5
