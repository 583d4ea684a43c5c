"""iTick fetchers, one module per dataset (query -> extract -> transform; see ticklake/sources/contract.py).

`FETCHERS` maps a dataset name to a factory taking the `ITickSource`; `ITickSource.fetcher(name)` looks here.
A new dataset from iTick is one module here plus one line in `FETCHERS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ticklake.sources.itick.fetchers.corporate_actions import CorporateActionsFetcher
from ticklake.sources.itick.fetchers.fundamentals_daily import FundamentalsDailyFetcher
from ticklake.sources.itick.fetchers.fx_daily import FxDailyFetcher
from ticklake.sources.itick.fetchers.klines_daily import KlinesDailyFetcher
from ticklake.sources.itick.fetchers.listings import SecurityMasterFetcher
from ticklake.sources.itick.fetchers.trading_calendar import TradingCalendarFetcher

if TYPE_CHECKING:
    from ticklake.sources.contract import Fetcher
    from ticklake.sources.itick.source import ITickSource

FETCHERS: dict[str, Callable[[ITickSource], Fetcher[Any, Any]]] = {
    "klines_daily": KlinesDailyFetcher,
    "trading_calendar": TradingCalendarFetcher,
    "security_master": SecurityMasterFetcher,
    "corporate_actions": CorporateActionsFetcher,
    "fundamentals_daily": FundamentalsDailyFetcher,
    "fx_daily": FxDailyFetcher,
}
