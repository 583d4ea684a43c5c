"""iTick fetchers, one module per dataset (query -> extract -> transform; see ticklake/fetchers.py).

`FETCHERS` maps a dataset name to a factory taking the `ITickSource`; `ITickSource.fetcher(name)` looks here.
A new dataset from iTick is one module here plus one line in `FETCHERS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ticklake.fetchers import Fetcher
    from ticklake.itick.source import ITickSource

FETCHERS: dict[str, Callable[[ITickSource], Fetcher[Any, Any]]] = {}


def _fundamentals_daily(source: ITickSource) -> Fetcher[Any, Any]:
    from ticklake.itick.fetchers.fundamentals_daily import FundamentalsDailyFetcher

    return FundamentalsDailyFetcher(source)


def _fx_daily(source: ITickSource) -> Fetcher[Any, Any]:
    from ticklake.itick.fetchers.fx_daily import FxDailyFetcher

    return FxDailyFetcher(source)


FETCHERS["fundamentals_daily"] = _fundamentals_daily
FETCHERS["fx_daily"] = _fx_daily
