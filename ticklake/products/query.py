"""A tenant's request turned into one SQL statement that can only read what its grant allows.

The grant is enforced here, where the query is built, never by filtering an answer afterwards: every identifier in
the statement comes from the data dictionary (a requested name that is not a granted field is refused before any
SQL exists), every value (regions, symbols, dates) is a bound parameter, and the regions and dates are always
bounded by the grant. The deliveries and the read API both build their statements here, so the two cannot disagree
about what a tenant may see.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass

from ticklake.dictionary import SYMBOL_PATTERN, Dataset, Field
from ticklake.dictionary.fundamentals import FUNDAMENTALS_DAILY, FX_DAILY
from ticklake.dictionary.reference_data import SECURITY_MASTER
from ticklake.markets import MARKETS
from ticklake.products.tenants import Product, Tenant

MAX_SYMBOLS = 200  # per request: a whole market is a delivery, not an API call
FX_MAX_AGE_DAYS = 7  # an FX close older than this converts nothing (the value is null, never a stale guess)
MONEY_UNIT = "listing currency"  # the unit prefix of every field that a tenant on USD receives converted

_SYMBOL = re.compile(SYMBOL_PATTERN)
_FIELD = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class RequestError(ValueError):
    """A malformed request (400): `rule` says what is wrong and how to ask instead."""

    status = 400

    def __init__(self, rule: str) -> None:
        super().__init__(rule)
        self.rule = rule


class GrantError(RequestError):
    """A well-formed request for something outside the tenant's grant (403): `rule` names the grant it exceeds."""

    status = 403


@dataclass(frozen=True)
class Request:
    """What a tenant asks for. None: everything its grant allows on that axis."""

    dataset: str
    fields: tuple[str, ...] | None = None
    symbols: tuple[str, ...] | None = None
    start: dt.date | None = None
    end: dt.date | None = None
    regions: tuple[str, ...] | None = None

    @classmethod
    def parse(cls, dataset: str, params: Mapping[str, str]) -> Request:
        """From query-string values (`fields=close,volume&symbols=AAPL,MSFT&start=2024-01-02&regions=US`)."""
        return cls(dataset=dataset,
                   fields=_names(params.get("fields"), "fields", _FIELD, "field names (close,volume)"),
                   symbols=_names(params.get("symbols"), "symbols", _SYMBOL, "instrument codes (AAPL,MSFT)"),
                   start=_date(params.get("start"), "start"), end=_date(params.get("end"), "end"),
                   regions=_names(params.get("regions"), "regions", re.compile(r"^[A-Z]{2,3}$"),
                                  "region codes (US,HK)"))


def _names(raw: str | None, what: str, shape: re.Pattern, example: str) -> tuple[str, ...] | None:
    if raw is None:
        return None
    names = [n.strip() for n in raw.split(",")]
    if not raw.strip() or any(not n for n in names):
        raise RequestError(f"{what} is a comma-separated list of {example} with no empty entries; omit {what} for "
                           "everything your grant allows")
    for name in names:
        if not shape.match(name):
            shown = name if len(name) <= 40 else name[:40] + "..."
            raise RequestError(f"{what}: {shown!r} is not one of {example}"
                               + ("; omit fields for every field your grant holds" if name == "*" else ""))
    return tuple(dict.fromkeys(names))


def _date(raw: str | None, what: str) -> dt.date | None:
    if raw is None:
        return None
    try:
        return dt.date.fromisoformat(raw.strip())
    except ValueError:
        raise RequestError(f"{what}={raw[:40]!r} is not a date: use YYYY-MM-DD") from None


@dataclass(frozen=True)
class Column:
    """A delivered column: its dictionary field as the tenant receives it (a converted price says USD)."""

    name: str
    type: str
    description: str
    unit: str | None
    nullable: bool

    @property
    def doc(self) -> str:
        return f"{self.description} [{self.unit}]" if self.unit else self.description


