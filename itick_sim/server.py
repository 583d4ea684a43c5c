"""A small threaded loopback HTTP server around a Simulator (stdlib wsgiref)."""

from __future__ import annotations

import socketserver
import threading
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from itick_sim.app import Simulator


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class SimServer:
    """Serves `simulator` on host:port (port 0 = any free port) from a background thread."""

    def __init__(self, simulator: Simulator | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.simulator = simulator if simulator is not None else Simulator()
        self._httpd = _ThreadingWSGIServer((host, port), _QuietHandler)
        self._httpd.set_app(self.simulator)
        self.host, self.port = self._httpd.server_address[:2]
        self.url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name=f"itick-sim-{self.port}", daemon=True)
        self._thread.start()
        self._closed = False

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> SimServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SimServer({self.url})"


def serve(simulator: Simulator | None = None, host: str = "127.0.0.1", port: int = 0) -> SimServer:
    """Start a SimServer in a background thread and return immediately."""
    return SimServer(simulator, host, port)
