"""Partial batch answers and hostile codes, end to end: the real client and source against the simulator over
loopback HTTP. Absence is not data: a code the source left out is asked for once more, then reported missing."""

from __future__ import annotations

import datetime as dt
import logging

import pandas as pd
import pytest

from tests.conftest import TOKEN
from ticklake import markets
from ticklake.dictionary.reference_data import SECURITY_MASTER
from ticklake.sources.contract import BarsPage, fetch
from ticklake.sources.itick.client import AuditLog, ITickClient
from ticklake.sources.itick.config import ITickConfig
from ticklake.sources.itick.errors import InvalidSymbolError
from ticklake.sources.itick.source import open_source
from ticklake.sources.queries import ListingsQuery
from ticklake.sources.quota import SlidingWindowLimiter

# 12 codes at 5 per call and 10 sessions per page: 3 calls per page, 2 pages
SESSIONS = markets.sessions("US", dt.date(2024, 6, 3), dt.date(2024, 6, 28))[-20:]
PLANNED_CALLS = 3 * 2


def _source(server, home, **extra):
    config = ITickConfig(base_url=server.url, token=TOKEN, plan="100000", home=str(home), max_codes_per_call=5,
                         max_bars_per_call=10, **{"fetch_processes": 1, **extra})
    return open_source(config)


def _codes(server) -> list[str]:
    return sorted(s.code for s in server.simulator.universe("US"))


def _fetch(server, home, **extra) -> tuple[list[BarsPage], pd.DataFrame]:
    source = _source(server, home, **extra)
    pages = list(source.daily_bars("US", _codes(server), SESSIONS))
    if extra.get("fetch_processes", 1) > 1:  # every call, asking again included, was made by a worker
        assert source.client.stats.calls == 0 < source.spent().calls
    frame = pd.concat([p.bars for p in pages], ignore_index=True).sort_values(["symbol", "trade_date"])
    return pages, frame.reset_index(drop=True)


def _truth(server, codes) -> pd.DataFrame:
    truth = pd.concat([server.simulator.daily_bars("US", c).assign(symbol=c) for c in codes], ignore_index=True)
    truth = truth[truth["trade_date"].between(pd.Timestamp(SESSIONS[0]), pd.Timestamp(SESSIONS[-1]))]
    return truth.sort_values(["symbol", "trade_date"]).reset_index(drop=True)


def _assert_truth(frame: pd.DataFrame, truth: pd.DataFrame) -> None:
    assert len(frame) == len(truth) > 0
    assert frame["symbol"].tolist() == truth["symbol"].tolist()
    assert (frame["trade_date"].to_numpy() == truth["trade_date"].to_numpy()).all()
    assert (frame["close"].to_numpy() == truth["c"].to_numpy()).all()


