"""`ticklake`: the console command a person decides golden bars with (installed in the venv).

    ticklake override REGION SYMBOL DATE FIELD (--source NAME | --value X) --reason TEXT --author NAME [--until DATE]
    ticklake override --list [--region R] [--status active|expired|revoked]
    ticklake override --revoke ID --reason TEXT --author NAME
    ticklake override --expire [--region R]
    ticklake exceptions [--region R] [--status open|overridden|closed|all]
    ticklake serve [--host H] [--port P] [--workers N]

TICKLAKE_HOME, TICKLAKE_CATALOG and TICKLAKE_STORAGE_URL choose the lake, TICKLAKE_SOURCES the arbitration policy,
as for the pipeline; `serve` reads its tenants from TICKLAKE_TENANTS. A mistake exits 2 with one line saying what
is wrong, and writes nothing.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import uuid
from collections.abc import Sequence
from typing import Any, NoReturn

import pandas as pd

from ticklake import markets, settings
from ticklake.api import server
from ticklake.datasets.context import RunContext
from ticklake.datasets.golden import REFERENCE
from ticklake.datasets.overrides import (
    FIELDS,
    STATUSES,
    Override,
    OverrideError,
    expire_overrides,
    list_exceptions,
    list_overrides,
    make_override,
    revoke_override,
)
from ticklake.dictionary.market_data import COMPARED_FIELDS
from ticklake.products.tenants import TenantsFileError
from ticklake.settings import ConfigError
from ticklake.sources.declared import Sources, SourcesFileError
from ticklake.sources.itick.config import ITickConfig
from ticklake.storage import CatalogError, Lakehouse, LakeStorageError, OldLayoutError, connect, open_lakehouse

PROG = "ticklake"
EXCEPTION_STATUSES = ("open", "overridden", "closed", "all")


class UsageError(Exception):
    """A mistake on the command line: one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one clear line, argparse's exit status
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Decide golden bars: overrides and the exception queue.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{override,exceptions,serve}",
                                     parser_class=_Parser)
    o = commands.add_parser(
        "override", help="make, list, revoke or expire overrides of golden bars",
        description="Make an override (choose a source or give a value for one field of a golden bar, or choose a "
                    "source for the whole bar), list them, revoke one, or expire those past their date. The "
                    "override and the re-derived golden bars commit together.",
        usage=f"{PROG} override REGION SYMBOL DATE FIELD (--source NAME | --value X) --reason TEXT --author NAME "
              f"[--until DATE]\n       {PROG} override --list [--region R] [--status S]\n"
              f"       {PROG} override --revoke ID --reason TEXT --author NAME\n"
              f"       {PROG} override --expire [--region R]")
    o.add_argument("region", nargs="?", metavar="REGION", help="the bar's region (US, HK, SH, JP, ...)")
    o.add_argument("symbol", nargs="?", metavar="SYMBOL", help="the bar's symbol, as stored")
    o.add_argument("date", nargs="?", metavar="DATE", help="the bar's session (YYYY-MM-DD, exchange-local)")
    o.add_argument("field", nargs="?", metavar="FIELD", help=f"what is decided: {', '.join(FIELDS)}")
    mode = o.add_mutually_exclusive_group()
    mode.add_argument("--list", action="store_true", help="list overrides")
    mode.add_argument("--revoke", metavar="ID", help="revoke the active override ID")
    mode.add_argument("--expire", action="store_true", help="expire the active overrides whose date has come")
    o.add_argument("--source", metavar="NAME", help="take this source's value (klines_daily_by_source)")
    o.add_argument("--value", metavar="X", help="give the value")
    o.add_argument("--reason", metavar="TEXT", help="why, in your words (required to make or revoke)")
    o.add_argument("--author", metavar="NAME", help="who decides (required to make or revoke)")
    o.add_argument("--until", metavar="DATE", help="the first exchange-local date the override no longer applies "
                                                   "(default: until revoked)")
    o.add_argument("--region", dest="region_filter", metavar="R", help="--list, --expire: this region only "
                   "(--expire: default every region)")
    o.add_argument("--status", metavar="S", help=f"--list: only this status ({', '.join(STATUSES)})")
    _clock(o)
    e = commands.add_parser(
        "exceptions", help="list the golden copy's exception queue, with the command that resolves each",
        description="List golden_exceptions (open ones unless --status says otherwise), each with the "
                    "`ticklake override` command that would resolve it for the source that is not the winner.")
    e.add_argument("--region", metavar="R", help="this region only")
    e.add_argument("--status", default="open", choices=EXCEPTION_STATUSES, help="default: open")
    s = commands.add_parser(
        "serve", help="serve the read API: tenants query the lake over HTTP within their grants",
        description="Serve GET /v1/<dataset> (OpenAPI at /openapi.json) for the tenants of TICKLAKE_TENANTS, "
                    "rate-limited and cached in the process, or in Redis with TICKLAKE_REDIS_URL; every request is "
                    "audited to api_audit.")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=8700, help="port (default 8700)")
    s.add_argument("--workers", type=int, default=1, help="processes sharing the port (default 1)")
    return parser


