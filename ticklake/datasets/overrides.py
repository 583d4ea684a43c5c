"""A person's decisions about golden bars: make, revoke and expire overrides (`golden_overrides`), each change
committed together with the re-derived month it decides, so no reader ever sees the override without its bar or
the bar without its override.

An override chooses a source for one field of a bar (or for the whole `bar`), or gives one field a value; with a
reason and an author, optionally until an exchange-local date (`expires_on`, the first date it no longer applies).
Rows are never deleted: a revoked override keeps its row with status `revoked`, and who revoked it, when and why is
appended to its `reason`; an expired one keeps its row with status `expired`.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ticklake.datasets.context import RunContext
from ticklake.datasets.golden_copy import golden_part, golden_stage
from ticklake.dictionary.frames import with_lineage
from ticklake.dictionary.market_data import COMPARED_FIELDS
from ticklake.dictionary.operations import GOLDEN_OVERRIDES
from ticklake.dictionary.schemas import validate
from ticklake.storage import Lakehouse
from ticklake.storage.frames import fetch_frame, from_arrow, to_arrow
from ticklake.storage.write_modes import contents
from ticklake.storage.writes import Part, Staged, load, stage

FIELDS = (*COMPARED_FIELDS, "bar")  # what an override decides: one field, or the whole bar (from a source)
STATUSES = ("active", "expired", "revoked")
ACTIVE, EXPIRED, REVOKED = STATUSES
LINEAGE_SOURCE = "ticklake"  # the `source` of every golden_overrides row: a person, through ticklake
BAR_COLUMNS = (*COMPARED_FIELDS, "rule", "source")  # what `before` and `after` show of a golden bar


class OverrideError(ValueError):
    """A mistake in what was asked (the argument and what is wrong with it): nothing was written."""


@dataclass(frozen=True)
class Override:
    """One golden_overrides row, and (when it was just made, revoked or expired) the golden bar before and after."""

    override_id: str
    region: str
    symbol: str
    trade_date: dt.date
    field: str
    chosen_source: str | None
    value: float | None
    reason: str
    author: str
    created_at: dt.datetime
    expires_on: dt.date | None
    status: str
    status_at: dt.datetime
    before: Mapping[str, Any] | None = field(default=None, compare=False)
    after: Mapping[str, Any] | None = field(default=None, compare=False)

    @property
    def month(self) -> str:
        return self.trade_date.strftime("%Y-%m")

    @property
    def decision(self) -> str:
        """`close = quandl`, `close = 101.25`, `bar = quandl`."""
        return f"{self.field} = {self.chosen_source if self.chosen_source else _number(self.value)}"

    def change(self) -> str:
        """The bar before -> after, for the fields the override decides (and how the bar was decided)."""
        if self.before is None or self.after is None:
            return "(the bar was not read)"
        shown = list(COMPARED_FIELDS) if self.field == "bar" else [self.field]
        parts = [f"{name} {_number(self.before.get(name))} -> {_number(self.after.get(name))}" for name in shown]
        parts.append(f"rule {self.before.get('rule')} -> {self.after.get('rule')}")
        parts.append(f"source {self.before.get('source')} -> {self.after.get('source')}")
        return ", ".join(parts)


def _number(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "null"
    return f"{float(value):.10g}"


# ------------------------------------------------------------------------------------------------ validation


def _date(name: str, value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise OverrideError(f"{name}={value!r} is not a date (YYYY-MM-DD)")


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise OverrideError(f"{name} must not be empty: say {'why' if name == 'reason' else 'who decides'}")
    return value.strip()


def _region(ctx: RunContext, region: Any) -> tuple[str, dt.date]:
    if not isinstance(region, str) or not region.strip():
        raise OverrideError("region must not be empty (US, HK, SH, JP, ...)")
    try:
        return region.strip(), ctx.local_date(region.strip())
    except ValueError as exc:
        raise OverrideError(f"region={region!r}: {exc}") from None


def _value(field_name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise OverrideError(f"value={value!r} is not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise OverrideError(f"value={value!r} is not a number") from None
    if not math.isfinite(number):
        raise OverrideError(f"value={value!r} must be a finite number")
    if field_name == "volume":
        if number < 0:
            raise OverrideError(f"value={_number(number)} must be >= 0 for volume")
    elif number <= 0:
        raise OverrideError(f"value={_number(number)} must be > 0 for a price ({field_name})")
    return number


def check_bar(bar: Mapping[str, float], field_name: str, value: float) -> str | None:
    """Why `bar` with `field_name` set to `value` is not a possible bar (low <= open, close <= high), or None."""
    new = {name: float(bar[name]) for name in ("open", "high", "low", "close")}
    if field_name not in new:
        return None
    new[field_name] = value
    o, h, lo, c = new["open"], new["high"], new["low"], new["close"]
    shown = f"open={_number(o)}, high={_number(h)}, low={_number(lo)}, close={_number(c)}"
    if lo > h:
        return f"low <= high breaks ({shown})"
    if lo > min(o, c):
        return f"low <= min(open, close) breaks ({shown})"
    if h < max(o, c):
        return f"high >= max(open, close) breaks ({shown})"
    return None


BAR_SQL = """
SELECT {columns} FROM {table}
WHERE region = $region AND symbol = $symbol AND trade_date = $day {extra}
"""


def golden_bar(lake: Lakehouse, region: str, symbol: str, trade_date: dt.date) -> dict[str, Any] | None:
    """The golden bar (klines_daily) of `symbol` on `trade_date`: its fields, rule and winner; None without one."""
    return _bar(lake, "klines_daily", region, symbol, trade_date)


def _bar(lake: Lakehouse, table: str, region: str, symbol: str, day: dt.date, source: str | None = None
         ) -> dict[str, Any] | None:
    params: dict[str, Any] = {"region": region, "symbol": symbol, "day": day}
    extra = ""
    if source is not None:
        params["source"] = source
        extra = "AND source = $source"
    with lake.reader() as con:
        columns = ", ".join(BAR_COLUMNS if source is None else COMPARED_FIELDS)
        cursor = con.execute(BAR_SQL.format(columns=columns, table=table, extra=extra), params)
        row = cursor.fetchone()
        names = [d[0] for d in cursor.description]
    return None if row is None else dict(zip(names, row, strict=True))


def _sources_of(lake: Lakehouse, region: str, symbol: str, day: dt.date) -> list[str]:
    with lake.reader() as con:
        rows = con.execute("SELECT DISTINCT source FROM klines_daily_by_source WHERE region = $region AND "
                           "symbol = $symbol AND trade_date = $day ORDER BY 1",
                           {"region": region, "symbol": symbol, "day": day}).fetchall()
    return [r[0] for r in rows]


# ------------------------------------------------------------------------------------------------ the rows


def _rows_frame(overrides: Sequence[Override]) -> pd.DataFrame:
    """golden_overrides rows (without lineage) in the dictionary's dtypes."""
    frame = pd.DataFrame({
        "override_id": [o.override_id for o in overrides],
        "region": [o.region for o in overrides],
        "symbol": [o.symbol for o in overrides],
        "trade_date": [pd.Timestamp(o.trade_date) for o in overrides],
        "field": [o.field for o in overrides],
        "chosen_source": [o.chosen_source for o in overrides],
        "value": [float("nan") if o.value is None else float(o.value) for o in overrides],
        "reason": [o.reason for o in overrides],
        "author": [o.author for o in overrides],
        "created_at": [pd.Timestamp(o.created_at).tz_convert("UTC") for o in overrides],
        "expires_on": [pd.NaT if o.expires_on is None else pd.Timestamp(o.expires_on) for o in overrides],
        "status": [o.status for o in overrides],
        "status_at": [pd.Timestamp(o.status_at).tz_convert("UTC") for o in overrides],
    })
    frame = frame.astype({"trade_date": "datetime64[ms]", "expires_on": "datetime64[ms]",
                          "value": "float64", "created_at": "datetime64[ms, UTC]", "status_at": "datetime64[ms, UTC]"})
    for column in ("override_id", "region", "symbol", "field", "chosen_source", "reason", "author", "status"):
        frame[column] = pd.array([None if v is None else str(v) for v in frame[column]], dtype="string")
    return frame


