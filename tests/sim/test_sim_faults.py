"""Fault injection: partial batch answers, unrequested codes and hostile symbol-list entries, deterministic."""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt

import httpx
import pytest

from itick_sim import SimSettings, Simulator, serve
from itick_sim.__main__ import parser, settings_from_args

NOW = dt.datetime(2025, 6, 30, 23, 0, tzinfo=dt.UTC)


def _sim(**faults) -> Simulator:
    return Simulator(SimSettings(now=NOW, regions=("US",), symbols_per_region=6, **faults))


def _batch(client, codes, limit=3) -> dict:
    body = client.get("/stock/klines", params={"region": "US", "codes": ",".join(codes), "kType": 8,
                                               "limit": limit}).json()
    assert body["code"] == 0
    return body["data"]


def _codes(sim: Simulator) -> list[str]:
    return [s.code for s in sim.universe("US") if s.delisted is None][:3]


@pytest.mark.parametrize("style", ["omit", "null"])
def test_omitted_codes_are_left_out_or_null_on_every_batch_by_default(client_for, style):
    probe = _sim()
    a, b, c = _codes(probe)
    sim = _sim(batch_omit_codes=frozenset({b}), batch_omit_style=style)
    client = client_for(sim)
    for _ in range(3):
        data = _batch(client, [a, b, c])
        assert len(data[a]) == len(data[c]) == 3
        if style == "omit":
            assert list(data) == [a, c]
        else:
            assert list(data) == [a, b, c]
            assert data[b] is None
    # the single-code endpoint is not a batch answer: unaffected
    single = client.get("/stock/kline", params={"region": "US", "code": b, "kType": 8, "limit": 3}).json()
    assert len(single["data"]) == 3


def test_omit_times_counts_the_batch_requests_that_include_each_code(client_for):
    a, b, _ = _codes(_sim())
    client = client_for(_sim(batch_omit_codes=frozenset({a, b}), batch_omit_times=1))
    assert list(_batch(client, [a])) == []  # a's first request
    assert list(_batch(client, [a, b])) == [a]  # a's second, b's first
    assert list(_batch(client, [a, b])) == [a, b]


def test_omit_counters_are_exact_under_concurrent_requests_over_loopback():
    sim = _sim(batch_omit_codes=frozenset(_codes(_sim())[:1]), batch_omit_times=5)
    code = _codes(sim)[0]
    with (serve(sim) as server, httpx.Client(base_url=server.url, headers={"token": "t"}) as client,
          cf.ThreadPoolExecutor(8) as pool):
        answers = list(pool.map(lambda _: _batch(client, [code], limit=1), range(24)))
    assert sum(code not in data for data in answers) == 5
    assert sim.counters.count("/stock/klines") == 24


def test_extra_codes_join_every_batch_answer_with_plausible_bars(client_for):
    a, b, _ = _codes(_sim())
    client = client_for(_sim(batch_extra_codes=("ZZZZ", "QQQQQ")))
    data = _batch(client, [a, b])
    assert list(data) == [a, b, "ZZZZ", "QQQQQ"]
    assert data["ZZZZ"] == data["QQQQQ"] == data[a]
    assert all(bar["l"] <= min(bar["o"], bar["c"]) for bar in data["ZZZZ"])
    requested = _batch(client, [a, "ZZZZ"])  # asked for, it is an ordinary (unknown) code
    assert list(requested) == [a, "ZZZZ", "QQQQQ"]
    assert requested["ZZZZ"] is None


def test_hostile_symbol_list_entries_are_appended_verbatim(client_for):
    hostile = ({"n": "no code"}, {"c": None, "n": "null code"}, {"c": "A,B"}, {"c": "X" * 1500})
    sim = _sim(symbol_list_extra=hostile)
    client = client_for(sim)
    listed = client.get("/symbol/list", params={"type": "stock", "region": "US"}).json()["data"]
    assert listed[-4:] == list(hostile)
    assert [x["c"] for x in listed[:-4]] == [s.code for s in sim.universe("US")]
    one = client.get("/symbol/list", params={"type": "stock", "region": "US", "code": listed[0]["c"]}).json()
    assert [x["c"] for x in one["data"]] == [listed[0]["c"]]  # a filtered list gets no extras


def test_faults_are_off_by_default():
    settings = SimSettings()
    assert not settings.batch_omit_codes
    assert not settings.batch_extra_codes
    assert not settings.symbol_list_extra


@pytest.mark.parametrize(
    ("faults", "error"),
    [
        ({"batch_omit_style": "drop"}, ValueError),
        ({"batch_omit_times": 0}, ValueError),
        ({"batch_omit_codes": "AAPL"}, TypeError),  # a string would mean its letters
        ({"batch_extra_codes": ("",)}, TypeError),
        ({"symbol_list_extra": ("c=A",)}, TypeError),
    ],
)
def test_bad_fault_settings_are_refused(faults, error):
    with pytest.raises(error):
        SimSettings(**faults)


def test_cli_exposes_the_faults():
    args = parser().parse_args(["--batch-omit-codes", "AAA, BBB", "--batch-omit-style", "null",
                                "--batch-omit-times", "2", "--batch-extra-codes", "ZZZZ",
                                "--symbol-list-extra", '[{"c": "A,B"}, {"c": null}]'])
    settings = settings_from_args(args)
    assert settings.batch_omit_codes == {"AAA", "BBB"}
    assert (settings.batch_omit_style, settings.batch_omit_times) == ("null", 2)
    assert settings.batch_extra_codes == ("ZZZZ",)
    assert settings.symbol_list_extra == ({"c": "A,B"}, {"c": None})
    with pytest.raises(SystemExit):
        parser().parse_args(["--symbol-list-extra", '{"c": "A"}'])
