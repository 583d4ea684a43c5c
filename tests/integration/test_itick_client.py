"""The iTick client against the simulator over real loopback HTTP: errors, retries, quota, audit, variants."""

from __future__ import annotations

import datetime as dt
import threading

import pandas as pd
import pytest

from tests.conftest import TOKEN
from ticklake import markets
from ticklake.dictionary.reference_data import SECURITY_MASTER
from ticklake.sources.contract import fetch
from ticklake.sources.itick.client import AuditLog, ITickClient
from ticklake.sources.itick.config import ITickConfig, build_client
from ticklake.sources.itick.errors import (
    ITickAuthError,
    ITickQuotaError,
    ITickRequestError,
    ITickServerError,
    ITickUnknownSymbolError,
)
from ticklake.sources.itick.source import open_source
from ticklake.sources.queries import ListingsQuery
from ticklake.sources.quota import SlidingWindowLimiter


def _client(server, tmp_path, *, calls=100_000, window=60.0, retries=5, token=TOKEN, margin=None,
            backoff=0.05, deadline=600.0) -> ITickClient:
    return ITickClient(server.url, token, limiter=SlidingWindowLimiter(calls, window, margin_s=margin),
                       max_retries=retries, quota_deadline_s=deadline,
                       backoff_base_s=backoff, audit=AuditLog(tmp_path / "audit.jsonl"))


def _some_code(server, region="US") -> str:
    return server.simulator.universe(region)[0].code


@pytest.mark.parametrize("style", ["string", "msg"])
@pytest.mark.parametrize("http_status", [False, True])
def test_rejected_token_is_an_auth_error_that_never_shows_the_token(make_server, tmp_path, style, http_status):
    server = make_server(tokens=frozenset({"the-only-good-token"}), error_code_style=style,
                         error_http_status=http_status)
    secret = "s3cr3t-token-value-123456789"
    client = _client(server, tmp_path, token=secret)
    with pytest.raises(ITickAuthError, match="ITICK_TOKEN") as err:
        client.symbol_list("US")
    assert secret not in str(err.value)
    assert secret not in repr(client)
    assert secret not in (tmp_path / "audit.jsonl").read_text()
    assert client.stats.retries == 0  # auth failures are not retried


@pytest.mark.parametrize("style", ["string", "msg"])
def test_unknown_code_is_a_typed_error(make_server, tmp_path, style):
    client = _client(make_server(error_code_style=style), tmp_path)
    with pytest.raises(ITickUnknownSymbolError):
        client.kline("stock", "US", "NOSUCHCODE", ktype=8, limit=5)


def test_unknown_code_in_a_batch_yields_no_bars(make_server, tmp_path):
    server = make_server()
    code = _some_code(server)
    data = _client(server, tmp_path).klines("stock", "US", [code, "NOSUCHCODE"], ktype=8, limit=3)
    assert len(data[code]) == 3
    assert not data.get("NOSUCHCODE")


def test_protocol_rejections_name_the_problem(make_server, tmp_path):
    server = make_server(max_codes_per_call=3)
    client = _client(server, tmp_path)
    with pytest.raises(ITickRequestError, match="kType"):
        client.kline("stock", "US", _some_code(server), ktype=3, limit=5)
    with pytest.raises(ITickRequestError, match="too many codes"):
        client.klines("stock", "US", ["A", "B", "C", "D"], ktype=8, limit=5)
    # a refused request (an envelope code in the 4xx range) is asked once: asking again changes nothing
    assert server.simulator.counters.count("/stock/kline") == 1
    assert server.simulator.counters.count("/stock/klines") == 1


def test_429_is_retried_until_the_call_succeeds(make_server, tmp_path):
    server = make_server(calls_per_window=2, window_seconds=1.0)
    # the client believes it has a huge quota (in the same compressed 1 s window as the server's): the limiter
    # slows down to the 2 calls per window the server grants
    client = _client(server, tmp_path, window=1.0, backoff=0.2)
    for _ in range(5):
        assert client.symbol_list("US")
    assert server.simulator.counters.rate_limited > 0
    assert client.stats.rate_limited == server.simulator.counters.rate_limited
    assert client.stats.calls == 5


def test_quota_errors_surface_after_the_deadline(make_server, tmp_path):
    # a 429 is retried (max_retries counts other failures) until the call has been rate limited for the deadline
    server = make_server(calls_per_window=1, window_seconds=30.0)
    client = _client(server, tmp_path, retries=0, deadline=0.5)
    client.symbol_list("US")
    with pytest.raises(ITickQuotaError, match=r"still rate limited .* ITICK_PLAN=100000"):
        client.symbol_list("US")


def test_connection_failures_are_retried_then_reported(tmp_path):
    client = ITickClient("http://127.0.0.1:9", TOKEN, limiter=SlidingWindowLimiter(100, 1), max_retries=2,
                         backoff_base_s=0.01)
    with pytest.raises(ITickServerError, match="gave up after 3 attempts"):
        client.symbol_list("US")
    assert client.stats.attempts == 3


def test_concurrent_burst_at_the_same_quota_gets_no_429(make_server, tmp_path):
    server = make_server(calls_per_window=5, window_seconds=1.0)
    client = _client(server, tmp_path, calls=5, window=1.0, margin=0.25)  # margin: loopback jitter under load
    errors: list[BaseException] = []

    def work():
        try:
            for _ in range(3):
                client.symbol_list("US")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert server.simulator.counters.count("/symbol/list") == 12
    assert server.simulator.counters.rate_limited == 0


