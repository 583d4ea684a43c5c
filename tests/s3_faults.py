"""A fault-injecting proxy in front of moto's S3 server: the object store as it misbehaves in production.

It forwards every request to the real server, except that, while `fail_next` is above zero (or `fail_always` is
set), a write (PUT/POST) or a read (GET/HEAD), as `methods` says, is answered by S3's own error instead: `503
SlowDown` ("reduce your request rate") or `500 InternalError`, with the XML body S3 sends. Counts what it injected."""

from __future__ import annotations

import contextlib
import http.client
import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

ERRORS = {
    503: ("SlowDown", "Please reduce your request rate."),
    500: ("InternalError", "We encountered an internal error. Please try again."),
}


@dataclass
class Faults:
    status: int = 503
    methods: tuple[str, ...] = ("PUT", "POST")
    fail_next: int = 0
    fail_always: bool = False
    injected: int = 0
    forwarded: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, method: str) -> bool:
        with self.lock:
            if method not in self.methods:
                return False
            if self.fail_always:
                self.injected += 1
                return True
            if self.fail_next > 0:
                self.fail_next -= 1
                self.injected += 1
                return True
            return False


@contextlib.contextmanager
def faulty_s3(upstream: str, faults: Faults) -> Iterator[str]:
    """A proxy on a free loopback port forwarding to `upstream` (http://127.0.0.1:port); yields its endpoint."""
    target = urlsplit(upstream)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if faults.take(self.command):
                code, message = ERRORS[faults.status]
                xml = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{message}'
                       f"</Message><RequestId>FAULT</RequestId></Error>").encode()
                self.send_response(faults.status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(xml)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(xml)
                return
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
                conn.request(self.command, self.path, body=body, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
            finally:
                conn.close()
            with faults.lock:
                faults.forwarded += 1
            self.send_response(answer.status)
            for key, value in answer.getheaders():
                if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle  # noqa: N815 (http.server's names)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
