"""The audit of every request (`api_audit`, a DuckLake table declared in the data dictionary).

A lake commit per request would cost more than the request: rows are buffered in memory and appended in batches by
a background thread (every TICKLAKE_API_AUDIT_FLUSH_MS, sooner when FLUSH_ROWS are waiting, and on shutdown), each
batch one pure INSERT commit (`Lakehouse.append`). A batch that cannot be written is kept and retried with the next
one (up to MAX_PENDING rows; beyond that the oldest are dropped and the count is logged). A row holds the key's id,
never the key: the server scrubs every value it audits of the presented key before it gets here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from ticklake.dictionary.operations import API_AUDIT

log = logging.getLogger("ticklake.api")

FLUSH_ROWS = 5000
MAX_PENDING = 200_000
SOURCE = "api"


class AuditLog:
    def __init__(self, open_lake: Callable[[], Any], flush_s: float) -> None:
        self._open_lake = open_lake
        self.flush_s = flush_s
        self._rows: list[dict] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lake = None
        self.written = 0
        self.dropped = 0
        self.failures = 0

    def add(self, row: dict) -> None:
        row["source"] = SOURCE
        with self._lock:
            self._rows.append(row)
            if len(self._rows) > MAX_PENDING:
                excess = len(self._rows) - MAX_PENDING
                del self._rows[:excess]
                self.dropped += excess
            if len(self._rows) >= FLUSH_ROWS:
                self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._rows)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="api-audit", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_s)
            self._wake.clear()
            self.flush()

    def flush(self) -> int:
        with self._lock:
            rows, self._rows = self._rows, []
        if not rows:
            return 0
        try:
            if self._lake is None:
                self._lake = self._open_lake()
            table = pa.Table.from_pylist(rows, schema=API_AUDIT.arrow_schema)
            written = self._lake.append(API_AUDIT, table)
        except Exception as exc:  # the lake's messages name the setting and never a password
            self.failures += 1
            with self._lock:
                self._rows[:0] = rows
                if len(self._rows) > MAX_PENDING:
                    excess = len(self._rows) - MAX_PENDING
                    del self._rows[:excess]
                    self.dropped += excess
            log.warning("api_audit: %d row(s) not written yet, retried with the next batch: %s", len(rows),
                        " ".join(str(exc).split())[:500])
            return 0
        self.written += written
        return written

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop the flusher and write what is buffered (the server's shutdown)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self.flush()
        if self.dropped:
            log.warning("api_audit: %d row(s) dropped (the lake refused writes for too long)", self.dropped)
        if self._lake is not None:
            self._lake.close()
            self._lake = None