def _from_row(row: Mapping[str, Any]) -> Override:
    def opt(value: Any) -> Any:
        return None if value is None or (not isinstance(value, str) and pd.isna(value)) else value

    expires = opt(row["expires_on"])
    return Override(
        override_id=str(row["override_id"]), region=str(row["region"]), symbol=str(row["symbol"]),
        trade_date=pd.Timestamp(row["trade_date"]).date(), field=str(row["field"]),
        chosen_source=opt(row["chosen_source"]),
        value=None if opt(row["value"]) is None else float(row["value"]),
        reason=str(row["reason"]), author=str(row["author"]),
        created_at=_utc(row["created_at"]), expires_on=None if expires is None else pd.Timestamp(expires).date(),
        status=str(row["status"]), status_at=_utc(row["status_at"]))


def _utc(value: Any) -> dt.datetime:
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime()


def _staged_rows(ctx: RunContext, region: str, overrides: Sequence[Override]) -> tuple[Staged, pd.DataFrame]:
    """The region's golden_overrides partition with `overrides` upserted (by override_id), staged for the caller's
    commit; and the rows as written (what the re-derivation must already see)."""
    rows = _rows_frame(overrides)
    values = {"region": region, "source": LINEAGE_SOURCE}
    previous = ctx.lake.read_table(GOLDEN_OVERRIDES, **values)
    stored = None if previous is None else from_arrow(GOLDEN_OVERRIDES, previous)
    merged, _ = contents(GOLDEN_OVERRIDES, stored, with_lineage(rows, LINEAGE_SOURCE, ctx.run_id, ctx.now))
    validate(merged, GOLDEN_OVERRIDES)
    part = Part(values, to_arrow(GOLDEN_OVERRIDES, merged), previous=previous)
    return stage(ctx.lake, GOLDEN_OVERRIDES, [part], run_id=ctx.run_id, now=ctx.now), rows


