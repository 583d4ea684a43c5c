"""The WSGI application: iTick-compatible REST endpoints over deterministic synthetic data."""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import hashlib
import json
import threading
import time
from urllib.parse import parse_qs

import numpy as np
import orjson
import pandas as pd

from itick_sim.counters import Quota, RequestCounters
from itick_sim.markets import (
    CAL_FLOOR,
    COVERED_BY_ALL,
    MARKETS,
    NON_STOCK,
    CalendarData,
    Instrument,
    get_calendar,
)
from itick_sim.reference import (
    ALLOTMENT_RESULT,
    SUBSCRIPTION_CLOSES,
    SUBSCRIPTION_OPENS,
    IpoSpec,
    ipo_item,
    local_midnight_ms,
    offer_price,
    price_range,
)
from itick_sim.reference import fundamentals as valuation
from itick_sim.series import Series, head, instrument_series, restate, stock_series
from itick_sim.settings import SimSettings
from itick_sim.universe import SplitSpec, SymbolInfo, SymbolSpec, build_universe
from itick_sim.wire import BarCols, encode_bars

E_TEXT = {"E001": "not found this produce", "E002": "auth failed"}
RATE_LIMIT_BODY = b'{"code":429,"msg":"your request is too much","data":null}'
KTYPES_SUPPORTED = {8: "day", 9: "week", 10: "month"}
KTYPES_KNOWN = set(range(1, 11))
SERIES_CACHE_SIZE = 1024  # at least; grows to the served universe (~240 KB a symbol) up to the cap
SERIES_CACHE_CAP = 6000
IPO_TYPES = ("recent", "upcoming")
# Injected faults answered instead of the endpoint: (HTTP status, body)
FAULT_ANSWERS = {
    "429": (429, RATE_LIMIT_BODY),
    "429_bare": (429, RATE_LIMIT_BODY),
    "500": (500, b'{"code":500,"msg":"injected fault: internal server error","data":null}'),
    "503": (503, b'{"code":503,"msg":"injected fault: service unavailable","data":null}'),
    "envelope_error": (200, b'{"code":5001,"msg":"injected fault: upstream data service unavailable","data":null}'),
}


def _fault_draw(seed: int, n: int) -> tuple[float, int]:
    """A uniform in [0, 1) and an int for request `n`: counter-based, so any replay of the sequence agrees."""
    digest = hashlib.blake2b(f"{seed}:{n}".encode(), digest_size=16).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64, int.from_bytes(digest[8:], "big")


class ApiError(Exception):
    def __init__(self, kind: str, msg: str = "") -> None:
        super().__init__(msg or kind)
        self.kind = kind  # "E001" | "E002" | "param" | "route"
        self.msg = msg


def _param_error(msg: str) -> ApiError:
    return ApiError("param", msg)


def _check_history_start(settings: SimSettings) -> None:
    """History cannot start before a served market's calendar does (or before CAL_FLOOR)."""
    start = settings.history_start
    if start < CAL_FLOOR:
        raise ValueError(f"history_start must be >= {CAL_FLOOR}, not {start}")
    if start >= COVERED_BY_ALL:
        return  # every calendar covers it: no need to build them now
    for region in settings.regions:
        cal = get_calendar(MARKETS[region].calendar, early=True)
        first = cal.days[0].item()
        if start < first:
            raise ValueError(f"history_start {start} is before the first {cal.name} ({region}) session the "
                             f"simulator knows, {first}; use a later history_start or drop {region}")


