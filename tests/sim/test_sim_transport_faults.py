"""Transport fault injection: seeded, counter-based, counted by kind, off by default, on the CLI."""

from __future__ import annotations

import datetime as dt
import socket

import httpx
import orjson
import pytest

from itick_sim import SimSettings, Simulator, serve
from itick_sim.__main__ import parser, settings_from_args
from itick_sim.settings import FAULT_KINDS

NOW = dt.datetime(2025, 6, 30, 23, 0, tzinfo=dt.UTC)
PARAMS = {"type": "stock", "region": "US"}


def _sim(**faults) -> Simulator:
    return Simulator(SimSettings(now=NOW, regions=("US",), symbols_per_region=3, **faults))


def _statuses(client: httpx.Client, n: int) -> list[tuple[int, bytes]]:
    return [(r.status_code, r.content) for r in (client.get("/symbol/list", params=PARAMS) for _ in range(n))]


def test_no_fault_is_injected_by_default(client_for):
    sim = _sim()
    assert {s for s, _ in _statuses(client_for(sim), 20)} == {200}
    assert sim.counters.snapshot()["faults"] == {}


def test_the_same_seed_meets_the_same_faults_and_counts_them(client_for):
    kinds = ("429", "500", "envelope_error")
    a, b = _sim(fault_rate=0.3, fault_kinds=kinds), _sim(fault_rate=0.3, fault_kinds=kinds)
    first, second = _statuses(client_for(a), 200), _statuses(client_for(b), 200)
    assert first == second
    faults = a.counters.snapshot()["faults"]
    assert set(faults) == set(kinds)
    assert 40 <= sum(faults.values()) <= 80  # ~30% of 200
    assert faults == b.counters.snapshot()["faults"]
    other = _sim(fault_rate=0.3, fault_kinds=kinds, seed=7)
    assert _statuses(client_for(other), 200) != first


@pytest.mark.parametrize(("kind", "status", "retry_after"), [
    ("429", 429, "0.25"), ("429_bare", 429, None), ("500", 500, None), ("503", 503, None),
])
def test_http_faults_answer_the_status(client_for, kind, status, retry_after):
    client = client_for(_sim(fault_rate=1.0, fault_kinds=(kind,), fault_retry_after_s=0.25))
    r = client.get("/symbol/list", params=PARAMS)
    assert r.status_code == status
    assert r.headers.get("retry-after") == retry_after
    assert orjson.loads(r.content)["code"] == status


def test_envelope_error_is_200_with_a_nonzero_code_and_a_message(client_for):
    body = client_for(_sim(fault_rate=1.0, fault_kinds=("envelope_error",))).get("/symbol/list", params=PARAMS).json()
    assert body["code"] != 0
    assert "injected fault" in body["msg"]


def test_malformed_json_is_a_cut_body_with_its_own_length(client_for):
    r = client_for(_sim(fault_rate=1.0, fault_kinds=("malformed_json",))).get("/symbol/list", params=PARAMS)
    assert r.status_code == 200
    assert int(r.headers["content-length"]) == len(r.content)
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(r.content)


def test_reset_closes_the_connection_mid_body():
    with serve(_sim(fault_rate=1.0, fault_kinds=("reset",))) as server, \
            socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(b"GET /symbol/list?type=stock&region=US HTTP/1.1\r\nHost: x\r\ntoken: t\r\n\r\n")
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head, body = raw.split(b"\r\n\r\n", 1)
    length = int(next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(b":")[1])
    assert 0 < len(body) < length


def test_timeout_answers_only_after_the_delay():
    with serve(_sim(fault_rate=1.0, fault_kinds=("timeout",), fault_timeout_s=1.0)) as server, \
            httpx.Client(base_url=server.url, headers={"token": "t"}, timeout=0.2) as client, \
            pytest.raises(httpx.ReadTimeout):
        client.get("/symbol/list", params=PARAMS)


def test_fault_max_caps_the_faults(client_for):
    sim = _sim(fault_rate=1.0, fault_kinds=("500",), fault_max=2)
    assert [s for s, _ in _statuses(client_for(sim), 4)] == [500, 500, 200, 200]
    assert sim.counters.snapshot()["faults"] == {"500": 2}


@pytest.mark.parametrize("bad", [
    {"fault_rate": 1.5}, {"fault_rate": -0.1}, {"fault_kinds": ("teapot",)}, {"fault_kinds": ()},
    {"fault_max": -1}, {"fault_timeout_s": 0},
])
def test_bad_fault_settings_are_refused(bad):
    with pytest.raises(ValueError, match="fault_"):
        SimSettings(**bad)


def test_a_single_string_of_kinds_is_refused():
    with pytest.raises(TypeError):
        SimSettings(fault_kinds="429")


def test_cli_sets_the_fault_settings():
    args = parser().parse_args(["--fault-rate", "0.1", "--fault-kinds", "429,reset", "--fault-max", "5",
                                "--fault-timeout-s", "3", "--fault-retry-after-s", "0.5"])
    s = settings_from_args(args)
    assert (s.fault_rate, s.fault_kinds, s.fault_max, s.fault_timeout_s, s.fault_retry_after_s) == (
        0.1, ("429", "reset"), 5, 3.0, 0.5)
    assert settings_from_args(parser().parse_args([])).fault_kinds == FAULT_KINDS
