"""Overrides of golden bars from the UI: the `golden_override` job (the same fields as `ticklake override`), and
the daily expiry of overrides whose date has come (`expire_golden_overrides`, scheduled `golden_override_expiry`).

Op jobs, not assets: the library's `make_override` and `expire_overrides` commit the golden_overrides rows together
with the re-derived klines_daily months (history and ledger included), exactly as the command line does. The run's
instant is the `clock` resource's (a replay or a test sets it; default the wall clock).
"""

import json

import dagster as dg
from pydantic import Field

from assets.factory import arbitration_policy
from resources.clock import ClockResource
from resources.itick import ITickResource
from resources.storage import StorageResource
from ticklake import settings
from ticklake.datasets.context import RunContext
from ticklake.datasets.overrides import Override, OverrideError, expire_overrides, list_overrides, make_override

KIND_TAG = {"ticklake/kind": "override"}


class GoldenOverrideConfig(dg.Config):
    """One override, as `ticklake override REGION SYMBOL DATE FIELD (--source | --value) --reason --author
    [--until]` takes it."""

    region: str = Field(description="The bar's region (US, HK, SH, JP, ...)")
    symbol: str = Field(description="The bar's symbol, as stored")
    trade_date: str = Field(description="The bar's session, YYYY-MM-DD (exchange-local)")
    field: str = Field(description="What is decided: open, high, low, close, volume, or bar (the whole bar, from a "
                                   "source)")
    source: str | None = Field(default=None, description="Take this source's value (give this or value)")
    value: float | None = Field(default=None, description="Give this value (give this or source)")
    reason: str = Field(description="Why, in the author's words")
    author: str = Field(description="Who decides")
    until: str | None = Field(default=None, description="The first exchange-local date (YYYY-MM-DD) the override "
                                                        "no longer applies; default until revoked")


def _context(context: dg.OpExecutionContext, storage: StorageResource, clock: ClockResource,
             itick: ITickResource) -> RunContext:
    return RunContext(storage.lakehouse(), context.run_id, clock.instant(), log=context.log.info,
                      policy=arbitration_policy(itick.source_name))


def _bar_metadata(override: Override) -> dict[str, dg.MetadataValue]:
    return {
        "override_id": dg.MetadataValue.text(override.override_id),
        "bar": dg.MetadataValue.text(f"{override.region} {override.symbol} {override.trade_date}"),
        "decision": dg.MetadataValue.text(override.decision),
        "change": dg.MetadataValue.text(override.change()),
        "before": dg.MetadataValue.json(json.loads(json.dumps(dict(override.before or {}), default=str))),
        "after": dg.MetadataValue.json(json.loads(json.dumps(dict(override.after or {}), default=str))),
    }


@dg.op(out=dg.Out(dg.Nothing), tags=KIND_TAG,
       description="Make one override of a golden bar and re-derive its month, in one lake commit")
def make_golden_override(context: dg.OpExecutionContext, config: GoldenOverrideConfig, storage: StorageResource,
                         clock: ClockResource, itick: ITickResource) -> None:
    try:
        made = make_override(_context(context, storage, clock, itick), region=config.region, symbol=config.symbol,
                             trade_date=config.trade_date, field=config.field, source=config.source,
                             value=config.value, reason=config.reason, author=config.author, until=config.until)
    except OverrideError as exc:  # a mistake in the config: nothing was written
        raise dg.Failure(description=f"golden_override refused: {exc}") from None
    context.log.info(f"override {made.override_id}: {made.decision}; {made.change()}")
    context.add_output_metadata({
        **_bar_metadata(made),
        "expires_on": dg.MetadataValue.text(str(made.expires_on) if made.expires_on else "until revoked"),
        "revoke_with": dg.MetadataValue.text(f"ticklake override --revoke {made.override_id} --reason TEXT "
                                             "--author NAME"),
    })


@dg.job(name="golden_override", tags=KIND_TAG,
        description="Decide one golden bar from the UI, as `ticklake override` does: choose a source or give a value "
                    "for one field (or a source for the whole bar), with a reason and an author, optionally until a "
                    "date. The override, the re-derived bar, its history and the ledger commit together.")
def golden_override():
    make_golden_override()


@dg.op(out=dg.Out(dg.Nothing), tags=KIND_TAG,
       description="Mark every active override whose expires_on is on or before its region's local today as "
                   "expired, and re-derive the months they decided")
def expire_golden_overrides_op(context: dg.OpExecutionContext, storage: StorageResource, clock: ClockResource,
                               itick: ITickResource) -> None:
    ctx = _context(context, storage, clock, itick)
    active = list_overrides(ctx.lake, status="active")
    regions = sorted(set(settings.regions()) | set(active["region"].astype(str)))
    expired: list[Override] = []
    for region in regions:
        expired += expire_overrides(ctx, region)
    context.log.info(f"{len(expired)} override(s) expired in {', '.join(regions)}")
    metadata: dict[str, dg.MetadataValue] = {"expired": dg.MetadataValue.int(len(expired)),
                                             "regions": dg.MetadataValue.text(", ".join(regions))}
    if expired:
        lines = ["| override | bar | decision | until | change |", "|---|---|---|---|---|"]
        lines += [f"| {o.override_id} | {o.region} {o.symbol} {o.trade_date} | {o.decision} | {o.expires_on} | "
                  f"{o.change()} |" for o in expired]
        metadata["overrides"] = dg.MetadataValue.md("\n".join(lines))
    context.add_output_metadata(metadata)


@dg.job(name="expire_golden_overrides", tags=KIND_TAG,
        description="Expire the overrides whose date has come (status expired; the row stays) and re-derive the "
                    "golden bars they decided")
def expire_golden_overrides():
    expire_golden_overrides_op()


# 07:00 UTC is on the same date in every default region (US 02:00-03:00, HK/SH 15:00, JP 16:00) and after each
# one's midnight: an override until D is marked expired on D, everywhere.
golden_override_expiry = dg.ScheduleDefinition(
    name="golden_override_expiry", job=expire_golden_overrides, cron_schedule="0 7 * * *", execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Daily: expire the overrides whose date has come and re-derive the golden bars they decided",
)
