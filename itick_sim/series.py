"""Vectorised generation of daily bar series (raw, i.e. unadjusted for splits)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from itick_sim.markets import Instrument, rng_for
from itick_sim.universe import SymbolInfo


@dataclass(frozen=True)
class Series:
    """Compact bars over the whole calendar: prices as integer ticks, volume as float shares."""

    pos: np.ndarray  # int32 calendar positions with a bar, ascending
    o: np.ndarray  # int64 ticks (price * 10**dp)
    h: np.ndarray
    low: np.ndarray
    c: np.ndarray
    v: np.ndarray  # float64, whole shares
    dp: int

    def tu_cents(self, sl: slice) -> np.ndarray:
        """Turnover in cents: volume * typical price, rounded to 2 dp."""
        typ = (self.h[sl] + self.low[sl] + self.c[sl]).astype(np.float64) / (3 * 10**self.dp)
        return np.rint(self.v[sl] * typ * 100.0).astype(np.int64)


RESTATE_CLOSE = 0.01  # a restated close is 1% above the original, rounded to the tick (at least one tick)


def head(s: Series, k: int) -> Series:
    """The first k bars (views, no copy): what a feed that has not yet published the later bars serves."""
    return replace(s, pos=s.pos[:k], o=s.o[:k], h=s.h[:k], low=s.low[:k], c=s.c[:k], v=s.v[:k])


def restate(s: Series, k: int, lot: float) -> Series:
    """The same bars with the first k restated (close +1%, high up to the close, volume + one lot; open and low
    kept, so OHLC stays valid; turnover follows, being derived from h, l, c, v). Never mutates `s`: its arrays
    are the cached originals."""
    if k <= 0:
        return s
    c, h, v = s.c.copy(), s.h.copy(), s.v.copy()
    c[:k] += np.maximum(np.rint(c[:k] * RESTATE_CLOSE).astype(np.int64), 1)
    h[:k] = np.maximum(h[:k], c[:k])
    v[:k] += lot
    return replace(s, h=h, c=c, v=v)


def _ohlc(rng: np.random.Generator, n: int, start: float, sigma: float, jumps: bool):
    z = rng.standard_normal(n)
    jump = np.where(rng.random(n) < (0.008 if jumps else 0.0), rng.normal(0.0, 6 * sigma, n), 0.0)
    gap = rng.standard_normal(n)
    hi = np.abs(rng.standard_normal(n))
    lo = np.abs(rng.standard_normal(n))
    r = sigma * z - 0.5 * sigma * sigma + jump
    cum = np.cumsum(r)
    # Soft bound on the drift away from the start level (keeps prices realistic over decades).
    logc = np.log(start) + 2.0 * np.tanh(cum / 2.0)
    c = np.exp(logc)
    prev = np.concatenate([[start], c[:-1]])
    o = prev * np.exp(0.3 * sigma * gap)
    h = np.maximum(o, c) * np.exp(0.5 * sigma * hi)
    low = np.minimum(o, c) * np.exp(-0.5 * sigma * lo)
    return o, h, low, c, r


def _ticks(o, h, low, c, dp: int):
    scale = 10.0**dp
    o_t = np.maximum(np.rint(o * scale), 1).astype(np.int64)
    c_t = np.maximum(np.rint(c * scale), 1).astype(np.int64)
    h_t = np.maximum.reduce([np.rint(h * scale).astype(np.int64), o_t, c_t])
    l_t = np.minimum.reduce([np.maximum(np.rint(low * scale), 1).astype(np.int64), o_t, c_t])
    return o_t, h_t, l_t, c_t


def stock_series(seed: int, info: SymbolInfo, ncal: int, hist_pos: int, dp: int) -> Series:
    spec = info.spec
    rng = rng_for(seed, "bars", spec.region, spec.code)
    n = ncal - hist_pos  # always the full span history_start .. HORIZON
    o, h, low, c, r = _ohlc(rng, n, info.start_price, info.sigma, jumps=True)
    vol_noise = rng.standard_normal(n)
    single = rng.random(n) < 3.0 / 252
    multi_start = np.flatnonzero(rng.random(n) < 0.25 / 252)
    multi_len = rng.integers(2, 15, size=len(multi_start))
    # splits: raw prices divide by the cumulative to/from ratio from each ex-date on
    mult = np.ones(n)
    for p, sp in zip(info.split_pos, info.splits, strict=False):
        mult[p - hist_pos :] *= sp.ratio_to / sp.ratio_from
    o, h, low, c = o / mult, h / mult, low / mult, c / mult
    o_t, h_t, l_t, c_t = _ticks(o, h, low, c, dp)
    lots = info.daily_lots * np.exp(0.5 * vol_noise + 0.3 * np.abs(r) / info.sigma) * mult
    v = np.maximum(np.rint(lots), 1.0) * info.lot
    # which sessions have a bar
    keep = ~single
    for s, k in zip(multi_start.tolist(), multi_len.tolist(), strict=False):
        keep[s : s + k] = False
    first = max(info.list_pos, hist_pos) - hist_pos
    last = (info.delist_pos if info.delist_pos is not None else ncal) - hist_pos
    keep[:first] = False
    keep[last:] = False
    if first < n:
        keep[first] = True  # trades on its first day
    for p in info.split_pos:
        keep[p - hist_pos] = True  # and on ex-dates
    idx = np.flatnonzero(keep)
    return Series((idx + hist_pos).astype(np.int32), o_t[idx], h_t[idx], l_t[idx], c_t[idx], v[idx], dp)


def instrument_series(seed: int, inst: Instrument, ncal: int, hist_pos: int) -> Series:
    rng = rng_for(seed, "bars", inst.asset, inst.code)
    n = ncal - hist_pos
    o, h, low, c, _ = _ohlc(rng, n, inst.start_level, inst.sigma, jumps=False)
    o_t, h_t, l_t, c_t = _ticks(o, h, low, c, inst.dp)
    noise = rng.standard_normal(n)
    v = np.rint(inst.daily_volume * np.exp(0.3 * noise)) if inst.daily_volume else np.zeros(n)
    return Series(np.arange(hist_pos, ncal, dtype=np.int32), o_t, h_t, l_t, c_t, v, inst.dp)
