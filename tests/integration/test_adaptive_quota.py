"""A plan set higher than the server's real quota slows down to what the server grants and finishes, over real
loopback HTTP against the simulator, in compressed time (a window of seconds on both sides instead of a minute)."""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass

import httpx
import pandas as pd
import pytest

from resources.itick import ITickResource
from tests.conftest import TOKEN
from ticklake import markets
from ticklake.sources.itick.client import ITickClient
from ticklake.sources.itick.errors import ITickQuotaError
from ticklake.sources.quota import PROBE_STEP, REFUSALS_IN_A_ROW, SlidingWindowLimiter

# A window long enough that even a loaded machine makes the server's 30 calls well inside it (at 4 calls in flight,
# under a quarter second each), so the 429s come from counts, not from the machine's speed.
WINDOW = 2.0
SERVER_CALLS = 30
# The highest limit a server granting SERVER_CALLS can leave standing: past SERVER_CALLS + REFUSALS_IN_A_ROW - 1, a
# window's excess calls are a run of 429s that cuts; below it they are strays, and one probe may still lift it.
UNCUT = SERVER_CALLS + REFUSALS_IN_A_ROW - 1
HIGHEST_LIMIT = UNCUT + max(1, UNCUT // PROBE_STEP)
# 12 codes, one per call, 63 sessions in pages of 7: about 100 kline calls (fewer for codes listed or delisted in
# between), four windows at 30 per window
SESSIONS = markets.sessions("US", dt.date(2024, 4, 1), dt.date(2024, 6, 28))


@dataclass
class Fetch:
    bars: pd.DataFrame
    seconds: float
    server_429: int
    client_429: int
    calls: int
    limit: int


def fetch_at(make_server, resources_for, plan: str, **extra) -> Fetch:
    """Every US bar of the window at `plan`, from a fresh server that grants 30 calls per window."""
    server = make_server(calls_per_window=SERVER_CALLS, window_seconds=WINDOW, max_codes_per_call=1)
    itick = resources_for(server, plan=plan, window_seconds=WINDOW, quota_margin_s=0.2, max_codes_per_call=1,
                          max_bars_per_call=7, max_concurrency=4, **{"fetch_processes": 1, **extra})["itick"]
    codes = [s.code for s in server.simulator.universe("US")]
    source = itick.source()
    started = time.perf_counter()
    pages = list(source.daily_bars("US", codes, SESSIONS))
    seconds = time.perf_counter() - started
    bars = pd.concat([p.bars for p in pages], ignore_index=True).sort_values(["symbol", "trade_date"])
    spent = source.spent()
    return Fetch(bars.reset_index(drop=True), seconds, server.simulator.counters.rate_limited, spent.rate_limited,
                 spent.calls, itick.client().limiter.limit)


@pytest.mark.slow
def test_plan_pro_against_a_server_granting_30_finishes_with_the_same_bars(make_server, resources_for, caplog):
    with caplog.at_level(logging.WARNING, logger="ticklake.sources.quota"):
        pro = fetch_at(make_server, resources_for, "pro")
    right = fetch_at(make_server, resources_for, str(SERVER_CALLS))
    pd.testing.assert_frame_equal(pro.bars, right.bars)
    assert pro.calls == right.calls > 90
    assert len(pro.bars) > 600
    assert pro.server_429 == pro.client_429 > 0  # every 429 was seen, retried and counted
    assert pro.server_429 <= 4 + 3 * 4  # the first overshoot (calls in flight), then about one probe per window
    assert SERVER_CALLS - 4 <= pro.limit <= HIGHEST_LIMIT  # about what the server grants, not the plan's 600
    assert pro.seconds < 3 * right.seconds + 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "ITICK_PLAN=pro allows 600: slowing down to" in warnings[0]
    assert "granted about" in warnings[0]
    assert "set ITICK_PLAN=" in warnings[0]
    assert TOKEN not in caplog.text
    print(f"\nplan=pro: {pro.seconds:.2f} s, {pro.server_429} x 429; plan=30: {right.seconds:.2f} s, "
          f"{right.server_429} x 429 ({pro.calls} calls, server 30 per {WINDOW:g} s)")


def test_a_plan_below_the_server_limit_gets_no_429(make_server, resources_for, caplog):
    with caplog.at_level(logging.WARNING, logger="ticklake.sources.quota"):
        lower = fetch_at(make_server, resources_for, "25")
    assert lower.server_429 == 0
    assert lower.limit == 25
    assert len(lower.bars) > 600
    assert not [r for r in caplog.records if r.name == "ticklake.sources.quota"]


# The parallel fetch, by counts, not by the machine's speed: one page of one-code calls, two worker processes each
# making one call at a time, against a server granting PARALLEL_GRANTS per PARALLEL_WINDOW seconds whatever the plan
# says. The page's fourth call reaches the server while its window still holds the first three grants unless calls
# take a third of the window each (one worker alone making all four in a row; a second, where a loaded machine
# takes well under half of that), so the 429s are certain, and so is the one run of REFUSALS_IN_A_ROW of them (the
# server refuses every call until its window slides) that cuts the shared limit to what the server grants.
PARALLEL_GRANTS = 3
PARALLEL_WINDOW = 3.0
PARALLEL_CODES = 6
PAGE = SESSIONS[-7:]  # one page of `max_bars_per_call=7`


@pytest.mark.slow
def test_parallel_fetch_processes_adapt_together(make_server, resources_for, tmp_path):
    settings = {"symbols_per_region": PARALLEL_CODES, "max_codes_per_call": 1}
    calls = {"max_codes_per_call": 1, "max_bars_per_call": 7}
    unlimited = make_server(**settings)
    codes = [s.code for s in unlimited.simulator.universe("US")]
    # the bars to expect, with no quota at all, in a home of their own: its grants are not in the shared state
    expected = _bars(ITickResource(base_url=unlimited.url, token=TOKEN, home=str(tmp_path / "unlimited"),
                                   plan="100000", **calls).source(), codes)
    server = make_server(calls_per_window=PARALLEL_GRANTS, window_seconds=PARALLEL_WINDOW, **settings)
    for code in codes:
        server.simulator.daily_bars("US", code)  # series built now: every answer comes from the cache
    itick = resources_for(server, plan="pro", window_seconds=PARALLEL_WINDOW, quota_margin_s=0.5,
                          fetch_processes=2, parallel_fetch_min_bars=0, **calls)["itick"]
    source = itick.source()
    pd.testing.assert_frame_equal(_bars(source, codes), expected)  # zero rows lost
    assert len(expected) > 0
    spent, refused = source.spent(), server.simulator.counters.rate_limited
    assert spent.calls == PARALLEL_CODES  # one call per code, each granted once
    assert spent.attempts == server.simulator.counters.count("/stock/klines")
    assert spent.rate_limited == refused  # every 429 was met in a worker, retried and counted
    # one run of 429s, counted across both processes, cut the limit; the calls after it were paced, not refused
    assert REFUSALS_IN_A_ROW <= refused < 2 * REFUSALS_IN_A_ROW, spent
    # the adapted limit is in the state the processes share: this process made no call and reads what the workers
    # learned (one less when the other worker's last grant was still being answered at the cut)
    limit = itick.client().limiter.limit
    assert limit in (PARALLEL_GRANTS - 1, PARALLEL_GRANTS), limit
    print(f"\nparallel: {refused} x 429 of {spent.attempts} attempts, limit {limit} ({PARALLEL_GRANTS} granted per "
          f"{PARALLEL_WINDOW:g} s)")


def _bars(source, codes: list[str]) -> pd.DataFrame:
    """Every US bar of PAGE, sorted."""
    pages = list(source.daily_bars("US", codes, PAGE))
    assert len(pages) == 1
    return pd.concat([p.bars for p in pages], ignore_index=True).sort_values(["symbol", "trade_date"]).reset_index(
        drop=True)


def test_a_call_rate_limited_past_the_deadline_names_the_plan_and_the_rate(make_server, tmp_path):
    server = make_server(calls_per_window=1, window_seconds=30.0)
    limiter = SlidingWindowLimiter(600, 30.0, plan="pro")
    client = ITickClient(server.url, TOKEN, limiter=limiter, quota_deadline_s=1.0, backoff_base_s=0.05)
    client.symbol_list("US")
    with pytest.raises(ITickQuotaError, match=r"still rate limited .*ITICK_PLAN=pro allows 600") as err:
        client.symbol_list("US")
    assert "granted about 1 calls per 30 s" in str(err.value)
    assert TOKEN not in str(err.value)
    assert client.stats.rate_limited >= 1


def test_retry_after_is_honoured_before_the_retry(tmp_path):
    answers = iter([httpx.Response(429, headers={"Retry-After": "0.6"}, json={"code": 429, "msg": "too much"})])
    sent: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(time.monotonic())
        return next(answers, None) or httpx.Response(200, json={"code": 0, "msg": "ok", "data": [{"c": "AAPL"}]})

    client = ITickClient("http://itick.test", TOKEN, limiter=SlidingWindowLimiter(600, 60.0, plan="pro"),
                         transport=httpx.MockTransport(handler))
    assert client.symbol_list("US") == [{"c": "AAPL"}]
    assert sent[1] - sent[0] >= 0.6
    assert client.stats.rate_limited == 1
    assert client.stats.retries == 1


class SlowGrants:
    """WSGI middleware: every granted answer (HTTP 200) of the simulator leaves `delay_s` late, a 429 at once, as a
    large kline answer does against a tiny refusal. Calls granted but still in flight when a run of 429s ends are
    what the server granted too."""

    def __init__(self, app, delay_s: float):
        self.app, self.delay_s = app, delay_s

    def __call__(self, environ, start_response):
        captured = {}

        def keep(status, headers, exc_info=None):
            captured.update(status=status, headers=headers)

        body = b"".join(self.app(environ, keep))
        if captured["status"].startswith("200"):
            time.sleep(self.delay_s)
        start_response(captured["status"], captured["headers"])
        return [body]


@pytest.mark.slow
def test_the_advised_plan_is_what_the_server_granted_over_the_window_calls_in_flight_included(caplog):
    from concurrent.futures import ThreadPoolExecutor

    from itick_sim import SimSettings, Simulator, serve

    window = 3.0
    simulator = Simulator(SimSettings(now=dt.datetime(2024, 6, 28, 23, tzinfo=dt.UTC), symbols_per_region=4,
                                      calls_per_window=5, window_seconds=window))
    with serve(SlowGrants(simulator, delay_s=1.0)) as server, \
            caplog.at_level(logging.WARNING, logger="ticklake.sources.quota"):  # type: ignore[arg-type]
        limiter = SlidingWindowLimiter(120, window, margin_s=0.2, plan="base")
        client = ITickClient(server.url, TOKEN, limiter=limiter, backoff_base_s=0.05, quota_deadline_s=120)
        with ThreadPoolExecutor(4) as pool:  # four calls in flight at a time, as max_concurrency does
            assert all(pool.map(lambda _: client.symbol_list("US"), range(10)))
        client.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert f"the server granted about 5 calls per {window:g} s while ITICK_PLAN=base allows 120" in warnings[0]
    assert "set ITICK_PLAN=5 " in warnings[0]  # not 4 or 3: the grants still in flight at the run count too
    assert simulator.counters.rate_limited >= 4