def _clock(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--now", metavar="INSTANT", help="act as of this ISO 8601 instant with a zone (a replay, a "
                        "test); default the wall clock")


# ------------------------------------------------------------------------------------------------ the lake


def _open_lake() -> Lakehouse:
    """The pipeline's handle on the lake the environment names; a home with no lake is refused, not created."""
    connect().close()  # raises CatalogError ("no lake at ...") where nothing was ever committed
    return open_lakehouse()


def _policy():
    """The sources file's arbitration policy, with the API named as the pipeline names it; None without one."""
    if settings.sources_file() is None:
        return None
    return Sources.from_env(api_name=ITickConfig.from_env().source_name).policy


def _context(now: str | None) -> RunContext:
    """The command's run on the lake: its instant (`--now`, default the wall clock) and the sources' policy."""
    try:
        instant = settings.parse_instant(now)
    except ValueError as exc:
        raise UsageError(f"--now {now!r}: {exc}") from None
    policy = _policy()
    return RunContext(_open_lake(), f"cli-{uuid.uuid4().hex[:12]}", instant, policy=policy)


def _known_region(region: str | None) -> None:
    if region is not None:
        try:
            markets.market(region)
        except ValueError as exc:
            raise UsageError(f"--region: {exc}") from None


def _q(text: object) -> str:
    return shlex.quote(str(text))


# ------------------------------------------------------------------------------------------------ override


def _require(args: argparse.Namespace, *names: str, why: str) -> None:
    for name in names:
        if getattr(args, name) is None:
            raise UsageError(f"--{name} is required {why}")


def _refuse(args: argparse.Namespace, names: Sequence[str], why: str) -> None:
    for name in names:
        value = getattr(args, name)
        if value not in (None, False):
            shown = {"region_filter": "--region", "region": "REGION", "symbol": "SYMBOL", "date": "DATE",
                     "field": "FIELD"}.get(name, f"--{name}")
            raise UsageError(f"{shown} does not go with {why}")


POSITIONALS = ("region", "symbol", "date", "field")


def _override(args: argparse.Namespace) -> int:
    if args.list:
        _refuse(args, [*POSITIONALS, "source", "value", "reason", "author", "until"], "--list")
        if args.status is not None and args.status not in STATUSES:
            raise UsageError(f"--status {args.status!r} is not one of {', '.join(STATUSES)}")
        return _list(_open_lake(), args.region_filter, args.status)
    if args.revoke is not None:
        _refuse(args, [*POSITIONALS, "source", "value", "until", "region_filter", "status"], "--revoke")
        _require(args, "reason", "author", why="to revoke an override")
        ctx = _context(args.now)
        revoked = revoke_override(ctx, args.revoke, reason=args.reason, author=args.author)
        print(f"override {revoked.override_id} revoked: {revoked.region} {revoked.symbol} {revoked.trade_date} "
              f"{revoked.decision}")
        print(f"  bar: {revoked.change()}")
        print(f"  lake: {ctx.lake.catalog.describe()}")
        return 0
    if args.expire:
        _refuse(args, [*POSITIONALS, "source", "value", "reason", "author", "until", "status"], "--expire")
        _known_region(args.region_filter)
        ctx = _context(args.now)
        active = list_overrides(ctx.lake, status="active")["region"].astype(str)
        regions = [args.region_filter] if args.region_filter else sorted(set(active))
        expired: list[Override] = []
        for region in regions:
            expired += expire_overrides(ctx, region)
        for o in expired:
            print(f"override {o.override_id} expired (until {o.expires_on}): {o.region} {o.symbol} {o.trade_date} "
                  f"{o.decision}; bar: {o.change()}")
        print(f"{len(expired)} override(s) expired" + (f" in {', '.join(regions)}" if regions else ""))
        return 0
    _refuse(args, ["region_filter", "status"], "making an override (give REGION as the first argument)")
    missing = [name.upper() for name in POSITIONALS if getattr(args, name) is None]
    if missing:
        raise UsageError(f"the override needs {' '.join(POSITIONALS).upper()}: {' '.join(missing)} missing "
                         "(or --list, --revoke ID, --expire)")
    if args.source is not None and args.value is not None:
        raise UsageError("give --source NAME or --value X, not both")
    if args.source is None and args.value is None:
        raise UsageError("give --source NAME (take a source's value) or --value X (give the value)")
    _require(args, "reason", "author", why="to make an override")
    ctx = _context(args.now)
    made = make_override(ctx, region=args.region, symbol=args.symbol, trade_date=args.date,
                         field=args.field, source=args.source, value=args.value, reason=args.reason,
                         author=args.author, until=args.until)
    until = f"until {made.expires_on} (exclusive)" if made.expires_on else "until revoked"
    print(f"override {made.override_id} made: {made.region} {made.symbol} {made.trade_date} {made.decision}, {until}")
    print(f"  by {made.author}: {made.reason}")
    print(f"  bar: {made.change()}")
    print(f"  lake: {ctx.lake.catalog.describe()}")
    print(f"  to revoke it: {PROG} override --revoke {made.override_id} --reason TEXT --author NAME")
    return 0


def _text(value: object) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    return str(value)


def _list(lake: Lakehouse, region: str | None, status: str | None) -> int:
    frame = list_overrides(lake, region=region, status=status)
    for row in frame.itertuples(index=False):
        decision = _text(row.chosen_source) or f"{float(row.value):.10g}"
        until = f" until {pd.Timestamp(row.expires_on).date()}" if _text(row.expires_on) else ""
        print(f"{row.override_id}  {row.status:<7}  {row.region} {row.symbol} {pd.Timestamp(row.trade_date).date()} "
              f"{row.field} = {decision}{until}  by {row.author} at "
              f"{pd.Timestamp(row.created_at).tz_convert('UTC'):%Y-%m-%dT%H:%MZ}: {row.reason}")
    print(f"{len(frame)} override(s)")
    return 0


# ------------------------------------------------------------------------------------------------ exceptions


def resolving_command(row: Any) -> str | None:
    """The `ticklake override` command that resolves an exception with the source that is not its current
    winner; None when no other source has a value."""
    try:
        values = json.loads(_text(row.source_values) or "{}")
    except ValueError:
        values = {}
    winner = _text(row.chosen_source)
    others = [s for s, v in values.items() if s not in (winner, REFERENCE) and v is not None]
    if not others:
        return None
    field = str(row.field)
    field = field if field in COMPARED_FIELDS else "bar"  # a split: take the other source's whole bar
    day = pd.Timestamp(row.trade_date).date()
    return (f"{PROG} override {_q(row.region)} {_q(row.symbol)} {day} {field} "
            f"--source {_q(others[0])} --reason TEXT --author NAME")


def _exceptions(args: argparse.Namespace) -> int:
    _known_region(args.region)
    frame = list_exceptions(_open_lake(), region=args.region, status=None if args.status == "all" else args.status)
    for row in frame.itertuples(index=False):
        diff = f"{row.rel_diff:.4%}" if _text(row.rel_diff) else "n/a"
        print(f"{row.region} {row.symbol} {pd.Timestamp(row.trade_date).date()} {row.field}  {row.status}  "
              f"values {row.source_values}  diff {diff}  golden takes {row.chosen_source} ({row.rule})")
        if row.status == "overridden":
            print(f"  decided by {row.override_id} (revoke: {PROG} override --revoke {row.override_id} "
                  "--reason TEXT --author NAME)")
            continue
        command = resolving_command(row)
        print(f"  resolve: {command}" if command else "  resolve: no other source has a value; give one with "
              f"{PROG} override {_q(row.region)} {_q(row.symbol)} {pd.Timestamp(row.trade_date).date()} "
              f"{row.field} --value X --reason TEXT --author NAME")
    print(f"{len(frame)} exception(s)" + ("" if args.status == "all" else f" {args.status}"))
    return 0


# ------------------------------------------------------------------------------------------------ serve


def _serve(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        raise UsageError(f"--port {args.port} is not a port (1 to 65535)")
    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    return server.serve(args.host, args.port, args.workers)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        return _override(args) if args.command == "override" else _exceptions(args)
    except (UsageError, OverrideError, ConfigError, SourcesFileError, CatalogError, OldLayoutError,
            TenantsFileError) as exc:
        # a mistake (in the command, the environment or the sources file): nothing was written
        print(f"{PROG} {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except LakeStorageError as exc:
        print(f"{PROG} {args.command}: {_one_line(exc)}", file=sys.stderr)
        return 1


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


if __name__ == "__main__":
    sys.exit(main())
