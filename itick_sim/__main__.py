"""python -m itick_sim --port N [--host 127.0.0.1] [--seed S] [--symbols N] [--regions US,HK] [--history-start D] ...

python -m itick_sim vendor-file --region US --start D --end D --out DIR [--divergences none|default]
    [--divergence-seed N] [--now T] [the server's settings options: --seed S --symbols N ...]
writes a Quandl-format vendor file of the bars a server started with the same settings serves (see
itick_sim.vendor_files) into DIR, and its ground truth as <name>.truth.json beside it."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import ipaddress
import json
import sys
import time
from pathlib import Path

from itick_sim.app import Simulator
from itick_sim.server import serve
from itick_sim.settings import FAULT_KINDS, SimSettings
from itick_sim.vendor_files import Divergences, vendor_file


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _codes(text: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in text.split(",") if c.strip())


def _json_objects(text: str) -> tuple[dict, ...]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise argparse.ArgumentTypeError("expected a JSON array of objects, e.g. '[{\"c\": \"A,B\"}]'")
    return tuple(value)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m itick_sim",
                                description="iTick-compatible market-data simulator")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--allow-remote", action="store_true", help="allow binding a non-loopback host")
    _settings_arguments(p)
    return p


def _settings_arguments(p: argparse.ArgumentParser) -> None:
    """The options that make the simulator's data and behaviour (SimSettings), shared by the server and
    `vendor-file` so a file matches what a server started with the same options serves."""
    p.add_argument("--seed", type=int, default=SimSettings.seed)
    p.add_argument("--symbols", type=int, default=SimSettings.symbols_per_region, help="symbols per region")
    p.add_argument("--regions", default=",".join(SimSettings.regions))
    p.add_argument("--history-start", type=dt.date.fromisoformat, default=SimSettings.history_start,
                   help=f"first date of every series, YYYY-MM-DD (default {SimSettings.history_start}; "
                        "not before a served region's calendar); long backfills need an earlier start")
    p.add_argument("--calls-per-minute", type=int, default=None, help="per-token quota (default unlimited)")
    p.add_argument("--token", action="append", default=None, help="accepted token (repeatable; default any)")
    faults = p.add_argument_group("fault injection (default off)")
    faults.add_argument("--batch-omit-codes", type=_codes, default=(), metavar="A,B",
                        help="batch kline answers leave these codes out")
    faults.add_argument("--batch-omit-style", choices=("omit", "null", "empty"), default="omit",
                        help="leave the code out of the answer, send it as null, or as an empty list of bars")
    faults.add_argument("--batch-omit-times", type=int, default=None, metavar="N",
                        help="only on the first N batch requests that include each code (default always)")
    faults.add_argument("--batch-extra-codes", type=_codes, default=(), metavar="ZZZZ",
                        help="codes added, unrequested, to every batch kline answer")
    faults.add_argument("--symbol-list-extra", type=_json_objects, default=(), metavar="JSON",
                        help='raw entries appended to stock symbol lists, e.g. \'[{"c": "A,B"}, {"c": null}]\'')
    faults.add_argument("--split-publish-delay-days", type=int, default=0, metavar="N",
                        help="/stock/split lists a split only N calendar days after its ex-date")
    faults.add_argument("--late-split-codes", type=_codes, default=(), metavar="A,B",
                        help="limit that delay to these codes (default every code)")
    faults.add_argument("--restate-codes", type=_codes, default=(), metavar="A,B",
                        help="restate these codes' daily bars (close +1%%, volume + 1 lot) once they are old enough")
    faults.add_argument("--restate-after-days", type=int, default=SimSettings.restate_after_days, metavar="N",
                        help="a bar of session D is restated from calendar day D+N on (exchange-local)")
    faults.add_argument("--late-bar-codes", type=_codes, default=(), metavar="A,B",
                        help="these codes' most recent bars come late (left out of kline answers)")
    faults.add_argument("--late-bar-days", type=int, default=SimSettings.late_bar_days, metavar="N",
                        help="a bar of session D is served from calendar day D+N on (exchange-local)")
    faults.add_argument("--fault-rate", type=float, default=0.0, metavar="P",
                        help="probability that a request meets a transport fault (deterministic from --seed)")
    faults.add_argument("--fault-kinds", type=_codes, default=FAULT_KINDS, metavar="K,K",
                        help=f"kinds drawn from (default all: {','.join(FAULT_KINDS)})")
    faults.add_argument("--fault-max", type=int, default=None, metavar="N", help="at most N faults in all")
    faults.add_argument("--fault-timeout-s", type=float, default=SimSettings.fault_timeout_s, metavar="S",
                        help="a 'timeout' fault answers after S seconds")
    faults.add_argument("--fault-retry-after-s", type=float, default=SimSettings.fault_retry_after_s, metavar="S",
                        help="Retry-After sent with a '429' fault")


def _utc(text: str) -> dt.datetime:
    t = dt.datetime.fromisoformat(text)
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


def vendor_file_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m itick_sim vendor-file",
                                description="write a Quandl-format vendor file of the simulator's bars and its "
                                            "ground truth (<name>.truth.json)")
    p.add_argument("--region", required=True, type=str.upper)
    p.add_argument("--start", required=True, type=dt.date.fromisoformat, help="first session, YYYY-MM-DD")
    p.add_argument("--end", required=True, type=dt.date.fromisoformat, help="last session, YYYY-MM-DD")
    p.add_argument("--out", required=True, type=Path, help="directory the two files are written to")
    p.add_argument("--codes", type=_codes, default=None, metavar="A,B",
                   help="the codes it covers (default every listed code with a bar in the window)")
    p.add_argument("--divergences", choices=("none", "default"), default="none",
                   help="none: the file agrees exactly with the API; default: Divergences()' counts")
    p.add_argument("--divergence-seed", type=int, default=0, metavar="N",
                   help="where the divergences fall (--seed is the simulator's own, as for the server)")
    p.add_argument("--now", type=_utc, default=None, metavar="ISO",
                   help="the simulator's clock (default the wall clock, as the server's)")
    _settings_arguments(p)
    return p


def vendor_file_main(argv: list[str]) -> int:
    p = vendor_file_parser()
    args = p.parse_args(argv)
    try:
        settings = dataclasses.replace(settings_from_args(args), now=args.now)
        if args.region not in settings.regions:
            p.error(f"region {args.region} is not among --regions {','.join(settings.regions)}")
        divergences = Divergences() if args.divergences == "default" else Divergences.none()
        vf = vendor_file(Simulator(settings), args.region, args.start, args.end, codes=args.codes,
                         divergences=divergences, seed=args.divergence_seed)
    except (TypeError, ValueError, KeyError) as exc:
        p.error(str(exc))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / vf.name
    path.write_bytes(vf.data)
    truth = args.out / f"{vf.name}.truth.json"
    truth.write_bytes(vf.truth_json())
    print(path, flush=True)
    print(truth, flush=True)
    return 0


def settings_from_args(args: argparse.Namespace) -> SimSettings:
    return SimSettings(
        seed=args.seed,
        symbols_per_region=args.symbols,
        regions=tuple(r.strip().upper() for r in args.regions.split(",") if r.strip()),
        history_start=args.history_start,
        calls_per_window=args.calls_per_minute,
        window_seconds=60.0,
        tokens=frozenset(args.token) if args.token else None,
        batch_omit_codes=frozenset(args.batch_omit_codes),
        batch_omit_style=args.batch_omit_style,
        batch_omit_times=args.batch_omit_times,
        batch_extra_codes=args.batch_extra_codes,
        symbol_list_extra=args.symbol_list_extra,
        split_publish_delay_days=args.split_publish_delay_days,
        late_split_codes=frozenset(args.late_split_codes),
        restate_codes=frozenset(args.restate_codes),
        restate_after_days=args.restate_after_days,
        late_bar_codes=frozenset(args.late_bar_codes),
        late_bar_days=args.late_bar_days,
        fault_rate=args.fault_rate,
        fault_kinds=args.fault_kinds,
        fault_max=args.fault_max,
        fault_timeout_s=args.fault_timeout_s,
        fault_retry_after_s=args.fault_retry_after_s,
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["vendor-file"]:
        return vendor_file_main(argv[1:])
    p = parser()
    args = p.parse_args(argv)
    if not _is_loopback(args.host) and not args.allow_remote:
        p.error(f"refusing to bind non-loopback host {args.host!r} (pass --allow-remote)")
    try:
        simulator = Simulator(settings_from_args(args))
    except (TypeError, ValueError) as exc:
        p.error(str(exc))
    server = serve(simulator, host=args.host, port=args.port)
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
