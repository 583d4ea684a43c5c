"""What a fetcher is asked, one frozen type per dataset: the datasets build them, every source's fetchers answer
them. They sit below the adapters so an adapter never imports a dataset module."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class BarsQuery:
    """What a klines_daily fetcher is asked: daily bars of `codes` on `sessions` of one region."""

    region: str
    codes: tuple[str, ...]
    sessions: tuple[dt.date, ...]


@dataclass(frozen=True)
class ListingsQuery:
    """One observation of a region's symbol list; `ipo_kind` is the IPO list listing dates come from (None: the
    list alone, when no listing date is wanted)."""

    region: str
    ipo_kind: str | None = "recent"  # known once, kept when a later answer omits it


@dataclass(frozen=True)
class CalendarQuery:
    region: str
    first: dt.date
    last: dt.date


@dataclass(frozen=True)
class SplitsQuery:
    region: str


@dataclass(frozen=True)
class StockInfoQuery:
    """What a fundamentals_daily fetcher is asked: these codes' current profile, stamped `as_of`."""

    region: str
    codes: tuple[str, ...]
    as_of: dt.date  # exchange-local date of the fetch, stamped on every row


@dataclass(frozen=True)
class FxQuery:
    """What an fx_daily fetcher is asked: USD rates of `currencies` (never USD) over [first, last]."""

    region: str  # the stock region whose securities use `currencies` (rows are stored under it)
    currencies: tuple[str, ...]
    first: dt.date
    last: dt.date
