"""Reference data and fundamentals derived from a symbol's own bars, so every answer agrees with the klines.

Pure functions over a `SymbolInfo`; the Simulator wires them to the wire.
- Shares outstanding start at `SymbolSpec.shares_outstanding` (the count at listing) and follow the splits:
  a `from:to` split multiplies them by to/from from its ex-date on, exactly as the raw prices divide by it.
- EPS is defined per listing-era share (split-adjusted): P/E `SymbolInfo.pe` at the history start, then it moves
  by the symbol's `eps_growth` (log, per year) in quarterly steps. Per current share it divides by the splits too.
- P/E = raw close / EPS per current share: it moves with the price and is continuous across a split.
"""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd

from itick_sim.universe import SymbolInfo


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


def local_midnight_ms(day: dt.date, tz: str) -> int:
    """Epoch ms of the exchange-local midnight that starts `day` (as /stock/split's `d`)."""
    return int(pd.Timestamp(day).tz_localize(tz).value // 1_000_000)