def _commit(ctx: RunContext, region: str, overrides: Sequence[Override]) -> None:
    """The override rows and the golden months they decide, re-derived with those rows already in force, in one
    lake commit."""
    staged, rows = _staged_rows(ctx, region, overrides)
    months = sorted({o.month for o in overrides})
    derived = [golden_part(ctx, region, month, overriding=rows) for month in months]
    load(ctx.lake, Staged(staged.loads + golden_stage(ctx, region, derived).loads))


def _with_bars(ctx: RunContext, override: Override, before: Mapping[str, Any] | None) -> Override:
    after = golden_bar(ctx.lake, override.region, override.symbol, override.trade_date)
    return Override(**{**{f: getattr(override, f) for f in _ROW_FIELDS}, "before": before, "after": after})


_ROW_FIELDS = [c for c in GOLDEN_OVERRIDES.columns if c not in GOLDEN_OVERRIDES.lineage_columns]


# ------------------------------------------------------------------------------------------------ the verbs


def make_override(ctx: RunContext, *, region: str, symbol: str, trade_date: dt.date | str, field: str,
                  source: str | None = None, value: float | str | None = None, reason: str, author: str,
                  until: dt.date | str | None = None) -> Override:
    """Decide one golden bar: `field` (open, high, low, close, volume, or `bar` for all of them) takes `source`'s
    value or the given `value` (exactly one of them; `bar` needs a source), with a reason and an author, until the
    exchange-local date `until` (the first date it no longer applies; None: until revoked). The override row and
    the re-derived month commit together. Every clear mistake is an OverrideError (a ValueError) naming the argument."""
    region, today = _region(ctx, region)
    if not isinstance(symbol, str) or not symbol.strip():
        raise OverrideError("symbol must not be empty")
    symbol = symbol.strip()
    day = _date("trade_date", trade_date)
    if field not in FIELDS:
        raise OverrideError(f"field={field!r} is not one of {', '.join(FIELDS)}")
    source = source.strip() if isinstance(source, str) and source.strip() else None
    given = value is not None and not (isinstance(value, str) and not value.strip())
    if (source is None) == (not given):
        raise OverrideError("give exactly one of source (choose a source's value) or value (give the value), "
                         + ("not both" if given else "not neither"))
    if field == "bar" and source is None:
        raise OverrideError("field='bar' needs a source: a value decides one field (open, high, low, close, volume)")
    number = _value(field, value) if given else None
    reason, author = _text("reason", reason), _text("author", author)
    expires = None
    if until is not None and not (isinstance(until, str) and not until.strip()):
        expires = _date("until", until)
        if expires <= today:
            raise OverrideError(f"until={expires} must be after {region}'s local today ({today}): it is the first "
                             "date the override no longer applies")
    before = golden_bar(ctx.lake, region, symbol, day)
    if before is None:
        raise OverrideError(f"trade_date={day}: {region} {symbol} has no golden bar (klines_daily) on {day}")
    if source is not None:
        theirs = _bar(ctx.lake, "klines_daily_by_source", region, symbol, day, source)
        if theirs is None:
            had = _sources_of(ctx.lake, region, symbol, day)
            raise OverrideError(f"source={source!r} has no {region} {symbol} bar on {day} in klines_daily_by_source "
                             f"(sources with one: {', '.join(had) or 'none'})")
        if field != "bar":
            number_from_source = theirs[field]
            if number_from_source is None or (isinstance(number_from_source, float)
                                              and math.isnan(number_from_source)):
                raise OverrideError(f"source={source!r} has no {field} on {region} {symbol} {day}")
            broken = check_bar(before, field, float(number_from_source))
            if broken:
                raise OverrideError(f"source={source!r}: its {field} {_number(number_from_source)} does not fit the "
                                 f"golden bar: {broken}; choose field='bar' to take its whole bar")
    elif number is not None:
        broken = check_bar(before, field, number)
        if broken:
            raise OverrideError(f"value={_number(number)} breaks the bar: {broken}")
    now = pd.Timestamp(ctx.now).tz_convert("UTC").to_pydatetime()
    override = Override(override_id=f"ov-{uuid.uuid4().hex[:12]}", region=region, symbol=symbol, trade_date=day,
                        field=field, chosen_source=source, value=number, reason=reason, author=author,
                        created_at=now, expires_on=expires, status=ACTIVE, status_at=now)
    _commit(ctx, region, [override])
    ctx.log(f"override {override.override_id}: {region} {symbol} {day} {override.decision}")
    return _with_bars(ctx, override, before)


