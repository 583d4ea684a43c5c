"""Symbol lists, pure part: entries without a usable code are refused and described, never stored."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ticklake.dictionary.symbols import is_symbol
from ticklake.sources.itick.wire import listing_frame


def test_listing_keeps_valid_codes_and_describes_every_refusal():
    entries = [
        {"c": "AAPL", "n": "Apple", "t": "stock", "e": "NASDAQ"},
        {"n": "no code at all"},
        {"c": None, "n": "null code"},
        {"c": "", "n": "empty code"},
        {"c": "A,B", "n": "comma"},
        {"c": "Z" * 1500, "n": "huge"},
        {"c": "a/b"},
        {"c": 700},
        "not an object",
        {"c": "BRK.B", "n": "Berkshire B", "e": "NYSE"},
        {"c": "AAPL", "n": "Apple Inc.", "e": "NASDAQ"},  # a repeated code keeps its last entry
    ]
    parsed = listing_frame(entries, "US")
    assert parsed.frame["symbol"].tolist() == ["BRK.B", "AAPL"]
    assert parsed.frame.set_index("symbol").loc["AAPL", "name"] == "Apple Inc."
    assert parsed.frame["security_type"].tolist() == ["stock", "stock"]
    assert parsed.rejected == [
        "entry 1: no code (`c` is absent)",
        "entry 2: no code (`c` is null)",
        "entry 3: empty code",
        "entry 4 'A,B': the code contains ','",
        "entry 5 'ZZZZZZZZZZZZZZZZZZZZZZZZ'... (1500 chars): the code is 1500 characters long (at most 32)",
        "entry 6 'a/b': the code contains '/'",
        "entry 7 <int>: the code is a int, not a string",
        "entry 8: not an object (str)",
    ]


@given(st.lists(st.dictionaries(st.sampled_from("cnte"), st.none() | st.text(max_size=40), max_size=4),
                max_size=12))
def test_listing_never_keeps_a_bad_code_and_accounts_for_every_entry(entries):
    parsed = listing_frame(entries, "HK")
    assert all(is_symbol(c) for c in parsed.frame["symbol"])
    valid = [e["c"] for e in entries if is_symbol(e.get("c"))]
    assert len(parsed.rejected) == len(entries) - len(valid)
    assert set(parsed.frame["symbol"]) == set(valid)
    assert all(reason.isprintable() and len(reason) < 120 for reason in parsed.rejected)
