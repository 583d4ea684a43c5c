"""The symbol rule: one pattern in the data dictionary, applied by the listing, the client and Pandera alike."""

from __future__ import annotations

import re
import string

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.test_schemas import _bars
from ticklake.dictionary import DATASETS, SYMBOL_MAX_LENGTH, SYMBOL_PATTERN
from ticklake.dictionary.schemas import DataValidationError, validate
from ticklake.dictionary.symbols import invalid_symbols, is_symbol, shown, symbol_problem

# Every code shape in the protocol notes (docs/itick-protocol.md, "Regions, codes and timestamps"), plus share classes.
REAL_CODES = ["700", "9988", "7226", "600519", "000001", "300750", "AAPL", "BRK.B", "BRK-B", "RELIANCE", "MC",
              "EURUSD", "XAUUSD", "BTCUSDT", "SPX", "DJI", "NQ", "GC", "SPY", "700.HK", "A" * SYMBOL_MAX_LENGTH]
HOSTILE = {
    "A,B": "','",
    "X" * 1500: "1500 characters long",
    " AAPL": "whitespace",
    "AAPL\n": "whitespace",  # Python's `$` matches before a trailing newline: the rule must not
    "a/b": "'/'",
    "a&b=c": "'&'",
    "": "empty",
    ".A": "start with a letter or a digit",
    "-A": "start with a letter or a digit",
    "\u00e9t\u00e9": "'\\xe9'",
    "A" * (SYMBOL_MAX_LENGTH + 1): "at most 32",
}
ALPHANUM = string.ascii_letters + string.digits


@pytest.mark.parametrize("code", REAL_CODES)
def test_every_documented_code_shape_is_a_symbol(code):
    assert is_symbol(code)
    assert symbol_problem(code) is None


@pytest.mark.parametrize(("code", "reason"), HOSTILE.items(), ids=[repr(c[:12]) for c in HOSTILE])
def test_hostile_codes_are_refused_with_a_short_printable_reason(code, reason):
    problem = symbol_problem(code)
    assert problem is not None
    assert reason in problem
    assert len(problem) < 80
    assert problem.isprintable()


def test_values_that_are_not_strings_are_refused():
    assert symbol_problem(None) == "no code"
    assert "int" in symbol_problem(700)
    assert invalid_symbols(["AAPL", None, "A,B"]) == [(None, "no code"), ("A,B", "the code contains ','")]


@given(st.text(max_size=60))
def test_rule_and_reason_agree_for_any_text(text):
    assert is_symbol(text) == (symbol_problem(text) is None) == bool(re.fullmatch(SYMBOL_PATTERN, text))
    if not is_symbol(text):
        assert symbol_problem(text).isprintable()


@given(first=st.sampled_from(ALPHANUM), rest=st.text(ALPHANUM + "._-", max_size=SYMBOL_MAX_LENGTH - 1))
def test_every_code_of_the_allowed_shape_passes(first, rest):
    assert is_symbol(first + rest)


@given(st.text(max_size=3000))
def test_shown_is_short_printable_ascii_whatever_the_code(text):
    out = shown(text)
    assert out.isascii()
    assert out.isprintable()
    assert len(out) <= 24 + 30  # the escaped head is cut too; the length note is short


def test_the_dictionary_is_the_one_source_of_the_rule():
    with_symbols = [d for d in DATASETS.values() if "symbol" in d.columns]
    assert {d.name for d in with_symbols} >= {"klines_daily", "securities"}
    for dataset in with_symbols:
        assert dataset.field("symbol").pattern == SYMBOL_PATTERN


def _page(symbols: list[str]) -> pd.DataFrame:
    """A valid page of bars whose codes are `symbols`."""
    return _bars(len(symbols)).assign(symbol=pd.array(symbols, dtype="string"))


@pytest.mark.parametrize("bad", ["A,B", "AAPL\n", "X" * 40, " AAPL"])
@pytest.mark.parametrize("storage", ["pyarrow", "python"])
def test_pandera_refuses_a_stored_symbol_that_breaks_the_rule(bad, storage):
    frame = _page(["AAPL", bad, "BRK.B"])
    frame["symbol"] = frame["symbol"].astype(pd.StringDtype(storage))
    with pytest.raises(DataValidationError, match=re.escape(f"symbol matches {SYMBOL_PATTERN}")) as err:
        validate(frame, DATASETS["klines_daily"])
    assert "1 row(s)" in str(err.value)


def test_pandera_accepts_every_documented_code_shape():
    frame = _page(REAL_CODES)
    assert validate(frame, DATASETS["klines_daily"]) is frame
