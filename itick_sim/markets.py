"""Markets, instruments and (cached) trading calendars."""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

# Every series is generated over the full calendar up to this fixed horizon and then cut at `now`,
# so a bar never depends on the clock. Wall clocks past the horizon simply see no newer bars.
HORIZON = dt.date(2035, 12, 31)
# Universe events (IPOs, delistings, splits) are placed relative to this fixed anchor date, not `now`.
ANCHOR = dt.date(2026, 10, 30)
# Calendars start on COVERED_BY_ALL (every calendar covers it). A history starting earlier needs the early
# calendars instead, reaching back as far as exchange_calendars knows each one (its class's `bound_min`) but
# never before CAL_FLOOR (calendars without a bound accept any start, and the NYSE's pre-1952 Saturdays, say, are
# not modelled). Early calendars cost ~10-20% more to build, so only such a history pays for them. A bar's date
# never depends on where its calendar starts: calendar positions are only used relative to each other.
COVERED_BY_ALL = dt.date(2000, 1, 3)
CAL_FLOOR = dt.date(1970, 1, 1)


def stable_hash(text: str) -> int:
    """A process-independent 32-bit hash (Python's `hash` is salted)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "little")


def rng_for(seed: int, *parts: str | int) -> np.random.Generator:
    key = [seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF]
    key += [p if isinstance(p, int) else stable_hash(p) for p in parts]
    return np.random.default_rng(key)


@dataclass(frozen=True)
class Market:
    region: str
    calendar: str
    tz: str
    exchanges: tuple[str, ...]
    currency: str
    dp: int  # price decimals (tick = 10**-dp)
    lots: tuple[int, ...]
    price_range: tuple[float, float]
    daily_lots: float  # typical traded lots per day
    country: str
    tz_offset: int
    country_code: str  # ISO 3166 alpha-2, what /stock/ipo's `ct` carries


MARKETS: dict[str, Market] = {
    "US": Market("US", "XNYS", "America/New_York", ("NASDAQ", "NYSE"), "USD", 2, (1,), (5, 500), 2e6,
                 "United States", -5, "US"),
    "HK": Market("HK", "XHKG", "Asia/Hong_Kong", ("HKEX",), "HKD", 2, (100, 500, 1000), (1, 400), 2e4,
                 "Hong Kong", 8, "HK"),
    "SH": Market("SH", "XSHG", "Asia/Shanghai", ("SSE",), "CNY", 2, (100,), (3, 200), 1e5, "China", 8, "CN"),
    "SZ": Market("SZ", "XSHG", "Asia/Shanghai", ("SZSE",), "CNY", 2, (100,), (3, 200), 1e5, "China", 8, "CN"),
    "JP": Market("JP", "XTKS", "Asia/Tokyo", ("TSE",), "JPY", 0, (100,), (300, 20000), 2e4, "Japan", 9, "JP"),
    "GB": Market("GB", "XLON", "Europe/London", ("LSE",), "GBP", 2, (1,), (0.5, 60), 1e6,
                 "United Kingdom", 0, "GB"),
}


@dataclass(frozen=True)
class Instrument:
    """An index or a currency pair (region "GB" on the wire)."""

    asset: str  # "indices" | "forex"
    code: str
    name: str
    calendar: str
    start_level: float
    dp: int
    sigma: float
    daily_volume: float  # 0 for forex


INDICES: dict[str, Instrument] = {
    i.code: i
    for i in [
        Instrument("indices", "SPX", "S&P 500", "XNYS", 1830.0, 2, 0.0095, 2.5e9),
        Instrument("indices", "DJI", "Dow Jones Industrial Average", "XNYS", 16500.0, 2, 0.009, 3.0e8),
        Instrument("indices", "NDX", "Nasdaq 100", "XNYS", 3590.0, 2, 0.012, 1.5e9),
        Instrument("indices", "HSI", "Hang Seng Index", "XHKG", 23300.0, 2, 0.012, 2.0e9),
        Instrument("indices", "SSEC", "SSE Composite Index", "XSHG", 2110.0, 2, 0.012, 3.0e10),
        Instrument("indices", "N225", "Nikkei 225", "XTKS", 16000.0, 2, 0.012, 1.2e9),
    ]
}
FOREX: dict[str, Instrument] = {
    i.code: i
    for i in [
        Instrument("forex", "EURUSD", "EUR/USD", "FX", 1.3700, 5, 0.005, 0.0),
        Instrument("forex", "GBPUSD", "GBP/USD", "FX", 1.6500, 5, 0.005, 0.0),
        Instrument("forex", "USDJPY", "USD/JPY", "FX", 104.80, 3, 0.005, 0.0),
        Instrument("forex", "USDHKD", "USD/HKD", "FX", 7.7540, 5, 0.0003, 0.0),
        Instrument("forex", "USDCNY", "USD/CNY", "FX", 6.0500, 5, 0.002, 0.0),
    ]
}
NON_STOCK: dict[str, dict[str, Instrument]] = {"indices": INDICES, "forex": FOREX}

CAL_TZ = {
    "XNYS": "America/New_York",
    "XHKG": "Asia/Hong_Kong",
    "XSHG": "Asia/Shanghai",
    "XTKS": "Asia/Tokyo",
    "XLON": "Europe/London",
    "FX": "UTC",
}
# Forex "sessions" are Mon-Fri, 00:00-22:00 UTC.
FX_OPEN_MIN, FX_CLOSE_MIN = 0, 22 * 60

BAR_TIMES = ("close", "open", "local_midnight", "utc_midnight")


class CalendarData:
    """Sessions of one calendar from its start (see CAL_FLOOR) to HORIZON with bar timestamps (epoch ms)
    precomputed."""

    def __init__(self, name: str, tz: str, sessions: pd.DatetimeIndex, opens_ms, closes_ms):
        self.name = name
        self.tz = tz
        self.sessions = sessions  # naive dates
        self.days = sessions.values.astype("datetime64[D]")
        utc_mid = self.days.astype("datetime64[ms]").astype(np.int64)
        local_mid = sessions.tz_localize(tz).as_unit("ms").asi8 if tz != "UTC" else utc_mid
        self.t_ms: dict[str, np.ndarray] = {
            "close": np.asarray(closes_ms, dtype=np.int64),
            "open": np.asarray(opens_ms, dtype=np.int64),
            "local_midnight": np.asarray(local_mid, dtype=np.int64),
            "utc_midnight": utc_mid,
        }
        self.close_ms = self.t_ms["close"]

    def __len__(self) -> int:
        return len(self.days)

    def pos(self, day: dt.date) -> int:
        """Index of the first session on or after `day`."""
        return int(np.searchsorted(self.days, np.datetime64(day, "D"), side="left"))

    def completed(self, now_ms: int) -> int:
        """Number of sessions whose close is <= now."""
        return int(np.searchsorted(self.close_ms, now_ms, side="right"))


_CAL_CACHE: dict[tuple[str, bool], CalendarData] = {}
_CAL_LOCK = threading.Lock()


def _build(name: str, early: bool) -> CalendarData:
    tz = CAL_TZ[name]
    if name == "FX":
        sessions = pd.bdate_range(CAL_FLOOR if early else COVERED_BY_ALL, HORIZON)
        mid = sessions.values.astype("datetime64[D]").astype("datetime64[ms]").astype(np.int64)
        return CalendarData(name, tz, sessions, mid + FX_OPEN_MIN * 60_000, mid + FX_CLOSE_MIN * 60_000)
    return _build_xcal(name, tz, early)


def _xcal(name: str, **bounds: pd.Timestamp):
    """exchange_calendars' calendar. Building one raises pandas deprecations inside exchange_calendars' own code;
    only those are silenced, only while it builds."""
    import exchange_calendars as xcals

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # pandas' Pandas4Warning is one too
        return xcals.get_calendar(name, **bounds)


def _build_xcal(name: str, tz: str, early: bool) -> CalendarData:
    cls = type(_xcal(name))
    bound = cls.bound_max() if hasattr(cls, "bound_max") else None
    end = HORIZON if bound is None else min(HORIZON, pd.Timestamp(bound).date())
    start = COVERED_BY_ALL
    if early:
        first = cls.bound_min() if hasattr(cls, "bound_min") else None
        start = CAL_FLOOR if first is None else max(CAL_FLOOR, pd.Timestamp(first).date())
    cal = _xcal(name, start=pd.Timestamp(start), end=pd.Timestamp(end))
    sessions = pd.DatetimeIndex(cal.sessions)
    opens = pd.DatetimeIndex(cal.opens).as_unit("ms").asi8  # epoch ms (UTC) of the aware timestamps
    closes = pd.DatetimeIndex(cal.closes).as_unit("ms").asi8
    if end < HORIZON:
        # Holidays are not recorded that far: extend with plain weekdays at the last known hours.
        last_open = cal.opens.iloc[-1].tz_convert(tz)
        last_close = cal.closes.iloc[-1].tz_convert(tz)
        ext = pd.bdate_range(end + dt.timedelta(days=1), HORIZON)
        ext_open = (ext + pd.Timedelta(hours=last_open.hour, minutes=last_open.minute)).tz_localize(tz)
        ext_close = (ext + pd.Timedelta(hours=last_close.hour, minutes=last_close.minute)).tz_localize(tz)
        sessions = sessions.append(ext)
        opens = np.concatenate([opens, ext_open.as_unit("ms").asi8])
        closes = np.concatenate([closes, ext_close.as_unit("ms").asi8])
    return CalendarData(name, tz, sessions, opens, closes)


def get_calendar(name: str, early: bool = False) -> CalendarData:
    """Process-wide cache: each calendar is built once (`early`: reaching back before COVERED_BY_ALL)."""
    key = (name, early)
    cal = _CAL_CACHE.get(key)
    if cal is None:
        with _CAL_LOCK:
            cal = _CAL_CACHE.get(key)
            if cal is None:
                cal = _CAL_CACHE[key] = _build(name, early)
    return cal
