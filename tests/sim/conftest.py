from __future__ import annotations

import datetime as dt

import httpx
import pytest

from itick_sim import SimSettings, Simulator, serve

NOW = dt.datetime(2025, 6, 30, 23, 0, tzinfo=dt.UTC)


def make_client(sim: Simulator, token: str | None = "t") -> httpx.Client:
    headers = {"token": token} if token else {}
    return httpx.Client(transport=httpx.WSGITransport(app=sim), base_url="http://sim", headers=headers)


@pytest.fixture
def client_for():
    """Factory: an in-process httpx client for a given Simulator."""
    clients: list[httpx.Client] = []

    def make(sim: Simulator, token: str | None = "t") -> httpx.Client:
        clients.append(make_client(sim, token))
        return clients[-1]

    yield make
    for c in clients:
        c.close()


@pytest.fixture(scope="session")
def sim() -> Simulator:
    return Simulator(SimSettings(now=NOW, regions=("US", "HK", "SH", "SZ", "JP", "GB")))


@pytest.fixture(scope="session")
def server(sim):
    with serve(sim) as srv:
        yield srv


@pytest.fixture(params=["wsgi", "http"])
def client(request, sim, server):
    remote = request.param == "http"
    c = httpx.Client(base_url=server.url, headers={"token": "t"}) if remote else make_client(sim)
    with c:
        yield c
