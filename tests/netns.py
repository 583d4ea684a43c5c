"""A host of its own for a test process: a Linux network namespace (`ip netns`) joined to this machine by a veth
pair. Inside it, 127.0.0.1 is the namespace's own loopback, so nothing this machine serves on loopback is
reachable; the only way out is the host's side of the veth, where `Namespace.forward` relays the ports a
deployment's worker is told about (PostgreSQL, RabbitMQ, Redis, S3, iTick), as a network would.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import subprocess
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

LOOPBACK = "127.0.0.1"


class NamespaceUnavailableError(RuntimeError):
    """This machine (or this user) cannot make a network namespace."""


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise NamespaceUnavailableError(f"`ip {' '.join(args)}` failed: {done.stderr.strip() or done.returncode}")


@dataclass
class Namespace:
    name: str
    host_ip: str  # the host's side of the veth: where the namespace reaches the relayed services
    _loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    _servers: list = field(default_factory=list)

    def command(self, argv: list[str]) -> list[str]:
        """`argv` run inside the namespace (`ip netns exec` replaces itself with it: same pid, same signals)."""
        return ["ip", "netns", "exec", self.name, *argv]

    def environment(self, env: Mapping[str, str]) -> dict[str, str]:
        """`env` with every loopback address replaced by the host's address on the veth, and each such port
        relayed: the namespace's process reaches exactly the services its configuration names."""
        for value in env.values():
            for port in _loopback_ports(value):
                self.forward(port)
        return {k: v.replace(LOOPBACK, self.host_ip) for k, v in env.items()}

    def forward(self, port: int) -> None:
        """Relay host_ip:port to 127.0.0.1:port (once per port)."""
        if port in {s.sockets[0].getsockname()[1] for s in self._servers}:
            return
        server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(_relay_to(port), self.host_ip, port), self._loop).result(10)
        self._servers.append(server)


def _loopback_ports(value: str) -> set[int]:
    ports = set()
    for word in value.split(","):
        try:
            parts = urlsplit(word.strip())
            if parts.hostname == LOOPBACK and parts.port:
                ports.add(parts.port)
        except ValueError:
            continue
    return ports


def _relay_to(port: int):
    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(LOOPBACK, port)
        except OSError:
            writer.close()
            return
        try:
            await asyncio.gather(_pump(reader, upstream_writer), _pump(upstream_reader, writer))
        except asyncio.CancelledError:  # the namespace is going away: end quietly (asyncio logs a cancelled
            upstream_writer.close()     # connection callback as an error)
            writer.close()

    return relay


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def _close(servers: list) -> None:
    """Stop listening and end the relays still open (their peers are gone with the namespace)."""
    for server in servers:
        server.close()
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@contextlib.contextmanager
def namespace() -> Iterator[Namespace]:
    """A fresh namespace with loopback up and a /30 veth link to this host; removed (with its relays) on exit.
    Raises NamespaceUnavailableError when `ip netns` is refused (no CAP_SYS_ADMIN, no iproute2)."""
    tag = secrets.token_hex(3)
    name, host_if, ns_if = f"tl-{tag}", f"tlh{tag}", f"tln{tag}"
    subnet = f"10.{200 + secrets.randbelow(50)}.{secrets.randbelow(256)}"
    host_ip, ns_ip = f"{subnet}.1", f"{subnet}.2"
    _ip("netns", "add", name)
    try:
        _ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        _ip("link", "set", ns_if, "netns", name)
        _ip("addr", "add", f"{host_ip}/30", "dev", host_if)
        _ip("link", "set", host_if, "up")
        for args in (("addr", "add", f"{ns_ip}/30", "dev", ns_if), ("link", "set", ns_if, "up"),
                     ("link", "set", "lo", "up")):
            _ip("netns", "exec", name, "ip", *args)
        ns = Namespace(name, host_ip)
        thread = threading.Thread(target=ns._loop.run_forever, name=f"relay-{name}", daemon=True)
        thread.start()
        try:
            yield ns
        finally:
            asyncio.run_coroutine_threadsafe(_close(ns._servers), ns._loop).result(10)
            ns._loop.call_soon_threadsafe(ns._loop.stop)
            thread.join(10)
            ns._loop.close()
    finally:
        with contextlib.suppress(NamespaceUnavailableError):
            _ip("link", "del", host_if)  # deletes its peer too
        with contextlib.suppress(NamespaceUnavailableError):
            _ip("netns", "del", name)
