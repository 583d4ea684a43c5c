"""Deterministic symbol universes: codes, names, listing windows and splits."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np

from itick_sim.markets import ANCHOR, FOREX, INDICES, MARKETS, CalendarData, Market, rng_for


@dataclass(frozen=True)
class SymbolSpec:
    region: str
    code: str
    name: str
    exchange: str
    type: str
    listed: dt.date
    delisted: dt.date | None  # first day it no longer trades (its last bar is strictly before)
    sector: str
    industry: str
    currency: str
    shares_outstanding: float  # at listing, before any split (see itick_sim.reference for the count on a date)


@dataclass(frozen=True)
class SplitSpec:
    region: str
    code: str
    name: str
    ex_date: dt.date
    ratio_from: int  # `ratio_from` old shares become `ratio_to` new ones: raw prices divide by to/from
    ratio_to: int


@dataclass
class SymbolInfo:
    """Full internal record (the public spec plus generation parameters)."""

    spec: SymbolSpec
    splits: list[SplitSpec]
    list_pos: int  # calendar position of the listing date (its first bar when >= the history start position)
    delist_pos: int | None  # first calendar position without a bar
    split_pos: list[int]
    start_price: float
    sigma: float
    lot: int
    daily_lots: float
    pe: float  # P/E at the history start (EPS = start_price / pe), see itick_sim.reference
    description: str
    website: str
    eps_growth: float = 0.0  # log EPS growth per year, applied in quarterly steps
    ipo_pop: float = 0.0  # first open / IPO offer price - 1
    extra: dict = field(default_factory=dict)


SECTORS = {
    "Technology": ["Software", "Semiconductors", "IT Services", "Hardware"],
    "Financials": ["Banks", "Insurance", "Capital Markets"],
    "Health Care": ["Pharmaceuticals", "Biotechnology", "Medical Devices"],
    "Consumer Discretionary": ["Retail", "Automobiles", "Leisure"],
    "Consumer Staples": ["Food Products", "Beverages", "Household Products"],
    "Industrials": ["Machinery", "Aerospace", "Transportation"],
    "Energy": ["Oil & Gas", "Renewable Energy"],
    "Materials": ["Chemicals", "Metals & Mining"],
    "Utilities": ["Electric Utilities", "Water Utilities"],
    "Real Estate": ["REITs", "Real Estate Development"],
    "Communication Services": ["Telecom", "Media", "Interactive Media"],
}
_SECTOR_NAMES = list(SECTORS)
_SYL = ["al", "ver", "nor", "tek", "qua", "zen", "lum", "cor", "dyn", "ex", "mar", "sol", "tri", "vio",
        "an", "bel", "cas", "del", "fen", "gal", "hel", "ion", "kal", "lox", "mir", "nex", "or", "pra"]
_SUFFIX = {"US": ["Inc.", "Corp.", "Holdings Inc.", "Group Inc."], "HK": ["Holdings Ltd.", "Group Ltd."],
           "SH": ["Co., Ltd.", "Group Co., Ltd."], "SZ": ["Co., Ltd.", "Technology Co., Ltd."],
           "JP": ["Corp.", "Co., Ltd.", "Holdings"], "GB": ["plc", "Group plc"]}
_WORD2 = ["Systems", "Dynamics", "Industries", "Energy", "Bio", "Capital", "Networks", "Materials",
          "Foods", "Motors", "Pharma", "Logistics", "Media", "Semiconductor", "Resources", "Retail"]
_SPLIT_RATIOS = [(1, 2)] * 9 + [(1, 3)] * 3 + [(2, 3)] * 2 + [(1, 4)] + [(10, 1)] * 3 + [(5, 1)] * 2

_RESERVED = set(INDICES) | set(FOREX)
_BLOCK = 20


def _code_chunk(region: str, rng: np.random.Generator, k: int = 64) -> list[str]:
    if region in ("US", "GB"):
        lengths = (rng.choice([1, 2, 3, 4, 5], size=k, p=[0.02, 0.1, 0.35, 0.43, 0.1]) if region == "US"
                   else rng.choice([2, 3, 4], size=k, p=[0.2, 0.5, 0.3]))
        letters = rng.integers(0, 26, size=(k, 5))
        return ["".join(chr(65 + x) for x in row[:n]) for row, n in
                zip(letters.tolist(), lengths.tolist(), strict=True)]
    if region == "HK":
        return [str(x) for x in rng.integers(1, 10000, size=k).tolist()]
    if region == "SH":
        pre = rng.choice(["600", "601", "603", "688"], size=k, p=[0.4, 0.2, 0.2, 0.2])
        nums = rng.integers(0, 1000, size=k).tolist()
        return [f"{p}{x:03d}" for p, x in zip(pre.tolist(), nums, strict=True)]
    if region == "SZ":
        pre = rng.choice(["000", "001", "002", "003", "300", "301"], size=k,
                         p=[0.3, 0.05, 0.25, 0.05, 0.3, 0.05])
        nums = rng.integers(1, 1000, size=k).tolist()
        return [f"{p}{x:03d}" for p, x in zip(pre.tolist(), nums, strict=True)]
    if region == "JP":
        return [str(x) for x in rng.integers(1301, 9998, size=k).tolist()]
    raise ValueError(region)


_CAPACITY = {"US": 10**6, "GB": 10**5, "HK": 9999, "SH": 4000, "SZ": 5994, "JP": 8697}


def generate_codes(seed: int, region: str, n: int) -> list[str]:
    """First `n` codes of an infinite, deterministic, duplicate-free sequence (prefix-stable in n)."""
    if n > _CAPACITY[region] * 0.9:
        raise ValueError(f"region {region} cannot hold {n} distinct synthetic codes")
    rng = rng_for(seed, "codes", region)
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        for c in _code_chunk(region, rng):
            if c not in seen and c not in _RESERVED:
                seen.add(c)
                out.append(c)
                if len(out) == n:
                    break
    return out


def _name(rng: np.random.Generator, region: str) -> str:
    k = int(rng.integers(2, 4))
    stem = "".join(_SYL[i] for i in rng.integers(0, len(_SYL), size=k).tolist()).capitalize()
    word = _WORD2[int(rng.integers(0, len(_WORD2)))]
    suffix = _SUFFIX[region][int(rng.integers(0, len(_SUFFIX[region])))]
    return f"{stem} {word} {suffix}"


def build_universe(seed: int, region: str, n: int, cal: CalendarData, hist_pos: int) -> list[SymbolInfo]:
    market: Market = MARKETS[region]
    codes = generate_codes(seed, region, n)
    anchor_pos = int(np.searchsorted(cal.days, np.datetime64(ANCHOR, "D"), side="right")) - 1
    out: list[SymbolInfo] = []
    slots: tuple[np.ndarray, np.ndarray] | None = None
    for i, code in enumerate(codes):
        if i % _BLOCK == 0:
            brng = rng_for(seed, "block", region, i // _BLOCK)
            slots = (brng.permutation(_BLOCK), brng.permutation(_BLOCK))
        assert slots is not None
        cat, split_slot = int(slots[0][i % _BLOCK]), int(slots[1][i % _BLOCK])
        rng = rng_for(seed, "spec", region, code)
        name = _name(rng, region)
        sector = _SECTOR_NAMES[int(rng.integers(0, len(_SECTOR_NAMES)))]
        industry = SECTORS[sector][int(rng.integers(0, len(SECTORS[sector])))]
        exchange = market.exchanges[int(rng.integers(0, len(market.exchanges)))]
        lo, hi = market.price_range
        start_price = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        sigma = float(rng.uniform(0.01, 0.03))
        lot = int(market.lots[int(rng.integers(0, len(market.lots)))])
        daily_lots = float(market.daily_lots * np.exp(rng.normal(0, 1.0)))
        pe = round(float(np.exp(rng.normal(np.log(18), 0.5))), 2)
        u = rng.random(6)
        # listing window
        if cat <= 2:  # IPO inside history
            a, b = hist_pos + 60, max(hist_pos + 61, anchor_pos - 20)
            list_pos = int(a + u[0] * (b - a))
            listed = cal.days[list_pos].item()
        else:
            span = (dt.date(2013, 12, 31) - dt.date(1980, 1, 1)).days
            listed = dt.date(1980, 1, 1) + dt.timedelta(days=int(u[0] * span))
            listed = min(listed, cal.days[hist_pos].item() - dt.timedelta(days=1))
            list_pos = cal.pos(listed)  # <= hist_pos: bars start at the history start
        delist_pos: int | None = None
        first = max(list_pos, hist_pos)
        if cat == 3 or (cat == 4 and anchor_pos - 260 <= first + 250):  # delisted in the anchor's last year
            delist_pos = int(anchor_pos - 245 + u[1] * 245)
        elif cat == 4:
            delist_pos = int(first + 250 + u[1] * (anchor_pos - 260 - first - 250))
        delisted = cal.days[delist_pos].item() if delist_pos is not None else None
        # splits
        end = (delist_pos if delist_pos is not None else anchor_pos) - 5
        split_pos: list[int] = []
        nsplit = 1 if split_slot == 0 else 2 if split_slot == 1 else 0
        if nsplit and end - (first + 40) > 130:
            cand = sorted(int(first + 40 + x * (end - first - 40)) for x in u[2 : 2 + nsplit])
            if len(cand) == 2 and cand[1] - cand[0] < 60:
                cand = cand[:1]
            split_pos = cand
        splits = []
        for p in split_pos:
            fr, to = _SPLIT_RATIOS[int(rng.integers(0, len(_SPLIT_RATIOS)))]
            splits.append(SplitSpec(region, code, name, cal.days[p].item(), fr, to))
        tso = float(round(daily_lots * lot / rng.uniform(0.002, 0.01), -3))
        slug = name.split()[0].lower()
        frng = rng_for(seed, "fundamentals", region, code)  # own stream: the draws above stay as they were
        eps_growth, ipo_pop = float(frng.uniform(-0.03, 0.08)), float(frng.uniform(0.0, 0.25))
        spec = SymbolSpec(region, code, name, exchange, "stock", listed, delisted, sector, industry,
                          market.currency, tso)
        out.append(SymbolInfo(
            spec=spec, splits=splits, list_pos=list_pos, delist_pos=delist_pos, split_pos=split_pos,
            start_price=start_price, sigma=sigma, lot=lot, daily_lots=daily_lots, pe=pe,
            description=f"{name} is a {region}-listed company in the {industry.lower()} industry "
                        f"({sector.lower()} sector).",
            website=f"https://www.{slug}.example.com", eps_growth=eps_growth, ipo_pop=ipo_pop,
        ))
    return out
