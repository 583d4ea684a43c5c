"""`fx_daily` from iTick's `/forex/klines` (region GB, kType 8 = daily): every pair a region needs in one call
per 1,000 days.

Direction: iTick quotes the majors EUR, GBP, AUD and NZD as XXXUSD (USD per unit: the close as it is) and every
other currency as USDXXX (units per USD: usd_per_unit = 1 / close). USD itself needs no pair.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ticklake.dictionary.fundamentals import FX_DAILY
from ticklake.sources.itick.wire import bars_to_frame, session_end_ms
from ticklake.sources.queries import FxQuery

if TYPE_CHECKING:
    from ticklake.sources.itick.source import ITickSource

FOREX_REGION = "GB"  # iTick serves every currency pair under region GB
DAILY_KTYPE = 8
MAX_BARS = 1000
USD_QUOTED = frozenset({"EUR", "GBP", "AUD", "NZD"})  # quoted as XXXUSD; all others as USDXXX




def pair_for(currency: str) -> tuple[str, bool]:
    """(the iTick pair quoting `currency` against USD, whether usd_per_unit is 1 / its close)."""
    if len(currency) != 3 or not currency.isalpha() or not currency.isupper() or currency == "USD":
        raise ValueError(f"no USD pair for currency {currency!r}: expected a 3-letter ISO code other than USD")
    return (f"{currency}USD", False) if currency in USD_QUOTED else (f"USD{currency}", True)


def weekday_chunks(first: dt.date, last: dt.date, size: int = MAX_BARS) -> list[tuple[dt.date, int]]:
    """(end date, weekdays) of consecutive windows covering [first, last] with at most `size` weekdays each,
    newest first: one call each (FX trades Monday to Friday)."""
    days = pd.bdate_range(first, last).date
    return [(days[max(0, end - size):end][-1], len(days[max(0, end - size):end]))
            for end in range(len(days), 0, -size)]


class FxDailyFetcher:
    dataset = FX_DAILY

    def __init__(self, source: ITickSource):
        self.source = source

    def extract(self, query: FxQuery) -> list[dict[str, Any]]:
        if not query.currencies:
            return []
        pairs = [pair_for(c)[0] for c in query.currencies]
        return [self.source.client.klines("forex", FOREX_REGION, pairs, ktype=DAILY_KTYPE, limit=count,
                                          et_ms=session_end_ms(end, "UTC", "utc"))
                for end, count in weekday_chunks(query.first, query.last)]

    def transform(self, query: FxQuery, raw: list[dict[str, Any]]) -> pd.DataFrame:
        frames = [bars_to_frame(payload, region=FOREX_REGION, timezone="UTC", convention="utc") for payload in raw]
        bars = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["symbol", "trade_date",
                                                                                          "close"])
        by_pair = {pair_for(c)[0]: c for c in query.currencies}
        bars = bars[bars["symbol"].isin(list(by_pair))]
        dates = pd.to_datetime(bars["trade_date"])
        bars = bars[(dates >= pd.Timestamp(query.first)) & (dates <= pd.Timestamp(query.last))]
        bars = bars.drop_duplicates(["symbol", "trade_date"], keep="last")
        pair = bars["symbol"].astype(str)
        close = bars["close"].astype("float64").to_numpy()
        inverted = np.array([pair_for(by_pair[p])[1] for p in pair], dtype=bool)
        frame = pd.DataFrame({
            "region": pd.array([query.region] * len(bars), dtype="string"),
            "currency": pd.array([by_pair[p] for p in pair], dtype="string"),
            "trade_date": bars["trade_date"].astype("datetime64[ms]").to_numpy(),
            "usd_per_unit": np.where(inverted, 1.0 / close, close),
            "pair": pd.array(pair.tolist(), dtype="string"),
            "pair_close": close,
        })
        return frame.sort_values(["currency", "trade_date"], ignore_index=True)
