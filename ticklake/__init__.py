"""ticklake: iTick and other sources into one validated, point-in-time DuckLake lake.

`ticklake.connect()` opens the lake for analysts (read-only, the as-of macros included)."""

from __future__ import annotations


def __getattr__(name: str):
    if name == "connect":  # imported on first use: `import ticklake` stays cheap for worker processes
        from ticklake.storage import connect

        return connect
    raise AttributeError(f"module 'ticklake' has no attribute {name!r}")