class Simulator:
    """iTick-compatible WSGI app. Deterministic from `settings.seed`; the clock is `settings.now`."""

    def __init__(self, settings: SimSettings = SimSettings()) -> None:  # noqa: B008 (frozen dataclass)
        _check_history_start(settings)
        self.settings = settings
        self.counters = RequestCounters()
        self._quota = Quota(settings.calls_per_window, settings.window_seconds)
        # Big backfills walk every symbol once per 1000-bar page; a cache smaller than the universe would
        # regenerate each series on every page.
        served = settings.symbols_per_region * len(settings.regions)
        self._cache_size = max(SERIES_CACHE_SIZE, min(SERIES_CACHE_CAP, served + 64))
        self._lock = threading.Lock()
        self._universes: dict[str, tuple[list[SymbolInfo], dict[str, SymbolInfo]]] = {}
        self._series: collections.OrderedDict[tuple[str, str, str], Series] = collections.OrderedDict()
        self._omitted: dict[str, int] = {}  # batch requests seen per code in `batch_omit_codes`
        self._fault_seq = 0  # routed requests drawn for a fault so far (the RNG's counter)
        self._faults_injected = 0
        self._routes = {
            "/symbol/list": self._symbol_list,
            "/symbol/v2/holidays": self._holidays,
            "/stock/info": self._stock_info,
            "/stock/split": self._stock_split,
            "/stock/ipo": self._stock_ipo,
        }
        for asset in ("stock", "indices", "forex"):
            self._routes[f"/{asset}/kline"] = self._kline_handler(asset, batch=False)
            self._routes[f"/{asset}/klines"] = self._kline_handler(asset, batch=True)

    # ------------------------------------------------------------------ clock & ground truth
    def now(self) -> dt.datetime:
        n = self.settings.now
        if n is None:
            return dt.datetime.now(dt.UTC)
        return n.replace(tzinfo=dt.UTC) if n.tzinfo is None else n.astimezone(dt.UTC)

    def _today(self, tz: str, now: dt.datetime | None = None) -> dt.date:
        return pd.Timestamp(now or self.now()).tz_convert(tz).date()

    def _calendar(self, name: str) -> CalendarData:
        """The calendar `name` as far back as this history needs (built once per process)."""
        return get_calendar(name, early=self.settings.history_start < COVERED_BY_ALL)

    def _market_cal(self, region: str) -> CalendarData:
        return self._calendar(MARKETS[region].calendar)

    def _hist_pos(self, cal: CalendarData) -> int:
        return cal.pos(self.settings.history_start)

    def _universe(self, region: str) -> tuple[list[SymbolInfo], dict[str, SymbolInfo]]:
        u = self._universes.get(region)
        if u is None:
            cal = self._market_cal(region)
            infos = build_universe(self.settings.seed, region, self.settings.symbols_per_region, cal,
                                   self._hist_pos(cal))
            u = (infos, {i.spec.code: i for i in infos})
            with self._lock:
                self._universes.setdefault(region, u)
        return u

    def _visible(self, info: SymbolInfo, today: dt.date) -> bool:
        return info.spec.listed <= today

    @staticmethod
    def _as_of(info: SymbolInfo, today: dt.date) -> SymbolSpec:
        d = info.spec.delisted
        return dataclasses.replace(info.spec, delisted=None) if d is not None and d > today else info.spec

    def universe(self, region: str) -> list[SymbolSpec]:
        """Every symbol listed in `region` by today (incl. delisted ones; future delistings hidden)."""
        self._check_region(region)
        today = self._today(MARKETS[region].tz)
        return [self._as_of(i, today) for i in self._universe(region)[0] if self._visible(i, today)]

    def calendar(self, region: str) -> pd.DatetimeIndex:
        self._check_region(region)
        cal = self._market_cal(region)
        today = self._today(cal.tz)
        s = cal.sessions
        return s[(s >= pd.Timestamp(self.settings.history_start)) & (s <= pd.Timestamp(today))]

    def splits(self, region: str, published: bool = False) -> list[SplitSpec]:
        """Splits with an ex-date up to today (what the bars show); `published`: only those /stock/split
        answers today (see `split_publish_delay_days`)."""
        self._check_region(region)
        today = self._today(MARKETS[region].tz)
        seen = self._published if published else self._happened
        out = [sp for i in self._universe(region)[0] if self._visible(i, today) for sp in i.splits
               if seen(sp, today)]
        return sorted(out, key=lambda s: (s.ex_date, s.code))

    @staticmethod
    def _happened(sp: SplitSpec, today: dt.date) -> bool:
        return sp.ex_date <= today

    def _published(self, sp: SplitSpec, today: dt.date) -> bool:
        """A late feed publishes a split `split_publish_delay_days` after its ex-date (for `late_split_codes`)."""
        late = self.settings.late_split_codes
        delay = self.settings.split_publish_delay_days if not late or sp.code in late else 0
        return sp.ex_date + dt.timedelta(days=delay) <= today

    def fundamentals(self, region: str, code: str, on: dt.date) -> dict:
        """Ground truth of /stock/info on the evening of `on` (whatever `now` is): `close` is the raw close of
        the last bar on or before `on` (`as_of` its date); `shares_outstanding`, `eps` (per current share) and
        `pe` are as of that date, `market_cap` = close x shares. A delisted symbol keeps its last values."""
        self._check_region(region)
        info = self._resolve(region, code)
        if info is None or info.spec.listed > on:
            raise KeyError(f"{region}/{code} is not listed on {on}")
        cal = self._market_cal(region)
        series = self._stock_series(region, info)
        bound = int(np.searchsorted(cal.days, np.datetime64(on, "D"), side="right"))
        return self._valuation(region, info, series, int(np.searchsorted(series.pos, bound)), on)

    def ipos(self, region: str, kind: str = "recent") -> list[IpoSpec]:
        """What /stock/ipo?type=`kind` lists today: IPOs inside history listed by today ("recent"), or listing
        after today ("upcoming", hidden from /symbol/list until then); by listing date, then code."""
        self._check_region(region)
        if kind not in IPO_TYPES:
            raise ValueError(f"kind must be one of {IPO_TYPES}, not {kind!r}")
        return [self._ipo_spec(region, i) for i in self._ipo_infos(region, kind, self._today(MARKETS[region].tz))]

    def daily_bars(self, region: str, code: str, asset: str = "stock") -> pd.DataFrame:
        """The raw daily bars served for (region, code); `asset` may be "indices"/"forex" (region "GB")."""
        now = self.now()
        cal, series = self._lookup(asset, region, code, now)
        if series is None:
            raise KeyError(f"unknown {asset} {region}/{code}")
        if asset == "stock":
            series = self._served(region, code, cal, series, now)
        cols = self._daily_cols(cal, series, self._now_ms(now), None, None)
        f = cols.floats()
        return pd.DataFrame({
            "trade_date": pd.DatetimeIndex(cal.days[series.pos[: len(cols)]]).as_unit("ns"),
            "t": cols.t.astype(np.int64),
            "o": f["o"], "h": f["h"], "l": f["l"], "c": f["c"], "v": f["v"], "tu": f["tu"],
        })

    def restated(self, region: str, code: str) -> list[tuple[dt.date, dict[str, float], dict[str, float]]]:
        """Ground truth of `restate_codes`: (session, original bar, restated bar) of every session whose bar the
        kline endpoints serve restated now, oldest first; bars are {o, h, l, c, v, tu} floats. Empty for other
        codes. Two simulators' answers differ by the bars a clock step restated."""
        now = self.now()
        cal, raw = self._lookup("stock", region, code, now)
        info = self._resolve(region, code)
        if raw is None or info is None:
            raise KeyError(f"unknown stock {region}/{code}")
        if info.spec.code not in self.settings.restate_codes:
            return []
        now_ms = self._now_ms(now)
        cutoff = self._today(cal.tz, now) - dt.timedelta(days=self.settings.restate_after_days)
        served = self._daily_cols(cal, self._served(region, code, cal, raw, now), now_ms, None, None)
        k = min(self._bars_through(cal, raw, cutoff), len(served))  # late bars may withhold restated ones
        original = self._daily_cols(cal, raw, now_ms, None, None).floats()
        new = served.floats()
        return [(cal.days[raw.pos[i]].item(), {f: float(original[f][i]) for f in original},
                 {f: float(new[f][i]) for f in new}) for i in range(k)]

    def withheld(self, region: str, code: str) -> list[dt.date]:
        """Ground truth of `late_bar_codes`: completed sessions of the code whose bar is not served yet."""
        now = self.now()
        cal, raw = self._lookup("stock", region, code, now)
        if raw is None:
            raise KeyError(f"unknown stock {region}/{code}")
        now_ms = self._now_ms(now)
        k = len(self._daily_cols(cal, self._served(region, code, cal, raw, now), now_ms, None, None))
        done = len(self._daily_cols(cal, raw, now_ms, None, None))
        return [cal.days[p].item() for p in raw.pos[k:done]]

    # ------------------------------------------------------------------ data access
    def _now_ms(self, now: dt.datetime | None = None) -> int:
        return int((now or self.now()).timestamp() * 1000)

    def _check_region(self, region: str) -> None:
        if region not in self.settings.regions:
            raise ValueError(f"region {region!r} is not served (regions={self.settings.regions})")

    def _get_series(self, key: tuple[str, str, str], make) -> Series:
        s = self._series.get(key)
        if s is not None:
            with self._lock:
                if key in self._series:
                    self._series.move_to_end(key)
            return s
        s = make()
        with self._lock:
            self._series[key] = s
            while len(self._series) > self._cache_size:
                self._series.popitem(last=False)
        return s

    def _lookup(self, asset: str, region: str, code: str, now: dt.datetime
                ) -> tuple[CalendarData, Series | None]:
        seed = self.settings.seed
        if asset == "stock":
            if region not in self.settings.regions:
                raise _param_error(f"region {region!r} is not supported for stock (served: "
                                   f"{','.join(self.settings.regions)})")
            cal = self._market_cal(region)
            info = self._resolve(region, code)
            if info is None or not self._visible(info, self._today(cal.tz, now)):
                return cal, None
            return cal, self._stock_series(region, info)
        if region != "GB":
            raise _param_error(f"region {region!r} is not supported for {asset} (use region=GB)")
        inst: Instrument | None = NON_STOCK[asset].get(code.upper())
        if inst is None:
            return self._calendar("FX"), None
        cal = self._calendar(inst.calendar)
        hp = self._hist_pos(cal)
        return cal, self._get_series((asset, "GB", inst.code),
                                     lambda: instrument_series(seed, inst, len(cal), hp))

    def _stock_series(self, region: str, info: SymbolInfo) -> Series:
        """The symbol's bars over the whole calendar (visible or not: reference data looks ahead of listing)."""
        cal = self._market_cal(region)
        hp = self._hist_pos(cal)
        return self._get_series(("stock", region, info.spec.code),
                                lambda: stock_series(self.settings.seed, info, len(cal), hp, MARKETS[region].dp))

    def _served(self, region: str, code: str, cal: CalendarData, s: Series, now: dt.datetime) -> Series:
        """The stock's bars as the feed serves them at `now`: bars old enough restated (`restate_codes`), the
        most recent ones withheld (`late_bar_codes`). Only the clock decides, so any two servers agree."""
        info = self._resolve(region, code)
        assert info is not None, "only called after a successful _lookup"
        code, st = info.spec.code, self.settings
        if code not in st.restate_codes and code not in st.late_bar_codes:
            return s
        today = self._today(cal.tz, now)
        if code in st.restate_codes:
            s = restate(s, self._bars_through(cal, s, today - dt.timedelta(days=st.restate_after_days)), info.lot)
        if code in st.late_bar_codes:
            s = head(s, self._bars_through(cal, s, today - dt.timedelta(days=st.late_bar_days)))
        return s

    @staticmethod
    def _bars_through(cal: CalendarData, s: Series, day: dt.date) -> int:
        """How many bars of `s` fall on sessions up to `day` (inclusive)."""
        bound = int(np.searchsorted(cal.days, np.datetime64(day, "D"), side="right"))
        return int(np.searchsorted(s.pos, bound))

    def _valuation(self, region: str, info: SymbolInfo, series: Series, k: int, today: dt.date) -> dict:
        """Fundamentals as of the k-th bar (k = bars served). Before any bar: the IPO offer price (listing day
        before its close), else the generator's start price."""
        if k:
            close = float(series.c[k - 1]) / 10**series.dp
            day = self._market_cal(region).days[series.pos[k - 1]].item()
        else:
            close = self._ipo_spec(region, info).offer_price if self._is_ipo(info) else info.start_price
            day = today
        return valuation(info, close, day, self.settings.history_start)

    def _is_ipo(self, info: SymbolInfo) -> bool:
        """Listed inside history: its first bar is on its listing date."""
        return info.spec.listed >= self.settings.history_start

    def _ipo_infos(self, region: str, kind: str, today: dt.date) -> list[SymbolInfo]:
        """In-history IPOs listed by `today` (recent) or after it (upcoming), by listing date then code."""
        ipos = (i for i in self._universe(region)[0] if self._is_ipo(i))
        hits = [i for i in ipos if (i.spec.listed <= today) == (kind == "recent")]
        return sorted(hits, key=lambda i: (i.spec.listed, i.spec.code))

    def _ipo_spec(self, region: str, info: SymbolInfo) -> IpoSpec:
        """Terms of an in-history IPO, taken from its first bar and the sessions before its listing date."""
        cal = self._market_cal(region)
        series = self._stock_series(region, info)
        assert int(series.pos[0]) == info.list_pos, "an IPO's first bar is on its listing date"
        dp = series.dp
        offer = offer_price(info, float(series.o[0]) / 10**dp, dp)
        lo, hi = price_range(offer, dp)
        sp = info.spec

        def before(n: int) -> dt.date:
            return cal.days[info.list_pos - n].item()

        return IpoSpec(sp.region, sp.code, sp.name, sp.exchange, sp.listed, offer, lo, hi, sp.shares_outstanding,
                       before(SUBSCRIPTION_OPENS), before(SUBSCRIPTION_CLOSES), before(ALLOTMENT_RESULT))

    def _daily_cols(self, cal: CalendarData, s: Series, now_ms: int, et: int | None, limit: int | None
                    ) -> BarCols:
        tarr = cal.t_ms[self.settings.bar_time]
        bound = cal.completed(now_ms)
        if et is not None:
            bound = min(bound, int(np.searchsorted(tarr, et, side="right" if self.settings.et_inclusive
                                                   else "left")))
        k = int(np.searchsorted(s.pos, bound, side="left"))
        lo = 0 if limit is None else max(0, k - limit)
        sl = slice(lo, k)
        return BarCols(tarr[s.pos[sl]], s.o[sl], s.h[sl], s.low[sl], s.c[sl], s.v[sl], s.tu_cents(sl), s.dp)

    def _period_cols(self, cal: CalendarData, s: Series, now_ms: int, et: int | None, limit: int,
                     ktype: int) -> BarCols:
        """Weekly/monthly bars aggregated from the completed daily bars (the last one may be partial)."""
        d = self._daily_cols(cal, s, now_ms, None, None)
        if len(d) == 0:
            return d
        days = cal.days[s.pos[: len(d)]]
        weeks = (days.astype(np.int64) + 3) // 7  # Monday-based weeks
        key = weeks if ktype == 9 else days.astype("datetime64[M]").astype(np.int64)
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        ends = np.r_[starts[1:], len(key)] - 1
        bt = self.settings.bar_time
        pos = s.pos[: len(d)]
        tpos = pos[ends] if bt == "close" else pos[starts]
        t = cal.t_ms[bt][tpos]
        v = np.add.reduceat(d.v, starts)
        cols = BarCols(t, d.o[starts], np.maximum.reduceat(d.h, starts), np.minimum.reduceat(d.low, starts),
                       d.c[ends], v, np.add.reduceat(d.tu_cents, starts), d.dp)
        k = len(t) if et is None else int(np.searchsorted(
            t, et, side="right" if self.settings.et_inclusive else "left"))
        sl = slice(max(0, k - limit), k)
        fields = ("t", "o", "h", "low", "c", "v", "tu_cents")
        return BarCols(*(getattr(cols, f)[sl] for f in fields), dp=cols.dp)

    # ------------------------------------------------------------------ fault injection
    def _omits(self, code: str) -> bool:
        """Whether this batch request leaves `code` out: on its first `batch_omit_times` requests, or always."""
        if code not in self.settings.batch_omit_codes:
            return False
        with self._lock:
            seen = self._omitted.get(code, 0)
            self._omitted[code] = seen + 1
        times = self.settings.batch_omit_times
        return times is None or seen < times

    # ------------------------------------------------------------------ WSGI
    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO") or "/"
        fault = self._draw_fault(path)
        if fault == "timeout":
            time.sleep(self.settings.fault_timeout_s)
        headers = [("Content-Type", "application/json")]
        if fault in FAULT_ANSWERS:
            (status, body), rate_limited = FAULT_ANSWERS[fault], False
            if fault == "429":
                headers.append(("Retry-After", f"{self.settings.fault_retry_after_s:g}"))
        else:
            status, body, rate_limited = self._handle(environ, path)
        self.counters.record(path, status, rate_limited)
        length = len(body)
        if fault in ("reset", "malformed_json"):
            body = body[: len(body) // 2]  # a proper prefix of a JSON object is never JSON
            # "reset" keeps announcing the whole length: the connection closes mid-body
            length = length if fault == "reset" else len(body)
        reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
                  429: "Too Many Requests", 500: "Internal Server Error",
                  503: "Service Unavailable"}.get(status, "Error")
        start_response(f"{status} {reason}", [*headers, ("Content-Length", str(length))])
        return [body]

    def _draw_fault(self, path: str) -> str | None:
        """The fault (a kind of `fault_kinds`) this routed request meets, or None; counted in `counters`."""
        st = self.settings
        if st.fault_rate <= 0 or path not in self._routes:
            return None
        with self._lock:
            n = self._fault_seq
            self._fault_seq += 1
            if st.fault_max is not None and self._faults_injected >= st.fault_max:
                return None
            u, pick = _fault_draw(st.seed, n)
            if u >= st.fault_rate:
                return None
            self._faults_injected += 1
        kind = st.fault_kinds[pick % len(st.fault_kinds)]
        self.counters.record_fault(kind)
        return kind

    def _handle(self, environ, path: str) -> tuple[int, bytes, bool]:
        if self.settings.latency_ms > 0:
            time.sleep(self.settings.latency_ms / 1000.0)
        handler = self._routes.get(path)
        method = environ.get("REQUEST_METHOD", "GET")
        if handler is None or method not in ("GET", "HEAD"):
            body = orjson.dumps({"code": 404, "msg": f"not found: {method} {path}", "data": None})
            return 404, body, False
        try:
            token = environ.get("HTTP_TOKEN", "")
            tokens = self.settings.tokens
            if not token or (tokens is not None and token not in tokens):
                raise ApiError("E002")
            if not self._quota.acquire(token):
                return 429, RATE_LIMIT_BODY, True
            params = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", ""),
                                                     keep_blank_values=True).items()}
            now = self.now()
            data_json, msg = handler(params, now)
            return 200, b'{"code":0,"msg":' + msg + b',"data":' + data_json + b"}", False
        except ApiError as e:
            return self._error(e)
        except Exception as e:  # pragma: no cover - defensive
            return 500, orjson.dumps({"code": 500, "msg": f"internal error: {e!r}", "data": None}), False

    def _error(self, e: ApiError) -> tuple[int, bytes, bool]:
        http = self.settings.error_http_status
        if e.kind in E_TEXT:
            text = E_TEXT[e.kind]
            if self.settings.error_code_style == "string":
                env = {"code": e.kind, "msg": text, "data": None}
            else:
                env = {"code": 1, "msg": f"{e.kind}: {text}", "data": None}
            status = (401 if e.kind == "E002" else 404) if http else 200
            return status, orjson.dumps(env), False
        return (400 if http else 200), orjson.dumps({"code": 400, "msg": e.msg, "data": None}), False

    # ------------------------------------------------------------------ params
    @staticmethod
    def _req(params: dict, name: str, *aliases: str) -> str:
        for n in (name, *aliases):
            v = params.get(n)
            if v is not None and v.strip() != "":
                return v.strip()
        raise _param_error(f"missing required parameter '{name}'")

    @staticmethod
    def _int(params: dict, name: str, *aliases: str, default: int | None = None, required: bool = True
             ) -> int | None:
        for n in (name, *aliases):
            v = params.get(n)
            if v is not None and v.strip() != "":
                try:
                    return int(v.strip())
                except ValueError:
                    raise _param_error(f"parameter '{name}' must be an integer, got {v!r}") from None
        if required and default is None:
            raise _param_error(f"missing required parameter '{name}'")
        return default

    def _region(self, params: dict) -> str:
        region = self._req(params, "region").upper()
        if region not in MARKETS and region != "GB":
            raise _param_error(f"unknown region {region!r}")
        return region

    def _stock_region(self, params: dict) -> str:
        region = self._region(params)
        if region not in self.settings.regions:
            raise _param_error(f"region {region!r} is not supported for stock (served: "
                               f"{','.join(self.settings.regions)})")
        return region

    # ------------------------------------------------------------------ endpoints
    def _symbol_list(self, params: dict, now: dt.datetime) -> tuple[bytes, bytes]:
        typ = self._req(params, "type").lower()
        code = (params.get("code") or "").strip()
        if typ in NON_STOCK:
            if self._region(params) != "GB":
                raise _param_error(f"type {typ} is only available for region GB")
            items = [{"c": i.code, "n": i.name, "t": typ, "e": "GB", "s": None, "l": i.name.lower()}
                     for i in NON_STOCK[typ].values() if not code or i.code == code.upper()]
            return orjson.dumps(items), b'"ok"'
        if typ != "stock":
            raise _param_error(f"type {typ!r} is not supported by the simulator (stock, indices, forex)")
        region = self._stock_region(params)
        today = self._today(MARKETS[region].tz, now)
        items = []
        for info in self._universe(region)[0]:
            sp = info.spec
            if not self._visible(info, today) or (code and sp.code != code):
                continue
            if not self.settings.list_delisted and sp.delisted is not None and sp.delisted <= today:
                continue
            items.append({"c": sp.code, "n": sp.name, "t": "stock", "e": sp.exchange, "s": None,
                          "l": sp.name.lower()})
        if not code:
            items.extend(dict(entry) for entry in self.settings.symbol_list_extra)
        return orjson.dumps(items), b'"ok"'

    def _holidays(self, params: dict, now: dt.datetime) -> tuple[bytes, bytes]:
        code = (params.get("code") or "").strip().upper()
        regions = list(self.settings.regions)
        if code:
            if code not in regions:
                raise _param_error(f"unknown market code {code!r} (served: {','.join(regions)})")
            regions = [code]
        out = []
        for region in regions:
            m = MARKETS[region]
            cal = self._market_cal(region)
            for year in range(self.settings.history_start.year, now.year + 2):
                lo, hi = np.datetime64(f"{year}-01-01", "D"), np.datetime64(f"{year + 1}-01-01", "D")
                wd = np.arange(lo, hi, dtype="datetime64[D]")
                wd = wd[np.is_busday(wd)]
                i0, i1 = np.searchsorted(cal.days, [lo, hi])
                closed = np.setdiff1d(wd, cal.days[i0:i1])
                ref = max(i0, min(i1, len(cal.days)) - 1)
                o = pd.Timestamp(int(cal.t_ms["open"][ref]), unit="ms", tz="UTC").tz_convert(m.tz)
                c = pd.Timestamp(int(cal.t_ms["close"][ref]), unit="ms", tz="UTC").tz_convert(m.tz)
                out.append({"c": region, "r": m.country, "tz": m.tz_offset,
                            "et": f"{o:%H:%M} - {c:%H:%M}",
                            "v": json.dumps([str(d) for d in closed]), "ey": str(year), "vr": None})
        return orjson.dumps(out), b'"ok"'

    def _stock_info(self, params: dict, now: dt.datetime) -> tuple[bytes, bytes]:
        typ = (params.get("type") or "stock").strip().lower()
        if typ != "stock":
            raise _param_error(f"type {typ!r} is not supported by /stock/info (stock only)")
        region = self._stock_region(params)
        code = self._req(params, "code")
        cal, series = self._lookup("stock", region, code, now)
        if series is None:
            raise ApiError("E001")
        info = self._resolve(region, code)
        assert info is not None
        sp = info.spec
        k = int(np.searchsorted(series.pos, cal.completed(self._now_ms(now))))
        f = self._valuation(region, info, series, k, self._today(cal.tz, now))
        data = {"c": sp.code, "n": sp.name, "t": "stock", "e": sp.exchange, "s": sp.sector, "i": sp.industry,
                "l": sp.name.lower(), "r": region, "bd": info.description, "wu": info.website,
                "mcb": f["market_cap"], "tso": f["shares_outstanding"], "pet": f["pe"], "fcc": sp.currency}
        return orjson.dumps(data), b'"ok"'

    def _resolve(self, region: str, code: str) -> SymbolInfo | None:
        """Exact code, else HK without leading zeros ("00700" -> "700"), else upper case."""
        by_code = self._universe(region)[1]
        info = by_code.get(code)
        if info is None and region == "HK" and code.isdigit():
            info = by_code.get(code.lstrip("0"))
        if info is None and code != code.upper():
            info = by_code.get(code.upper())
        return info

    def _paging(self, params: dict, default_size: int) -> tuple[int, int]:
        """Optional 0-based `page` and `size` (undocumented request side of the Spring-style page objects)."""
        page = self._int(params, "page", default=0, required=False)
        size = self._int(params, "size", default=default_size, required=False)
        assert page is not None
        assert size is not None
        if page < 0 or size < 1:
            raise _param_error("parameters 'page' must be >= 0 and 'size' >= 1")
        return page, size

    @staticmethod
    def _page(items: list, page: int, size: int, render) -> dict:
        """A Spring-style page object over `items`, rendering only the page's own items."""
        total = len(items)
        pages = (total + size - 1) // size
        content = [render(x) for x in items[page * size : (page + 1) * size]]
        return {"content": content, "page": page, "size": size, "totalElements": total,
                "totalPages": pages, "last": page >= pages - 1}

    def _stock_split(self, params: dict, now: dt.datetime) -> tuple[bytes, bytes]:
        region = self._stock_region(params)
        code = (params.get("code") or "").strip()
        page, size = self._paging(params, default_size=100)
        m = MARKETS[region]
        today = self._today(m.tz, now)
        items = [s for i in self._universe(region)[0] if self._visible(i, today) for s in i.splits
                 if self._published(s, today) and (not code or s.code == code)]
        items.sort(key=lambda s: (s.ex_date, s.code))

        def render(s: SplitSpec) -> dict:
            return {"d": local_midnight_ms(s.ex_date, m.tz), "r": region, "n": s.name, "c": s.code,
                    "v": f"{s.ratio_from}:{s.ratio_to}"}

        return orjson.dumps(self._page(items, page, size, render)), b'"ok"'

    def _stock_ipo(self, params: dict, now: dt.datetime) -> tuple[bytes, bytes]:
        typ = self._req(params, "type").lower()
        if typ not in IPO_TYPES:
            raise _param_error(f"invalid type {typ!r} for /stock/ipo (recent or upcoming)")
        region = self._stock_region(params)
        page, size = self._paging(params, default_size=20)
        m = MARKETS[region]
        items = self._ipo_infos(region, typ, self._today(m.tz, now))

        def render(info: SymbolInfo) -> dict:
            return ipo_item(self._ipo_spec(region, info), m.tz, m.country_code, upcoming=typ == "upcoming")

        return orjson.dumps(self._page(items, page, size, render)), b'"ok"'

    def _kline_handler(self, asset: str, batch: bool):
        def handler(params: dict, now: dt.datetime) -> tuple[bytes, bytes]:
            region = self._stock_region(params) if asset == "stock" else self._region(params)
            if asset != "stock" and region != "GB":
                raise _param_error(f"region {region!r} is not supported for {asset} (use region=GB)")
            ktype = self._int(params, "kType", "period")
            assert ktype is not None
            if ktype not in KTYPES_SUPPORTED:
                if ktype in KTYPES_KNOWN:
                    raise _param_error(f"kType {ktype} is not supported by the simulator "
                                       "(daily kType 8, weekly 9 and monthly 10 only)")
                raise _param_error(f"invalid kType {ktype} (valid: 1..10)")
            limit = self._int(params, "limit")
            assert limit is not None
            if limit < 1:
                raise _param_error(f"parameter 'limit' must be >= 1, got {limit}")
            limit = min(limit, self.settings.max_limit)
            et = self._int(params, "et", "end", required=False)
            now_ms = self._now_ms(now)
            if et is None:
                et = now_ms

            def bars(code: str) -> BarCols | None:
                cal, series = self._lookup(asset, region, code, now)
                if series is None:
                    return None
                if asset == "stock":
                    series = self._served(region, code, cal, series, now)
                if ktype == 8:
                    cols = self._daily_cols(cal, series, now_ms, et, limit)
                else:
                    cols = self._period_cols(cal, series, now_ms, et, limit, ktype)
                if self.settings.sort_order == "desc":
                    cols = BarCols(*(getattr(cols, f)[::-1] for f in ("t", "o", "h", "low", "c", "v",
                                                                        "tu_cents")), dp=cols.dp)
                return cols

            if not batch:
                cols = bars(self._req(params, "code"))
                if cols is None:
                    raise ApiError("E001")
                return encode_bars(cols), b"null"
            raw = self._req(params, "codes")
            codes = list(dict.fromkeys(c.strip() for c in raw.split(",") if c.strip()))
            if not codes:
                raise _param_error("parameter 'codes' is empty")
            if len(codes) > self.settings.max_codes_per_call:
                raise _param_error(f"too many codes: {len(codes)} > {self.settings.max_codes_per_call} "
                                   "(max codes per call)")
            omitted = {c for c in codes if self._omits(c)}
            found = [(c, None if c in omitted else bars(c)) for c in codes]
            present = [(c, b) for c, b in found if b is not None]
            encoded = {c: encode_bars(b) for c, b in present}
            parts = []
            for c, b in found:
                style = self.settings.batch_omit_style if c in omitted else self.settings.unknown_code_in_batch
                if b is None and style == "omit":
                    continue
                body = encoded[c] if b is not None else (b"[]" if style == "empty" else b"null")
                parts.append(orjson.dumps(c) + b":" + body)
            # unrequested codes get the bars of the first answered code: plausible, on sessions, valid OHLC
            extra_bars = next(iter(encoded.values()), b"[]")
            parts.extend(orjson.dumps(c) + b":" + extra_bars for c in self.settings.batch_extra_codes
                         if c not in codes)
            return b"{" + b",".join(parts) + b"}", b"null"

        return handler