@dataclass(frozen=True)
class Query:
    """One statement and its parameters, and what it returns."""

    tenant: str
    product: Product
    sql: str
    params: tuple
    columns: tuple[Column, ...]
    regions: tuple[str, ...]
    start: dt.date | None
    end: dt.date | None
    symbols: tuple[str, ...] | None

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _table(dataset: Dataset, snapshot: int | None, alias: str = "") -> str:
    """The table read at `snapshot`; an alias goes between the name and AT (DuckDB refuses `t AT (...) b`)."""
    return _q(dataset.name) + (f" {alias}" if alias else "") + (
        f" AT (VERSION => {int(snapshot)})" if snapshot is not None else "")


def converted(tenant: Tenant, field: Field) -> bool:
    """Whether the tenant receives this field converted to USD."""
    return tenant.currency == "USD" and (field.unit or "").startswith(MONEY_UNIT)


def column(tenant: Tenant, field: Field) -> Column:
    if converted(tenant, field):
        return Column(field.name, field.type, f"{field.description}, converted to USD at fx_daily's usd_per_unit of "
                      f"the date or the last FX day before it (null where none is within {FX_MAX_AGE_DAYS} days)",
                      "USD" + field.unit[len(MONEY_UNIT):], True)
    if tenant.currency == "USD" and field.name == "currency":
        return Column(field.name, field.type, "USD wherever the row's values were converted (null where no FX close "
                      "was found)", None, True)
    return Column(field.name, field.type, field.description, field.unit, field.nullable)


def plan(tenant: Tenant, request: Request, *, today: dt.date, snapshot: int | None = None,
         max_symbols: int | None = MAX_SYMBOLS) -> Query:
    """The statement answering `request` within `tenant`'s grant on `today` (the rolling window's end), read at
    lake `snapshot` (None: the transaction's). Raises RequestError (400) or GrantError (403) naming the rule."""
    product = tenant.products.get(request.dataset)
    if product is None:
        raise GrantError(f"dataset {request.dataset!r} is not in tenant {tenant.name}'s grant (granted: "
                         f"{', '.join(tenant.products)})")
    table = product.table
    fields = _fields(tenant, product, request.fields)
    regions = request.regions or tenant.regions
    outside = [r for r in regions if r not in tenant.regions]
    if outside:
        raise GrantError(f"region {outside[0]} is outside tenant {tenant.name}'s grant (regions: "
                         f"{', '.join(tenant.regions)})")
    start, end = _dates(tenant, table, request, today)
    symbols = request.symbols
    if symbols is not None:
        if "symbol" not in table.columns:
            raise RequestError(f"{request.dataset} has no symbol to select by: omit symbols")
        if max_symbols is not None and len(symbols) > max_symbols:
            raise RequestError(f"at most {max_symbols} symbols per request ({len(symbols)} given): split the request, "
                               "or receive the whole market as a delivery")

    where = [f"b.{_q('region')} IN ({', '.join('?' for _ in regions)})"]
    params: list = list(regions)
    date = table.date_column
    if date and start is not None:
        where.append(f"b.{_q(date)} >= ?")
        params.append(start)
    if date and end is not None:
        where.append(f"b.{_q(date)} <= ?")
        params.append(end)
    if symbols is not None:
        where.append(f"b.{_q('symbol')} IN ({', '.join('?' for _ in symbols)})")
        params += symbols

    chosen = [table.field(f) for f in fields]
    joins = ""
    join_params: list = []
    if tenant.currency == "USD" and any(converted(tenant, f) or f.name == "currency" for f in chosen):
        joins, join_params = _fx_joins(table, regions, snapshot)
        rate = (f"CASE WHEN ccy.currency = 'USD' THEN 1.0 WHEN b.{_q(date)} - fx.fx_date <= {FX_MAX_AGE_DAYS} "
                "THEN fx.usd_per_unit END")
    select = []
    for f in chosen:
        if converted(tenant, f):
            select.append(f"b.{_q(f.name)} * ({rate}) AS {_q(f.name)}")
        elif tenant.currency == "USD" and f.name == "currency":
            select.append(f"CASE WHEN ({rate}) IS NOT NULL THEN 'USD' END AS {_q(f.name)}")
        else:
            select.append(f"b.{_q(f.name)}")
    order = ", ".join(f"b.{_q(c)}" for c in (table.sort_by or table.key))
    sql = (f"SELECT {', '.join(select)} FROM {_table(table, snapshot, 'b')}{joins} WHERE {' AND '.join(where)} "
           f"ORDER BY {order}")
    return Query(tenant=tenant.name, product=product, sql=sql, params=(*join_params, *params),
                 columns=tuple(column(tenant, f) for f in chosen), regions=tuple(regions), start=start, end=end,
                 symbols=symbols)


