"""python -m itick_sim --port N [--host 127.0.0.1] [--seed S] [--symbols N] [--regions US,HK] [--history-start D] ..."""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import sys
import time

from itick_sim.app import Simulator
from itick_sim.markets import CAL_START
from itick_sim.server import serve
from itick_sim.settings import SimSettings


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse(argv: list[str] | None = None) -> tuple[argparse.Namespace, SimSettings]:
    """The command line and the settings it asks for (argparse exits with a message on a bad value)."""
    p = argparse.ArgumentParser(prog="python -m itick_sim",
                                description="iTick-compatible market-data simulator")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--allow-remote", action="store_true", help="allow binding a non-loopback host")
    p.add_argument("--seed", type=int, default=SimSettings.seed)
    p.add_argument("--symbols", type=int, default=SimSettings.symbols_per_region, help="symbols per region")
    p.add_argument("--regions", default=",".join(SimSettings.regions))
    p.add_argument("--history-start", type=dt.date.fromisoformat, default=SimSettings.history_start,
                   help=f"first date of every series, YYYY-MM-DD (default {SimSettings.history_start}; "
                        f"not before {CAL_START}); long backfills need an earlier start")
    p.add_argument("--calls-per-minute", type=int, default=None, help="per-token quota (default unlimited)")
    p.add_argument("--token", action="append", default=None, help="accepted token (repeatable; default any)")
    args = p.parse_args(argv)
    if not _is_loopback(args.host) and not args.allow_remote:
        p.error(f"refusing to bind non-loopback host {args.host!r} (pass --allow-remote)")
    if args.history_start < CAL_START:
        p.error(f"--history-start must be on or after {CAL_START}")
    settings = SimSettings(
        seed=args.seed,
        symbols_per_region=args.symbols,
        regions=tuple(r.strip().upper() for r in args.regions.split(",") if r.strip()),
        history_start=args.history_start,
        calls_per_window=args.calls_per_minute,
        window_seconds=60.0,
        tokens=frozenset(args.token) if args.token else None,
    )
    return args, settings


def main(argv: list[str] | None = None) -> int:
    args, settings = parse(argv)
    server = serve(Simulator(settings), host=args.host, port=args.port)
    print(server.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