def find_override(lake: Lakehouse, override_id: str) -> Override | None:
    """The golden_overrides row `override_id`, or None."""
    with lake.reader() as con:
        frame = fetch_frame(con.execute("SELECT * FROM golden_overrides WHERE override_id = $id",
                                        {"id": override_id}))
    return None if frame.empty else _from_row(frame.iloc[0].to_dict())


def revoke_override(ctx: RunContext, override_id: str, *, reason: str, author: str) -> Override:
    """Revoke an active override: its row stays (status revoked, status_at now, and `; revoked by <author> at
    <instant>: <reason>` appended to its reason) and its month is re-derived from the sources, in one commit."""
    if not isinstance(override_id, str) or not override_id.strip():
        raise OverrideError("override_id must not be empty (ov-<12 hex>, as printed when it was made)")
    reason, author = _text("reason", reason), _text("author", author)
    found = find_override(ctx.lake, override_id.strip())
    if found is None:
        raise OverrideError(f"override_id={override_id!r}: no such override (`ticklake override --list` lists them)")
    if found.status != ACTIVE:
        raise OverrideError(f"override_id={override_id!r} is {found.status} since {found.status_at:%Y-%m-%d %H:%M} "
                         "UTC: only an active override can be revoked")
    now = pd.Timestamp(ctx.now).tz_convert("UTC").to_pydatetime()
    before = golden_bar(ctx.lake, found.region, found.symbol, found.trade_date)
    revoked = Override(**{**{f: getattr(found, f) for f in _ROW_FIELDS}, "status": REVOKED, "status_at": now,
                          "reason": f"{found.reason}; revoked by {author} at {now:%Y-%m-%dT%H:%M:%SZ}: {reason}"})
    _commit(ctx, found.region, [revoked])
    ctx.log(f"override {found.override_id} revoked by {author}")
    return _with_bars(ctx, revoked, before)