def _fields(tenant: Tenant, product: Product, requested: tuple[str, ...] | None) -> tuple[str, ...]:
    if requested is None:
        return product.fields
    for name in requested:
        if name not in product.table.columns:
            raise RequestError(f"{product.name} has no field {name!r} (its fields: "
                               f"{', '.join(product.table.columns)})")
        if name not in product.fields:
            raise GrantError(f"field {name!r} of {product.name} is not in tenant {tenant.name}'s grant (granted: "
                             f"{', '.join(product.fields)})")
    return requested


def _dates(tenant: Tenant, table: Dataset, request: Request,
           today: dt.date) -> tuple[dt.date | None, dt.date | None]:
    first, last = tenant.window.bounds(today)
    start, end = request.start, request.end
    if (start is not None or end is not None) and not table.date_column:
        raise RequestError(f"{request.dataset} has no date to select by: omit start and end")
    if start is not None and end is not None and start > end:
        raise RequestError(f"start {start} is after end {end}")
    for value, what in ((start, "start"), (end, "end")):
        if value is not None and ((first is not None and value < first) or (last is not None and value > last)):
            raise GrantError(f"{what} {value} is outside tenant {tenant.name}'s window ({tenant.window.describe()}: "
                             f"{first or 'the beginning'} to {last or 'today'})")
    return start or first, end or last


def _fx_joins(table: Dataset, regions: tuple[str, ...], snapshot: int | None) -> tuple[str, list]:
    """The currency of each row and the FX close of its date or the last one before it, bounded to the requested
    regions. A row's currency is its own `currency`, else the symbol's latest in the security master, else in its
    latest valuation snapshot, else its market's (the rule `valuation_daily` converts by)."""
    marks = ", ".join("?" for _ in regions)
    params: list = []
    own = 'b."currency", ' if "currency" in table.columns else ""
    markets = ", ".join("(?, ?)" for _ in regions)
    ccy = (f" LEFT JOIN (SELECT region, symbol, arg_max(currency, valid_from) AS currency FROM "
           f"{_table(SECURITY_MASTER, snapshot)} WHERE region IN ({marks}) AND currency IS NOT NULL "
           f"GROUP BY region, symbol) sm ON sm.region = b.region AND sm.symbol = b.symbol"
           f" LEFT JOIN (SELECT region, symbol, arg_max(currency, as_of) AS currency FROM "
           f"{_table(FUNDAMENTALS_DAILY, snapshot)} WHERE region IN ({marks}) AND currency IS NOT NULL "
           f"GROUP BY region, symbol) fd ON fd.region = b.region AND fd.symbol = b.symbol"
           f" LEFT JOIN (VALUES {markets}) mk(region, currency) ON mk.region = b.region"
           f" CROSS JOIN LATERAL (SELECT coalesce({own}sm.currency, fd.currency, mk.currency) AS currency) ccy")
    params += [*regions, *regions, *(v for r in regions for v in (r, MARKETS[r].currency))]
    fx = (f" ASOF LEFT JOIN (SELECT region, currency, trade_date AS fx_date, usd_per_unit "
          f"FROM {_table(FX_DAILY, snapshot)} WHERE region IN ({marks})) fx "
          f"ON fx.region = b.region AND fx.currency = ccy.currency AND b.{_q(table.date_column)} >= fx.fx_date")
    params += regions
    return ccy + fx, params