def _live_codes(server, n: int) -> list[str]:
    """Codes with bars in every page (listed, not delisted), from different batches."""
    live = [s.code for s in server.simulator.universe("US") if s.delisted is None]
    codes = _codes(server)
    return sorted(live, key=codes.index)[:: max(1, len(live) // n)][:n]


def test_codes_left_out_once_are_asked_again_and_the_data_is_complete(make_server, home):
    probe = make_server()
    flaky = _live_codes(probe, 2)
    server = make_server(batch_omit_codes=frozenset(flaky), batch_omit_times=1)
    pages, frame = _fetch(server, home)
    _assert_truth(frame, _truth(server, _codes(server)))
    assert all(p.answered == set(_codes(server)) and not p.missing and not p.unrequested for p in pages)
    # the first (newest) page asks once more for both codes in one call; the second page gets them first time
    assert server.simulator.counters.count("/stock/klines") == PLANNED_CALLS + 1


@pytest.mark.parametrize("style", ["omit", "null"])
def test_codes_never_answered_are_missing_with_no_rows_and_the_others_complete(make_server, home, style, caplog):
    probe = make_server()
    gone = set(_live_codes(probe, 2))
    server = make_server(batch_omit_codes=frozenset(gone), batch_omit_style=style)
    with caplog.at_level(logging.WARNING, logger="ticklake.sources.itick.source"):
        pages, frame = _fetch(server, home)
    for page in pages:
        assert page.missing == gone
        assert page.answered == set(_codes(server)) - gone
        assert not set(page.bars["symbol"]) & gone
    _assert_truth(frame, _truth(server, sorted(set(_codes(server)) - gone)))
    assert server.simulator.counters.count("/stock/klines") == PLANNED_CALLS + 2  # one more ask per page
    assert sum("still missing" in r.getMessage() for r in caplog.records) == 2


def test_unrequested_codes_are_dropped_and_reported(make_server, home, caplog):
    server = make_server(batch_extra_codes=("ZZZZ",))
    with caplog.at_level(logging.WARNING, logger="ticklake.sources.itick.source"):
        pages, frame = _fetch(server, home)
    assert all(p.unrequested == {"ZZZZ"} and not p.missing for p in pages)
    assert "ZZZZ" not in set(frame["symbol"])
    _assert_truth(frame, _truth(server, _codes(server)))
    assert server.simulator.counters.count("/stock/klines") == PLANNED_CALLS
    assert any("not requested" in r.getMessage() and "'ZZZZ'" in r.getMessage() for r in caplog.records)


def test_parallel_workers_report_what_the_threads_report(make_server, home):
    faults = {"batch_omit_codes": frozenset(_live_codes(make_server(), 3)), "batch_omit_style": "null",
              "batch_extra_codes": ("ZZZZ",)}
    threaded_server, parallel_server = make_server(**faults), make_server(**faults)
    threaded, threaded_frame = _fetch(threaded_server, home)
    parallel, parallel_frame = _fetch(parallel_server, home, fetch_processes=2, parallel_fetch_min_bars=0)
    summary = [(p.sessions, p.answered, p.missing, p.unrequested) for p in threaded]
    assert summary == [(p.sessions, p.answered, p.missing, p.unrequested) for p in parallel]
    assert all(len(p.missing) == 3 for p in parallel)
    pd.testing.assert_frame_equal(parallel_frame, threaded_frame)
    calls = threaded_server.simulator.counters.count("/stock/klines")
    assert calls == parallel_server.simulator.counters.count("/stock/klines") == PLANNED_CALLS + 2


def _client(server, tmp_path) -> ITickClient:
    return ITickClient(server.url, TOKEN, limiter=SlidingWindowLimiter(100_000, 60.0),
                       audit=AuditLog(tmp_path / "audit.jsonl"))


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda c: c.klines("stock", "US", ["AAPL", "A,B"], ktype=8, limit=5), "'A,B': the code contains ','"),
        (lambda c: c.klines("stock", "US", ["Q" * 1500] * 50, ktype=8, limit=5),
         "50 of 50 instrument code(s) refused before any request: 'QQQQQQQQQQQQQQQQQQQQQQQQ'... (1500 chars)"),
        (lambda c: c.klines("stock", "US", "AAPL,MSFT", ktype=8, limit=5), "a list of codes, not one string"),
        (lambda c: c.kline("stock", "US", "AAPL/../x", ktype=8, limit=5), "the code contains '/'"),
        (lambda c: c.stock_info("US", " AAPL"), "whitespace"),
    ],
    ids=["comma", "huge", "one-string", "slash", "space"],
)
def test_bad_codes_are_refused_with_a_clear_error_before_any_request(make_server, tmp_path, call, needle):
    server = make_server()
    client = _client(server, tmp_path)
    with pytest.raises(InvalidSymbolError) as err:
        call(client)
    assert isinstance(err.value, ValueError)
    message = str(err.value)
    assert needle in message
    assert len(message) < 700
    assert server.simulator.counters.total == 0
    assert client.stats.calls == 0
    assert not (tmp_path / "audit.jsonl").exists()


def test_a_bad_code_in_a_fetch_fails_it_before_any_request(make_server, home):
    server = make_server()
    source = _source(server, home)
    with pytest.raises(InvalidSymbolError, match="'A,B'"):
        next(source.daily_bars("US", [*_codes(server), "A,B"], SESSIONS))
    assert server.simulator.counters.total == 0


def test_a_symbol_list_keeps_only_usable_codes_and_describes_each_refusal(make_server, home):
    hostile = ({"n": "no code"}, {"c": None}, {"c": ""}, {"c": "A,B"}, {"c": "X" * 1500}, {"c": "BRK B"})
    server = make_server(symbol_list_extra=hostile)
    listing = fetch(_source(server, home), SECURITY_MASTER, ListingsQuery("US", None))
    rejected = listing.attrs["rejected"]
    assert listing["symbol"].tolist() == [s.code for s in server.simulator.universe("US")]
    assert len(rejected) == len(hostile)
    assert rejected[3].endswith("'A,B': the code contains ','")
    assert "(1500 chars): the code is 1500 characters long" in rejected[4]
    assert all(len(r) < 120 and r.isprintable() for r in rejected)
