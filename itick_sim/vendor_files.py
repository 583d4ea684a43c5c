"""Vendor end-of-day files in the Quandl format, made from the simulator's own bars, with controlled divergences.

`vendor_file(simulator, region, start, end)` writes what a second data vendor would deliver for the window: one
gzip CSV row per (ticker, exchange-local session) with the RAW prices and volume exactly as the simulator's kline
endpoints serve them (`Simulator.daily_bars`), the split effective that session from its corporate actions
(`Simulator.splits`: `ratio_to / ratio_from`, 2.0 = 2-for-1, 1.0 on other days), `ex-dividend` 0.0 (the simulator
has no dividends) and the adjusted columns back-adjusted for the file's own splits after each row's date up to the
file's last date (prices divide by the product of those ratios, volume multiplies by it).

`Divergences` asks for deliberate differences from the API; each one the file carries is listed in
`VendorFile.truth`, one `Truth` per disagreeing (symbol, session, field), so a test can assert an arbitration
against it. Kinds:

- `off_tolerance`: one price field of a bar moved by `off_tolerance_bps` (far beyond a 5 bps tolerance).
- `within_tolerance`: one price field moved by `within_tolerance_bps` (< 1 bp): must arbitrate as agreed.
- `shifted_date`: one code's bars dated one session late over `shifted_span` sessions d1..dk: the vendor's row
  at d(i) carries the API's bar of d(i-1), the vendor has no row at d0 (field "bar") and drops the API's bar of
  dk. Every shifted row's close differs from the API's by more than twice the price tolerance.
- `adjusted_rows`: one code with a split inside the window whose raw columns carry the split-adjusted prices and
  volume (its adj_* values) on every row before the split.
- `missing_split`: the vendor reports split_ratio 1.0 on an ex-date the simulator's corporate actions list (and its
  adjusted columns ignore that split, as such a vendor's would).
- `halt`: a session on which the API has no bar (the simulator's series skip sessions: single days and runs of
  2-14, see `itick_sim.series`) and the vendor has a zero-volume flat bar, o=h=l=c= the API's previous close.
- `vendor_only`: a session the API has no bar for and the vendor has a plausible traded bar.
- `api_only`: a bar the API has and the vendor leaves out.

A row present on one side only is one Truth with field "bar" (its close as the value, None on the missing side);
otherwise one Truth per differing field among open, high, low, close, volume, split_ratio. Every divergence sits on
its own sessions (and the ones around them), so no two ever touch the same row. Everything is deterministic from
the simulator's settings, the window and `seed`: the same inputs give byte-identical files.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import gzip
import io
import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from itick_sim.app import Simulator
from itick_sim.markets import MARKETS, rng_for

HEADER = ("ticker", "date", "open", "high", "low", "close", "volume", "ex-dividend", "split_ratio",
          "adj_open", "adj_high", "adj_low", "adj_close", "adj_volume")
PRICES = ("open", "high", "low", "close")
FIELDS = (*PRICES, "volume", "split_ratio")
KINDS = ("off_tolerance", "within_tolerance", "shifted_date", "adjusted_rows", "missing_split", "halt",
         "vendor_only", "api_only")
PRICE_TOLERANCE_BPS = 5.0  # the arbitration's default price tolerance the kinds are placed around
ADJ_DECIMALS = 8  # adjusted (and moved) values are rounded to this many decimals


@dataclass(frozen=True)
class Divergences:
    """How many of each divergence kind to introduce (as many as the window allows, see VendorFile.shortfall)."""

    off_tolerance: int = 2
    within_tolerance: int = 2
    shifted_date: int = 1
    adjusted_rows: int = 1
    missing_split: int = 1
    halt: int = 2
    vendor_only: int = 2
    api_only: int = 2
    off_tolerance_bps: float = 50.0
    within_tolerance_bps: float = 0.5
    shifted_span: int = 3  # shifted sessions d1..dk

    def __post_init__(self) -> None:
        for kind in KINDS:
            n = getattr(self, kind)
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise ValueError(f"Divergences.{kind} must be an int >= 0, not {n!r}")
        if not self.off_tolerance_bps > 2 * PRICE_TOLERANCE_BPS:
            raise ValueError(f"off_tolerance_bps must be well beyond {PRICE_TOLERANCE_BPS} bps")
        if not 0 < self.within_tolerance_bps < 1:
            raise ValueError("within_tolerance_bps must be in (0, 1)")
        if self.shifted_span < 1:
            raise ValueError("shifted_span must be >= 1")

    @classmethod
    def none(cls) -> Divergences:
        """No divergence: the file agrees exactly with the API."""
        return cls(**dict.fromkeys(KINDS, 0))

    def counts(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in KINDS}


@dataclass(frozen=True)
class Truth:
    """One disagreement the vendor file carries on purpose. Values are floats, None for a row one side lacks."""

    kind: str
    symbol: str
    trade_date: dt.date
    field: str  # open | high | low | close | volume | split_ratio | bar (a row only one side has)
    vendor_value: float | None
    api_value: float | None

    def to_dict(self) -> dict:
        return {"kind": self.kind, "symbol": self.symbol, "trade_date": self.trade_date.isoformat(),
                "field": self.field, "vendor_value": self.vendor_value, "api_value": self.api_value}

    @classmethod
    def from_dict(cls, d: dict) -> Truth:
        return cls(d["kind"], d["symbol"], dt.date.fromisoformat(d["trade_date"]), d["field"],
                   d["vendor_value"], d["api_value"])


@dataclass(frozen=True)
class VendorFile:
    name: str  # quandl_eod_<last date in the file, YYYYMMDD>.csv.gz
    data: bytes  # gzip CSV
    truth: list[Truth]
    region: str = ""
    start: dt.date | None = None
    end: dt.date | None = None
    seed: int = 0
    divergences: Divergences = field(default_factory=Divergences.none)
    shortfall: dict[str, int] = field(default_factory=dict)  # kind -> asked for but not placed (window too small)

    def truth_json(self) -> bytes:
        """What the CLI writes as `<name>.truth.json`."""
        doc = {"file": self.name, "region": self.region,
               "start": self.start.isoformat() if self.start else None,
               "end": self.end.isoformat() if self.end else None, "seed": self.seed,
               "divergences": dataclasses.asdict(self.divergences), "shortfall": self.shortfall,
               "truth": [t.to_dict() for t in self.truth]}
        return (json.dumps(doc, indent=1) + "\n").encode()


def read_truth(data: bytes) -> list[Truth]:
    """The Truth list of a `<name>.truth.json`."""
    return [Truth.from_dict(d) for d in json.loads(data)["truth"]]


def _date(d: dt.date | str) -> dt.date:
    return dt.date.fromisoformat(d) if isinstance(d, str) else d


@dataclass
class _Code:
    code: str
    bars: dict[dt.date, dict[str, float]]  # window sessions with an API bar -> {open..volume, split_ratio}
    all_days: np.ndarray  # datetime64[D] of every served bar (outside the window too)
    all_close: np.ndarray
    all_volume: np.ndarray
    splits: dict[dt.date, float]  # ex-date -> ratio, inside the window


class _Builder:
    def __init__(self, simulator: Simulator, region: str, start: dt.date, end: dt.date, codes: list[str] | None,
                 div: Divergences, seed: int) -> None:
        self.region, self.start, self.end, self.div, self.seed = region, start, end, div, seed
        self.dp = MARKETS[region].dp
        cal = simulator.calendar(region)
        self.sessions = [d.date() for d in cal[(cal >= pd.Timestamp(start)) & (cal <= pd.Timestamp(end))]]
        self.sidx = {d: i for i, d in enumerate(self.sessions)}
        if codes is None:
            codes = [s.code for s in simulator.universe(region)]
        ratios: dict[str, dict[dt.date, float]] = {}
        for sp in simulator.splits(region):
            if sp.ex_date in self.sidx:
                ratios.setdefault(sp.code, {})[sp.ex_date] = sp.ratio_to / sp.ratio_from
        self.codes: dict[str, _Code] = {}
        for code in codes:
            df = simulator.daily_bars(region, code)
            days = df["trade_date"].values.astype("datetime64[D]")
            splits = ratios.get(code, {})
            bars = {}
            for d, o, h, low, c, v in zip(days.tolist(), df["o"].tolist(), df["h"].tolist(), df["l"].tolist(),
                                          df["c"].tolist(), df["v"].tolist(), strict=True):
                if d in self.sidx:
                    bars[d] = {"open": o, "high": h, "low": low, "close": c, "volume": v,
                               "split_ratio": splits.get(d, 1.0)}
            if bars:
                self.codes[code] = _Code(code, bars, days, df["c"].to_numpy(), df["v"].to_numpy(), splits)
        if not self.codes:
            raise ValueError(f"no {region} bars between {start} and {end} for the codes asked")
        self.vendor: dict[str, dict[dt.date, dict[str, float]]] = {
            c: {d: dict(b) for d, b in x.bars.items()} for c, x in self.codes.items()}
        self.tags: dict[tuple[str, dt.date], str] = {}
        self.reserved: dict[str, set[int]] = {c: set() for c in self.codes}
        self.whole: set[str] = set()  # codes a code-level divergence owns
        self.adjusted: set[str] = set()
        self.shortfall: dict[str, int] = {}

    # ------------------------------------------------------------------ helpers
    def _rng(self, kind: str) -> np.random.Generator:
        return rng_for(self.seed, "vendor_file", self.region, kind)

    def _free(self, code: str, lo: int, hi: int) -> bool:
        return code not in self.whole and not any(i in self.reserved[code] for i in range(lo, hi + 1))

    def _reserve(self, code: str, lo: int, hi: int) -> None:
        self.reserved[code].update(range(lo, hi + 1))

    def _surrounding(self, x: _Code, d: dt.date) -> tuple[int, int] | None:
        """Indices into x.all_days of the served bars just before and just after session d (which has none)."""
        k = int(np.searchsorted(x.all_days, np.datetime64(d, "D")))
        if k == 0 or k >= len(x.all_days):
            return None  # before the first bar or after the last one: not listed (or not yet served)
        return k - 1, k

    def _window_index(self, day: np.datetime64, default: int) -> int:
        return self.sidx.get(day.item(), default)

    def _pick(self, kind: str, candidates: list, fits) -> int:
        """Place up to the asked number of `kind` among `candidates` (a deterministic shuffle); `fits(c)` places
        one if it can. Records any shortfall."""
        want = getattr(self.div, kind)
        if not want:
            return 0
        made = 0
        for i in self._rng(kind).permutation(len(candidates)).tolist():
            if made == want:
                break
            if fits(candidates[i]):
                made += 1
        if made < want:
            self.shortfall[kind] = want - made
        return made

    # ------------------------------------------------------------------ kinds
    def shifted_date(self) -> None:
        k, tol = self.div.shifted_span, 2 * PRICE_TOLERANCE_BPS / 1e4

        def runs(x: _Code) -> list[int]:
            out = []
            for i0 in range(len(self.sessions) - k):
                days = self.sessions[i0 : i0 + k + 1]
                if any(d not in x.bars or d in x.splits for d in days):
                    continue
                closes = [x.bars[d]["close"] for d in days]
                if all(abs(closes[i - 1] / closes[i] - 1) > tol for i in range(1, k + 1)):
                    out.append(i0)
            return out

        def fits(code: str) -> bool:
            x = self.codes[code]
            if code in self.whole or self.reserved[code]:
                return False
            starts = runs(x)
            if not starts:
                return False
            i0 = starts[int(self._rng(f"shifted_date:{code}").integers(0, len(starts)))]
            days = self.sessions[i0 : i0 + k + 1]
            rows = self.vendor[code]
            moved = [dict(rows[d]) for d in days[:-1]]
            del rows[days[0]]
            for d, bar in zip(days[1:], moved, strict=True):
                bar["split_ratio"] = x.bars[d]["split_ratio"]  # the split column follows the date
                rows[d] = bar
            for d in days:
                self.tags[(code, d)] = "shifted_date"
            self.whole.add(code)
            return True

        self._pick("shifted_date", sorted(self.codes), fits)

    def adjusted_rows(self) -> None:
        def fits(code: str) -> bool:
            x = self.codes[code]
            if code in self.whole or self.reserved[code]:
                return False
            first = min(x.splits)
            before = [d for d in x.bars if d < first]
            if not before:
                return False
            self.adjusted.add(code)  # raw := adj on every row with a split after it (see _adjust)
            for d in x.bars:
                if d < max(x.splits):
                    self.tags[(code, d)] = "adjusted_rows"
            self.whole.add(code)
            return True

        self._pick("adjusted_rows", sorted(c for c, x in self.codes.items() if x.splits), fits)

    def missing_split(self) -> None:
        def fits(cand: tuple[str, dt.date]) -> bool:
            code, d = cand
            i = self.sidx[d]
            if not self._free(code, i - 1, i + 1):
                return False
            self.vendor[code][d]["split_ratio"] = 1.0
            self.tags[(code, d)] = "missing_split"
            self._reserve(code, i - 1, i + 1)
            return True

        cands = sorted((c, d) for c, x in self.codes.items() for d in x.splits if d in x.bars)
        self._pick("missing_split", cands, fits)

    def _gaps(self) -> list[tuple[str, dt.date]]:
        return sorted((c, d) for c, x in self.codes.items() for d in self.sessions
                      if d not in x.bars and self._surrounding(x, d) is not None)

    def _gap_kind(self, kind: str, make) -> None:
        def fits(cand: tuple[str, dt.date]) -> bool:
            code, d = cand
            x = self.codes[code]
            around = self._surrounding(x, d)
            if (code, d) in self.tags or around is None:
                return False
            prev, nxt = around
            lo = self._window_index(x.all_days[prev], 0)
            hi = self._window_index(x.all_days[nxt], len(self.sessions) - 1)
            if not self._free(code, lo, hi):
                return False
            self.vendor[code][d] = make(code, d, float(x.all_close[prev]), float(x.all_volume[prev]))
            self.tags[(code, d)] = kind
            self._reserve(code, lo, hi)
            return True

        self._pick(kind, self._gaps(), fits)

    def halt(self) -> None:
        def make(code: str, d: dt.date, prev_close: float, prev_volume: float) -> dict[str, float]:
            return {"open": prev_close, "high": prev_close, "low": prev_close, "close": prev_close,
                    "volume": 0.0, "split_ratio": 1.0}

        self._gap_kind("halt", make)

    def vendor_only(self) -> None:
        rng = self._rng("vendor_only:bars")
        tick = 10.0**-self.dp

        def make(code: str, d: dt.date, prev_close: float, prev_volume: float) -> dict[str, float]:
            o = prev_close
            c = round(o * (1 + float(rng.uniform(-0.01, 0.01))), self.dp)
            if c == o:
                c = round(o + tick, self.dp)
            h = round(max(o, c) * 1.004 + tick, self.dp)
            low = max(round(min(o, c) * 0.996 - tick, self.dp), tick)
            return {"open": o, "high": h, "low": min(low, o, c), "close": c, "volume": max(prev_volume, 1.0),
                    "split_ratio": 1.0}

        self._gap_kind("vendor_only", make)

    def _with_bar(self) -> list[tuple[str, dt.date]]:
        return sorted((c, d) for c, x in self.codes.items() for d in x.bars if d not in x.splits)

    def _moved(self, kind: str, bps: float) -> None:
        rng = self._rng(f"{kind}:fields")

        def fits(cand: tuple[str, dt.date]) -> bool:
            code, d = cand
            i = self.sidx[d]
            if not self._free(code, i - 1, i + 1):
                return False
            row = self.vendor[code][d]
            f = PRICES[int(rng.integers(0, len(PRICES)))]
            b = bps / 1e4
            up = {"high": True, "low": False}.get(f)
            if up is None:  # open / close: whichever way keeps it inside [low, high], else move the high
                x = row[f]
                if x * (1 + b) <= row["high"]:
                    up = True
                elif x * (1 - b) >= row["low"]:
                    up = False
                else:
                    f, up = "high", True
            new = round(row[f] * (1 + b if up else 1 - b), ADJ_DECIMALS)
            if new == row[f] or new <= 0:
                return False
            row[f] = new
            self.tags[(code, d)] = kind
            self._reserve(code, i - 1, i + 1)
            return True

        self._pick(kind, self._with_bar(), fits)

    def off_tolerance(self) -> None:
        self._moved("off_tolerance", self.div.off_tolerance_bps)

    def within_tolerance(self) -> None:
        self._moved("within_tolerance", self.div.within_tolerance_bps)

    def api_only(self) -> None:
        def fits(cand: tuple[str, dt.date]) -> bool:
            code, d = cand
            i = self.sidx[d]
            if not self._free(code, i - 1, i + 1):
                return False
            del self.vendor[code][d]
            self.tags[(code, d)] = "api_only"
            self._reserve(code, i - 1, i + 1)
            return True

        self._pick("api_only", self._with_bar(), fits)

    # ------------------------------------------------------------------ output
    def build(self) -> VendorFile:
        # scarce resources first: whole codes, splits, then gap sessions, then any bar
        for kind in ("shifted_date", "adjusted_rows", "missing_split", "halt", "vendor_only", "off_tolerance",
                     "within_tolerance", "api_only"):
            getattr(self, kind)()
        rows = self._rows(self._adjust())
        truth = self._truth()
        last = max(r[1] for r in rows)
        name = f"quandl_eod_{last.replace('-', '')}.csv.gz"
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(HEADER)
        w.writerows(rows)
        data = gzip.compress(buf.getvalue().encode(), compresslevel=6, mtime=0)
        return VendorFile(name, data, truth, self.region, self.start, self.end, self.seed, self.div,
                          dict(self.shortfall))

    def _adjust(self) -> dict[tuple[str, dt.date], dict[str, float]]:
        """Each vendor row's adjusted columns: back-adjusted for the file's own splits (its split_ratio column)
        after the row's date, up to the file's last date. Then the `adjusted_rows` codes' raw columns take them."""
        adj: dict[tuple[str, dt.date], dict[str, float]] = {}
        for code, rows in self.vendor.items():
            ratios = [(d, r["split_ratio"]) for d, r in rows.items() if r["split_ratio"] != 1.0]
            for d, row in rows.items():
                factor = float(np.prod([r for d2, r in ratios if d2 > d])) if ratios else 1.0
                if factor == 1.0:
                    adj[(code, d)] = {f: row[f] for f in (*PRICES, "volume")}
                    continue
                a = {f: round(row[f] / factor, ADJ_DECIMALS) for f in PRICES}
                a["volume"] = round(row["volume"] * factor, ADJ_DECIMALS)
                adj[(code, d)] = a
                if code in self.adjusted:
                    row.update(a)
        return adj

    def _rows(self, adj: dict[tuple[str, dt.date], dict[str, float]]) -> list[list[str]]:
        out = []
        for code in sorted(self.vendor):
            rows = self.vendor[code]
            for d in sorted(rows):
                raw, a = rows[d], adj[(code, d)]
                out.append([code, d.isoformat(), *(repr(float(raw[f])) for f in (*PRICES, "volume")), "0.0",
                            repr(float(raw["split_ratio"])), *(repr(float(a[f])) for f in (*PRICES, "volume"))])
        return out

    def _truth(self) -> list[Truth]:
        out: list[Truth] = []
        for code, x in self.codes.items():
            for d in self.sessions:
                a, v = x.bars.get(d), self.vendor[code].get(d)
                kind = self.tags.get((code, d))
                diffs = []
                if (a is None) != (v is None):
                    diffs.append(("bar", v and v["close"], a and a["close"]))
                elif a is not None and v is not None:
                    diffs.extend((f, v[f], a[f]) for f in FIELDS if v[f] != a[f])
                if kind is None:
                    if diffs:  # a bug here, never a data condition
                        raise RuntimeError(f"untagged divergence {code} {d}: {diffs}")
                    continue
                if not diffs:
                    raise RuntimeError(f"{kind} at {code} {d} left the row equal to the API's")
                out.extend(Truth(kind, code, d, f, vv, av) for f, vv, av in diffs)
        out.sort(key=lambda t: (t.symbol, t.trade_date, FIELDS.index(t.field) if t.field in FIELDS else -1))
        return out


def vendor_file(simulator: Simulator, region: str, start: dt.date | str, end: dt.date | str, *,
                codes: list[str] | None = None, divergences: Divergences | None = None, seed: int = 0
                ) -> VendorFile:
    """The Quandl-format vendor file of `region`'s sessions from `start` to `end` (inclusive, exchange-local) for
    `codes` (default: every listed code with a bar in the window), with `divergences` (default none: the file
    agrees exactly with the simulator's API). See the module docstring."""
    start, end = _date(start), _date(end)
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    div = Divergences.none() if divergences is None else divergences
    return _Builder(simulator, region, start, end, codes, div, seed).build()
