"""Partial batch answers, pure part: what a batch kline payload says about each requested code."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ticklake.sources.itick.source import reask_requests
from ticklake.sources.itick.wire import (
    BatchAnswer,
    KlineRequest,
    PayloadError,
    bars_to_frame,
    batch_answer,
    merge_answers,
)

NY = "America/New_York"
KW = {"region": "US", "timezone": NY, "convention": "exchange_local"}
BAR = {"t": 1_704_229_200_000, "o": 10.0, "h": 11.0, "l": 9.0, "c": 10.5, "v": 100.0, "tu": 1000.0}


def test_absent_and_null_codes_are_missing_an_empty_list_is_answered():
    answer = batch_answer({"A": [BAR], "B": [], "C": None, "ZZZZ": [BAR]}, ["A", "B", "C", "D"], **KW)
    assert answer.answered == {"A", "B"}
    assert answer.missing == {"C", "D"}
    assert answer.unrequested == {"ZZZZ"}
    assert answer.bars["symbol"].tolist() == ["A"]  # no rows for missing or unrequested codes


def test_a_value_that_is_neither_bars_nor_null_is_a_payload_error_naming_the_code():
    with pytest.raises(PayloadError, match=r"US/B: expected a list of bars or null, got dict"):
        batch_answer({"A": [BAR], "B": {}}, ["A", "B"], **KW)
    # an unrequested code is dropped whatever it holds
    assert batch_answer({"A": [], "X": "junk"}, ["A"], **KW).unrequested == {"X"}


codes = st.sampled_from(["A", "B", "C", "D", "E", "ZZZZ"])
bars = st.lists(st.builds(lambda t: {**BAR, "t": BAR["t"] + t * 86_400_000}, st.integers(0, 30)), max_size=4)


@settings(max_examples=80, deadline=None)
@given(payload=st.dictionaries(codes, st.none() | bars, max_size=6), requested=st.sets(codes, max_size=6))
def test_every_requested_code_is_answered_or_missing_and_only_answered_codes_have_rows(payload, requested):
    answer = batch_answer(payload, requested, **KW)
    assert answer.answered == {c for c in requested if payload.get(c) is not None}
    assert answer.missing == requested - answer.answered
    assert answer.unrequested == set(payload) - requested
    assert set(answer.bars["symbol"]) == {c for c in answer.answered if payload[c]}
    expected = bars_to_frame({c: payload[c] for c in answer.answered}, **KW)
    assert answer.bars.equals(expected)


def _answer(answered=(), missing=(), unrequested=(), rows=()) -> BatchAnswer:
    frame = bars_to_frame({c: [BAR] for c in rows}, **KW)
    return BatchAnswer(frame, frozenset(answered), frozenset(missing), frozenset(unrequested))


def test_merging_a_page_keeps_answers_from_the_second_ask():
    first = _answer(answered={"A", "B"}, missing={"C", "D"}, unrequested={"ZZZZ"}, rows={"A"})
    again = _answer(answered={"C"}, missing={"D"}, unrequested={"ZZZZ", "B"}, rows={"C"})
    page = merge_answers(["A", "B", "C", "D"], [first, again])
    assert page.answered == {"A", "B", "C"}
    assert page.missing == {"D"}
    assert page.unrequested == {"ZZZZ"}  # B was asked for on this page: not unrequested
    assert sorted(page.bars["symbol"]) == ["A", "C"]


@given(st.lists(st.tuples(st.sets(codes), st.sets(codes), st.sets(codes)), max_size=4), st.sets(codes))
def test_merged_sets_partition_the_requested_codes(parts, requested):
    page = merge_answers(requested, [_answer(a, m, u) for a, m, u in parts])
    assert page.answered | page.missing == requested
    assert not page.answered & page.missing
    assert not page.unrequested & requested


DAY = dt.date(2024, 1, 5)


def _request(codes_: str, end: dt.date = DAY, limit: int = 3) -> KlineRequest:
    return KlineRequest(tuple(codes_), end, limit, (end,))


def test_nothing_missing_means_no_second_ask():
    requests = [_request("AB"), _request("CD")]
    assert reask_requests(requests, [_answer({"A", "B"}), _answer({"C", "D"})], max_codes=2) == []


def test_missing_codes_are_asked_again_in_full_batches_with_the_same_window():
    requests = [_request("ABC"), _request("DEF")]
    answers = [_answer({"B"}, {"A", "C"}), _answer({"E"}, {"D", "F"})]
    again = reask_requests(requests, answers, max_codes=3)
    assert again == [_request("ACD"), _request("F")]
    other = reask_requests([_request("AB", dt.date(2024, 1, 4), 2)], [_answer(missing={"A"})], max_codes=3)
    assert other == [_request("A", dt.date(2024, 1, 4), 2)]