def test_every_call_is_audited_without_the_token(make_server, tmp_path):
    server = make_server()
    client = _client(server, tmp_path)
    code = _some_code(server)
    client.klines("stock", "US", [code], ktype=8, limit=7)
    with pytest.raises(ITickUnknownSymbolError):
        client.kline("stock", "US", "NOPE", ktype=8, limit=1)
    ok, failed = client.records
    assert ok.endpoint == "/stock/klines"
    assert ok.params == {"region": "US", "codes": code, "kType": 8, "limit": 7}
    assert (ok.status, ok.rows, ok.retries, ok.error) == (200, 7, 0, None)
    assert ok.latency_ms > 0
    assert failed.error.startswith("ITickUnknownSymbolError")
    text = (tmp_path / "audit.jsonl").read_text()
    assert text.count("\n") == 2
    assert TOKEN not in text


@pytest.mark.parametrize(
    ("bar_time", "sort_order", "et_inclusive", "convention"),
    [
        ("close", "asc", True, "exchange_local"),
        ("open", "desc", False, "exchange_local"),
        ("local_midnight", "desc", True, "exchange_local"),
        ("utc_midnight", "asc", False, "utc"),
    ],
)
@pytest.mark.parametrize("region", ["US", "JP"])
def test_source_matches_ground_truth_under_every_protocol_variant(make_server, home, region, bar_time, sort_order,
                                                                   et_inclusive, convention):
    server = make_server(bar_time=bar_time, sort_order=sort_order, et_inclusive=et_inclusive,
                         max_codes_per_call=5)
    config = ITickConfig(base_url=server.url, token=TOKEN, plan="100000", home=str(home),
                         max_codes_per_call=5, max_bars_per_call=7, bar_time_convention=convention)
    source = open_source(config)
    codes = [s.code for s in server.simulator.universe(region)]
    sessions = markets.sessions(region, dt.date(2024, 5, 1), dt.date(2024, 6, 28))
    pages = list(source.daily_bars(region, codes, sessions))
    got = pd.concat([page.bars for page in pages], ignore_index=True)
    assert sorted(d for page in pages for d in page.sessions) == sessions
    truth = pd.concat([server.simulator.daily_bars(region, c).assign(symbol=c) for c in codes], ignore_index=True)
    truth = truth[truth["trade_date"].between(pd.Timestamp(sessions[0]), pd.Timestamp(sessions[-1]))]
    got = got.sort_values(["symbol", "trade_date"]).reset_index(drop=True)
    truth = truth.sort_values(["symbol", "trade_date"]).reset_index(drop=True)
    assert len(got) == len(truth) > 0
    assert (got["trade_date"].to_numpy() == truth["trade_date"].to_numpy()).all()
    for ours, theirs in {"open": "o", "high": "h", "low": "l", "close": "c", "volume": "v", "turnover": "tu"}.items():
        assert (got[ours].to_numpy() == truth[theirs].to_numpy()).all(), ours
    # 7 sessions per page, 5 codes per call: exactly the planned number of calls
    n_pages = -(-len(sessions) // 7)
    assert server.simulator.counters.count("/stock/klines") == n_pages * -(-len(codes) // 5)


def test_base_url_without_token_is_refused_before_any_call(home):
    with pytest.raises(ValueError, match="ITICK_TOKEN"):
        build_client(ITickConfig(base_url="http://127.0.0.1:9", home=str(home)))


def test_no_token_and_no_url_means_the_embedded_simulator(home):
    config = ITickConfig(home=str(home), sim_symbols_per_region=3)
    assert config.endpoint == "embedded://itick-sim"
    assert config.source_name == "itick-sim"
    assert len(fetch(open_source(config), SECURITY_MASTER, ListingsQuery("US", None))) == 3


def test_parallel_fetch_processes_return_the_same_bars_and_count_every_call(make_server, home):
    server = make_server(max_codes_per_call=4)
    kwargs = {"base_url": server.url, "token": TOKEN, "plan": "100000", "home": str(home), "max_codes_per_call": 4,
              "max_bars_per_call": 20}
    codes = [s.code for s in server.simulator.universe("US")]
    sessions = markets.sessions("US", dt.date(2024, 4, 1), dt.date(2024, 6, 28))

    def fetch(**extra) -> tuple[pd.DataFrame, int, list]:
        source = open_source(ITickConfig(**kwargs, **extra))
        pages = list(source.daily_bars("US", codes, sessions))
        frame = pd.concat([p.bars for p in pages], ignore_index=True).sort_values(["symbol", "trade_date"])
        return frame.reset_index(drop=True), source.spent().calls, [p.sessions for p in pages]

    threaded, threaded_calls, threaded_pages = fetch(fetch_processes=1)
    parallel, parallel_calls, parallel_pages = fetch(fetch_processes=2, parallel_fetch_min_bars=0)
    pd.testing.assert_frame_equal(parallel, threaded)
    assert parallel_pages == threaded_pages
    assert len(sessions) == 63
    assert parallel_calls == threaded_calls == 3 * 4  # 12 codes / 4 per call x ceil(63 sessions / 20 per page)
    assert server.simulator.counters.count("/stock/klines") == 2 * 12  # the workers' calls were all counted