DUE_SQL = """
SELECT * FROM golden_overrides
WHERE region = $region AND status = 'active' AND expires_on IS NOT NULL AND expires_on <= $today
ORDER BY created_at, override_id
"""


def expire_overrides(ctx: RunContext, region: str) -> list[Override]:
    """Mark the region's active overrides whose `expires_on` is on or before its local today as expired, and
    re-derive their months, in one commit; the overrides expired (none: nothing was written)."""
    region, today = _region(ctx, region)
    with ctx.lake.reader() as con:
        frame = fetch_frame(con.execute(DUE_SQL, {"region": region, "today": today}))
    if frame.empty:
        return []
    now = pd.Timestamp(ctx.now).tz_convert("UTC").to_pydatetime()
    due = [_from_row(row) for row in frame.to_dict("records")]
    befores = {o.override_id: golden_bar(ctx.lake, region, o.symbol, o.trade_date) for o in due}
    expired = [Override(**{**{f: getattr(o, f) for f in _ROW_FIELDS}, "status": EXPIRED, "status_at": now})
               for o in due]
    _commit(ctx, region, expired)
    ctx.log(f"{len(expired)} {region} override(s) expired: {', '.join(o.override_id for o in expired)}")
    return [_with_bars(ctx, o, befores[o.override_id]) for o in expired]


LIST_SQL = """
SELECT override_id, region, symbol, trade_date, field, chosen_source, value, reason, author, created_at, expires_on,
       status, status_at
FROM golden_overrides
WHERE ($region IS NULL OR region = $region) AND ($status IS NULL OR status = $status)
ORDER BY created_at, override_id
"""


def list_overrides(lake: Lakehouse, region: str | None = None, status: str | None = None) -> pd.DataFrame:
    """golden_overrides (every status unless `status` is given), oldest first."""
    if status is not None and status not in STATUSES:
        raise OverrideError(f"status={status!r} is not one of {', '.join(STATUSES)}")
    with lake.reader() as con:
        return fetch_frame(con.execute(LIST_SQL, {"region": region, "status": status}))


EXCEPTIONS_SQL = """
SELECT region, symbol, trade_date, field, source_values, rel_diff, tolerance, chosen_source, rule, status,
       opened_at, updated_at, override_id
FROM golden_exceptions
WHERE ($region IS NULL OR region = $region) AND ($status IS NULL OR status = $status)
ORDER BY region, trade_date, symbol, field
"""


def list_exceptions(lake: Lakehouse, region: str | None = None, status: str | None = None) -> pd.DataFrame:
    """golden_exceptions (every status unless `status` is given: open, overridden, closed)."""
    if status is not None and status not in ("open", "overridden", "closed"):
        raise OverrideError(f"status={status!r} is not one of open, overridden, closed")
    with lake.reader() as con:
        return fetch_frame(con.execute(EXCEPTIONS_SQL, {"region": region, "status": status}))
