"""Reference data and fundamentals derived from a symbol's own bars, so every answer agrees with the klines.

Pure functions over a `SymbolInfo` (plus its first bar for the IPO price); the Simulator wires them to the wire.
- Shares outstanding start at `SymbolSpec.shares_outstanding` (the count at listing) and follow the splits:
  a `from:to` split multiplies them by to/from from its ex-date on, exactly as the raw prices divide by it.
- EPS is defined per listing-era share (split-adjusted): P/E `SymbolInfo.pe` at the history start, then it moves
  by the symbol's `eps_growth` (log, per year) in quarterly steps. Per current share it divides by the splits too.
- P/E = raw close / EPS per current share: it moves with the price and is continuous across a split.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import pandas as pd

from itick_sim.universe import SymbolInfo

_CAP_UNITS = (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3))
IPO_RANGE = 0.1  # the marketed range is the offer price +- 10 %
# Sessions before the listing date on which the subscription opens, closes and the allotment is published.
SUBSCRIPTION_OPENS, SUBSCRIPTION_CLOSES, ALLOTMENT_RESULT = 7, 4, 1


@dataclass(frozen=True)
class IpoSpec:
    """Ground truth of one /stock/ipo item (dates are exchange-local)."""

    region: str
    code: str
    name: str
    exchange: str
    listed: dt.date  # the first session with a bar
    offer_price: float  # a little below the first bar's open (the first-day pop)
    price_low: float
    price_high: float
    shares: float  # at listing, before any split
    subscription_start: dt.date
    subscription_end: dt.date
    allotment_date: dt.date

    @property
    def market_cap(self) -> float:
        return self.offer_price * self.shares


def split_factor(info: SymbolInfo, day: dt.date) -> float:
    """Cumulative to/from of the splits whose ex-date is on or before `day` (shares multiply, prices divide)."""
    f = 1.0
    for sp in info.splits:
        if sp.ex_date <= day:
            f *= sp.ratio_to / sp.ratio_from
    return f


def _quarters(since: dt.date, day: dt.date) -> int:
    return (day.year * 4 + (day.month - 1) // 3) - (since.year * 4 + (since.month - 1) // 3)


def eps_per_listing_share(info: SymbolInfo, day: dt.date, history_start: dt.date) -> float:
    """EPS in listing-era shares: start price / initial P/E at the history start, growing in quarterly steps."""
    return info.start_price / info.pe * math.exp(info.eps_growth * _quarters(history_start, day) / 4)


def fundamentals(info: SymbolInfo, close: float, day: dt.date, history_start: dt.date) -> dict:
    """Valuation as of the session `day` whose raw close is `close` (shares and EPS as of that same day, so the
    market cap and P/E never jump by a split ratio)."""
    factor = split_factor(info, day)
    shares = float(round(info.spec.shares_outstanding * factor))
    eps = eps_per_listing_share(info, day, history_start) / factor
    return {"close": close, "shares_outstanding": shares, "market_cap": round(close * shares, 2),
            "pe": round(close / eps, 2), "eps": eps, "as_of": day, "currency": info.spec.currency}


def offer_price(info: SymbolInfo, first_open: float, dp: int) -> float:
    """The IPO's final offer price: the first bar's open less the symbol's first-day pop, on the price grid."""
    return max(round(first_open / (1.0 + info.ipo_pop), dp), 10.0**-dp)


def price_range(offer: float, dp: int) -> tuple[float, float]:
    """The marketed range around the final offer price (it always contains it)."""
    tick = 10.0**-dp
    lo = max(round(offer * (1 - IPO_RANGE), dp), tick)
    hi = max(round(offer * (1 + IPO_RANGE), dp), offer)
    return min(lo, offer), hi


def cap_display(value: float) -> str:
    """'19.1M' / '2.3B' style, as the IPO calendar shows a market cap (the unit is chosen after rounding)."""
    for unit, scale in _CAP_UNITS:
        if round(value / scale, 1) >= 1:
            return f"{value / scale:.1f}{unit}"
    return f"{value:.0f}"


def local_midnight_ms(day: dt.date, tz: str) -> int:
    """Epoch ms of the exchange-local midnight that starts `day` (as /stock/split's `d`, /stock/ipo's `dt`)."""
    return int(pd.Timestamp(day).tz_localize(tz).value // 1_000_000)


def ipo_item(ipo: IpoSpec, tz: str, country_code: str, upcoming: bool) -> dict:
    """One /stock/ipo `content` entry, in the documented key order. An upcoming IPO shows its marketed range,
    a recent one its final offer price."""
    pr = f"{ipo.price_low:.2f}-{ipo.price_high:.2f}" if upcoming else f"{ipo.offer_price:.2f}"
    return {"dt": local_midnight_ms(ipo.listed, tz), "cn": ipo.name, "sc": ipo.code, "ex": ipo.exchange,
            "mc": cap_display(ipo.market_cap), "pr": pr, "ct": country_code,
            "bs": local_midnight_ms(ipo.subscription_start, tz) // 1000,
            "es": local_midnight_ms(ipo.subscription_end, tz) // 1000,
            "ro": local_midnight_ms(ipo.allotment_date, tz) // 1000}
