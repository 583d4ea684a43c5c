"""Real services for the distributed tests: PostgreSQL, RabbitMQ and Redis on this machine, S3 from moto's server.

A fresh machine with only Python has none of the machine services, so their tests skip there, saying which
service was missing; CI sets TICKLAKE_REQUIRE_SERVICES=1, which turns a missing service into a failure
instead (a distributed test that silently skipped in CI would prove nothing).
"""

from __future__ import annotations

import contextlib
import os
import socket
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NoReturn

import pytest

POSTGRES_ADMIN_URL = os.environ.get("TICKLAKE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
RABBITMQ_URL = os.environ.get("TICKLAKE_TEST_BROKER_URL", "pyamqp://guest:guest@127.0.0.1:5672//")
REDIS_URL = os.environ.get("TICKLAKE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def require(service: str, host: str, port: int) -> None:
    """Skip (or, under TICKLAKE_REQUIRE_SERVICES=1, fail) when nothing listens on host:port."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return
    except OSError as exc:
        missing(f"{service} is not reachable on {host}:{port} ({exc}); the distributed tests need it")


def missing(message: str) -> NoReturn:
    """Skip the test saying what this machine lacks; under TICKLAKE_REQUIRE_SERVICES=1 (CI) fail instead."""
    if os.environ.get("TICKLAKE_REQUIRE_SERVICES") == "1":
        pytest.fail(message + " (TICKLAKE_REQUIRE_SERVICES=1)")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the block, then put back what was there (or nothing)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test (dropped afterwards): its URL."""
    import psycopg2

    require("PostgreSQL", "127.0.0.1", 5432)
    name = f"ticklake_test_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(POSTGRES_ADMIN_URL)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@dataclass
class S3Server:
    """moto's standalone S3 server on loopback, with one bucket and the AWS variables that reach it."""

    endpoint: str
    bucket: str
    server: object

    @property
    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": "testing-not-a-secret",
                "AWS_SECRET_ACCESS_KEY": "testing-not-a-secret-either", "AWS_REGION": "us-east-1",
                "TICKLAKE_S3_MAX_ATTEMPTS": "3"}

    def url(self, prefix: str = "") -> str:
        return f"s3://{self.bucket}/{prefix}".rstrip("/")

    def stop(self) -> None:
        self.server.stop()

    def restart(self) -> None:
        """Serve again on the same port after `stop()`: what was stored is still there (moto keeps it in-process)."""
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(self.endpoint.rsplit(":", 1)[1]),
                                         verbose=False)
        self.server.start()


@contextlib.contextmanager
def s3_server(monkeypatch: pytest.MonkeyPatch | None = None, *, bucket: str = "ticklake") -> Iterator[S3Server]:
    """Start moto's S3 server on a free loopback port, create `bucket`, and point the AWS variables at it."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request in every failure report
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    s3 = S3Server(f"http://127.0.0.1:{port}", bucket, server)
    try:
        with environment(s3.env):
            import boto3

            # moto keeps its buckets in this process, whichever server serves them: start each test from an empty
            # store
            urllib.request.urlopen(urllib.request.Request(f"{s3.endpoint}/moto-api/reset", method="POST"), timeout=10)
            boto3.client("s3", endpoint_url=s3.endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
            yield s3
    finally:
        s3.stop()  # the server serving now (a test may have restarted it)


def wait_until_serving(process, port: int, timeout_s: float = 90) -> None:
    """Until `ticklake serve` (a Popen) answers /health on the loopback port; fails with its output if it exits."""
    import time

    import httpx

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "ticklake serve did not come up"
        time.sleep(0.3)
