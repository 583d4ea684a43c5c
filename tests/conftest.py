"""Shared fixtures: simulators served over real loopback HTTP, resources pointed at them, temp homes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator

import pytest
from hypothesis import settings

from itick_sim import SimServer, SimSettings, Simulator, serve
from resources.itick import ITickResource
from resources.storage import StorageResource

# A frozen clock keeps every simulated series and every "last completed session" reproducible.
FROZEN_NOW = dt.datetime(2024, 6, 28, 23, 0, tzinfo=dt.UTC)
TOKEN = "test-token-not-a-secret"

# How long one example takes is the machine's business, not the property's: on a loaded machine Hypothesis's default
# 200 ms deadline failed properties that hold. Tests that need a time bound assert it themselves.
settings.register_profile("ticklake", deadline=None)
settings.load_profile("ticklake")


@pytest.fixture
def make_server() -> Iterator[Callable[..., SimServer]]:
    """Start simulators on 127.0.0.1 (any free port) with the given SimSettings overrides."""
    servers: list[SimServer] = []

    def start(**overrides) -> SimServer:
        settings = SimSettings(**{"now": FROZEN_NOW, "symbols_per_region": 12, **overrides})
        server = serve(Simulator(settings))
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


@pytest.fixture
def resources_for(home) -> Callable[..., dict]:
    """Resources that talk to `server` over loopback and store under the test's own home."""

    def build(server: SimServer, **itick_overrides) -> dict:
        itick = ITickResource(base_url=server.url, token=TOKEN, home=str(home),
                              **{"plan": "100000", "backoff_base_s": 0.05, **itick_overrides})
        return {"itick": itick, "storage": StorageResource(home=str(home))}

    return build


@pytest.fixture
def s3() -> Iterator:
    """moto's S3 server on loopback with a `ticklake` bucket; the AWS variables point at it for the test."""
    from tests.services import s3_server

    with s3_server() as server:
        yield server


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database on this machine (skipped where none runs, failed under TICKLAKE_REQUIRE_SERVICES)."""
    from tests.services import postgres_database

    with postgres_database() as url:
        yield url
