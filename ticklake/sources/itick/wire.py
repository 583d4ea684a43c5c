"""iTick's wire format as pure functions: kline and symbol-list payloads to dictionary frames, and the batch
call plan. The field names of the protocol (`t`, `o`, `c`, `tu`, `c`/`n`/`e` of a listing) live here and in the
iTick fetchers, never in the generic library.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Literal

import numpy as np
import orjson
import pandas as pd

from ticklake.dictionary.frames import string_array
from ticklake.dictionary.symbols import shown, symbol_problem

TimeConvention = Literal["exchange_local", "utc"]
BAR_FIELDS = {"o": "open", "h": "high", "l": "low", "c": "close", "v": "volume", "tu": "turnover"}
_BAR_KEYS = ("t", *BAR_FIELDS)
_BAR_GETTER = itemgetter(*_BAR_KEYS)


class PayloadError(ValueError):
    """A bar payload is malformed (missing field, non-numeric value)."""


def trade_dates(bar_ts_ms: np.ndarray, timezone: str, convention: TimeConvention) -> np.ndarray:
    """Map bar timestamps (epoch ms) to trading dates.

    "exchange_local": `t` is an instant on the trading day in the exchange's zone (its open, close or local
    midnight), so the date is taken *after* converting to that zone — taking the UTC date would shift US bars
    stamped at local midnight to the previous day. "utc": `t` is 00:00 UTC of the trading date.
    """
    ts = pd.to_datetime(np.asarray(bar_ts_ms, dtype="int64"), unit="ms", utc=True)
    if convention == "exchange_local":
        ts = ts.tz_convert(timezone)
    elif convention != "utc":
        raise ValueError(f"unknown bar time convention {convention!r} (exchange_local or utc)")
    return ts.tz_localize(None).normalize().values.astype("datetime64[ms]")


def session_end_ms(day: dt.date, timezone: str, convention: TimeConvention) -> int:
    """The `et` that includes every bar of `day` and nothing of the next session."""
    zone = timezone if convention == "exchange_local" else "UTC"
    # The next local midnight, not +24 h: a DST day lasts 23 or 25 hours.
    end = pd.Timestamp(day + dt.timedelta(days=1)).tz_localize(zone) - pd.Timedelta(milliseconds=1)
    return int(end.value // 1_000_000)


def _bar_matrix(region: str, code: str, bars: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray | None]:
    """One C-level pass per code: itemgetter over the dicts into a float64 matrix, sorted by `t`.

    A bar field that is not a number (`"c": "12.5abc"`, an object) does not fail the code: that field reads as NaN
    and the bar's raw values are returned alongside (an object array aligned with the rows, None for clean bars),
    so the bar is quarantined with what was sent. A missing field or a `t` that is not a number still fails: the
    answer's format changed, or the bar belongs to no session."""
    raw: np.ndarray | None = None
    try:
        block = np.array(list(map(_BAR_GETTER, bars)), dtype=np.float64)
    except KeyError as exc:
        raise PayloadError(f"{region}/{code}: bar without field {exc} in {_shown_bar(bars[0])}") from None
    except (TypeError, ValueError):
        block, raw = _tolerant_matrix(region, code, bars)
    if block.ndim != 2 or block.shape[1] != len(_BAR_KEYS):
        raise PayloadError(f"{region}/{code}: bars are not flat objects of numbers")
    t = block[:, 0]
    if not np.isfinite(t).all() or (len(t) and np.abs(t).max() >= 2**53):
        raise PayloadError(f"{region}/{code}: bar timestamp `t` missing or out of range")
    steps = np.diff(t)
    if (steps < 0).any():  # the sort order is undocumented: accept either, and anything else
        order = np.arange(len(t))[::-1] if (steps <= 0).all() else np.argsort(t, kind="stable")
        block = block[order]
        raw = None if raw is None else raw[order]
    return block, raw


def _tolerant_matrix(region: str, code: str, bars: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """The slow path of `_bar_matrix`, taken only when some value did not convert: bar by bar, field by field."""
    rows: list[list[float]] = []
    raw = np.full(len(bars), None, dtype=object)
    for i, bar in enumerate(bars):
        if not isinstance(bar, Mapping):
            raise PayloadError(f"{region}/{code}: bar {i} is not an object ({type(bar).__name__})")
        missing = next((k for k in _BAR_KEYS if k not in bar), None)
        if missing is not None:
            raise PayloadError(f"{region}/{code}: bar without field {missing!r} in {_shown_bar(bar)}")
        values, bad = [], {}
        for key in _BAR_KEYS:
            number = _number(bar[key])
            if number is None:
                if key == "t":
                    raise PayloadError(f"{region}/{code}: bar timestamp `t` is not a number: {shown_value(bar[key])}")
                bad[BAR_FIELDS[key]] = bar[key]
                number = math.nan
            values.append(number)
        rows.append(values)
        if bad:
            raw[i] = bad
    return np.array(rows, dtype=np.float64).reshape(len(rows), len(_BAR_KEYS)), raw


def _number(value: Any) -> float | None:
    """A bar value as a float the way the fast path reads it (None and numeric strings included), or None when it
    is not a number."""
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return None


RAW_VALUE_CHARS = 40


def shown_value(value: Any, limit: int = RAW_VALUE_CHARS) -> str:
    """A value as received, for a quarantine row or a message: JSON-like, cut to `limit` characters (the full
    length is said), control characters escaped, so a hostile megabyte or a line break cannot flood a log line."""
    text = ascii(value) if isinstance(value, str) else ascii(_jsonish(value))
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def raw_value(value: Any, limit: int = 200) -> str:
    """A value as received, for the quarantine's `raw`: a string as it is, anything else as JSON, cut to `limit`."""
    text = value if isinstance(value, str) else _jsonish(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def _jsonish(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return repr(value)


def _shown_bar(bar: Any) -> str:
    return shown_value(bar, limit=200)


def bars_to_frame(payload: Mapping[str, Sequence[Mapping[str, Any]] | None], *, region: str, timezone: str,
                  convention: TimeConvention) -> pd.DataFrame:
    """Batch kline payload (code -> bars) to a typed frame, one row per bar, sorted by (symbol, date).

    Codes whose value is None (unknown to the source) contribute no rows. Bars of one code and date with identical
    values collapse to one; bars that disagree are all kept, so validation quarantines them (`duplicate_key`)
    instead of one silently winning. A JSON null in a numeric field becomes NaN, which validation rejects. Bars
    with a non-numeric field are not in this frame: see `parse_bars`."""
    return parse_bars(payload, region=region, timezone=timezone, convention=convention)[0]


def parse_bars(payload: Mapping[str, Sequence[Mapping[str, Any]] | None], *, region: str, timezone: str,
               convention: TimeConvention) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`bars_to_frame`'s frame, and the bars refused because a field is not a number: their key, their values as
    received (the bad ones raw, cut short) and the rule and reason to quarantine them with (see `refused_frame`)."""
    codes = sorted(code for code, bars in payload.items() if bars)
    parsed = [_bar_matrix(region, code, payload[code]) for code in codes]  # type: ignore[arg-type]
    blocks = [b for b, _ in parsed]
    counts = [len(b) for b in blocks]
    matrix = np.concatenate(blocks) if blocks else np.empty((0, len(_BAR_KEYS)))
    ts = matrix[:, 0].astype("int64")
    dates = trade_dates(ts, timezone, convention)
    frame = pd.DataFrame(
        {
            "region": string_array([region], [len(ts)]),
            "symbol": string_array(codes, counts),
            "trade_date": dates,
            **{name: matrix[:, i + 1] for i, name in enumerate(BAR_FIELDS.values())},
            "bar_ts": pd.to_datetime(ts, unit="ms", utc=True).astype("datetime64[ms, UTC]"),
        }
    )
    if not any(raw is not None for _, raw in parsed):
        return _collapse_identical(frame, np.repeat(np.arange(len(codes)), counts), dates), _no_refused(frame)
    raw = np.concatenate([r if r is not None else np.full(len(b), None, dtype=object) for b, r in parsed])
    bad = np.array([r is not None for r in raw], dtype=bool)
    refused = refused_frame(frame[bad], raw[bad])
    good = frame[~bad].reset_index(drop=True)
    code_index = np.repeat(np.arange(len(codes)), counts)[~bad]
    return _collapse_identical(good, code_index, dates[~bad]), refused


def _collapse_identical(frame: pd.DataFrame, code_index: np.ndarray, dates: np.ndarray) -> pd.DataFrame:
    """Rows sorted by code then `t`: bars of one (code, date) are adjacent. Those with identical values keep the
    last one the source sent; those that disagree all stay (a conflicting duplicate is evidence, not a choice)."""
    same = (code_index[:-1] == code_index[1:]) & (dates[:-1] == dates[1:])
    if not same.any():
        return frame
    involved = np.zeros(len(frame), dtype=bool)
    involved[:-1] |= same
    involved[1:] |= same
    group = frame.loc[involved, ["symbol", "trade_date", *BAR_FIELDS.values()]]
    drop = np.zeros(len(frame), dtype=bool)
    drop[np.flatnonzero(involved)] = group.duplicated(keep="last").to_numpy()
    return frame[~drop].reset_index(drop=True) if drop.any() else frame


def refused_frame(rows: pd.DataFrame, raw: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Bars refused for a value that is not a number: the bars' columns with the bad values as received (shown
    cut short, so the quarantine's `raw` holds them), and `rule` (`close is a number`, the first bad field) and
    `reason` (every bad field with its value). Bars sent twice with the same values are one row."""
    out = rows.reset_index(drop=True).astype({name: object for name in BAR_FIELDS.values()})
    rules, reasons = [], []
    for i, bad in enumerate(raw):
        for name, value in bad.items():
            out.at[i, name] = raw_value(value)
        first = next(iter(bad))
        rules.append(f"{first} {NUMBER_RULE}")
        reasons.append(f"{first} {NUMBER_RULE}: " + ", ".join(f"{k}={shown_value(v)}" for k, v in bad.items()))
    out["rule"] = pd.array(rules, dtype="string")
    out["reason"] = pd.array(reasons, dtype="string")
    return out[~out.astype(str).duplicated()].reset_index(drop=True)


NUMBER_RULE = "is a number"


def _no_refused(frame: pd.DataFrame) -> pd.DataFrame:
    return refused_frame(frame.iloc[:0], [])


@dataclass(frozen=True)
class BatchAnswer:
    """What batch kline answers say about the codes they were asked for. Absence is not data: a code left out
    or sent as null is `missing` (its stored bars must be kept); an explicit empty list is `answered` (no
    trading). Codes sent without being asked are dropped and only named in `unrequested`. Bars refused before
    validation (a field that is not a number) are in `refused`, with their rule and reason, for the quarantine."""

    bars: pd.DataFrame  # rows of answered codes only
    answered: frozenset[str] = frozenset()
    missing: frozenset[str] = frozenset()
    unrequested: frozenset[str] = frozenset()
    refused: pd.DataFrame | None = None  # see refused_frame; None: nothing refused


def batch_answer(payload: Mapping[str, Any], requested: Iterable[str], *, region: str, timezone: str,
                 convention: TimeConvention) -> BatchAnswer:
    """Classify a batch kline payload {code: [bars] | null} against the codes asked for, and parse the bars of
    the answered ones. A value that is neither a list nor null is a PayloadError naming the code."""
    wanted = set(requested)
    answered: dict[str, Any] = {}
    for code in wanted.intersection(payload):
        bars = payload[code]
        if bars is None:
            continue
        if not isinstance(bars, list):
            raise PayloadError(f"{region}/{code}: expected a list of bars or null, got {type(bars).__name__}")
        answered[code] = bars
    frame, refused = parse_bars(answered, region=region, timezone=timezone, convention=convention)
    return BatchAnswer(frame, frozenset(answered), frozenset(wanted - answered.keys()),
                       frozenset(set(payload) - wanted), refused if len(refused) else None)


def off_window(frame: pd.DataFrame, *, et_ms: int, limit: int) -> np.ndarray:
    """Bars of one call that it did not ask for: a call asks for the last `limit` bars of each code up to `et`,
    so a bar stamped after `et`, or older than the code's `limit` newest dates up to `et`, is off its window. A
    code with gaps (a suspension) legitimately reaches further back than the page; that is not off the window.
    `frame` is sorted by (symbol, t), as `bars_to_frame` returns it."""
    if frame.empty:
        return np.zeros(0, dtype=bool)
    t = frame["bar_ts"].array.asi8  # epoch ms (the column's unit)
    late = t > et_ms
    if not late.all():
        inside = frame[~late]
        # the newest `limit` distinct dates of each code up to `et`: a rank from the newest date down
        rank = inside.groupby("symbol", sort=False)["trade_date"].rank(method="dense", ascending=False)
        early = np.zeros(len(frame), dtype=bool)
        early[np.flatnonzero(~late)] = (rank > limit).to_numpy()
        return late | early
    return late


def merge_answers(requested: Iterable[str], answers: Sequence[BatchAnswer]) -> BatchAnswer:
    """One page's answer from all of its calls (first asks and asks again): a code is answered when any call
    answered it, missing when none did. `unrequested` keeps only codes the page never asked for, so the three
    sets are disjoint and answered | missing == requested."""
    wanted = frozenset(requested)
    answered = frozenset().union(*(a.answered for a in answers)) & wanted
    frames = [a.bars for a in answers if len(a.bars)]  # empty frames would only blur the concatenated dtypes
    if not frames:
        bars = answers[0].bars if answers else _empty_bars()
    else:
        bars = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    refused = [a.refused for a in answers if a.refused is not None and len(a.refused)]
    return BatchAnswer(bars, answered, wanted - answered,
                       frozenset().union(*(a.unrequested for a in answers)) - wanted,
                       _concat(refused) if refused else None)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def _empty_bars() -> pd.DataFrame:
    return bars_to_frame({}, region="", timezone="UTC", convention="utc")


@dataclass
class ListingRows:
    """A symbol list parsed into klines-ready rows, and the entries refused (one short reason each)."""

    frame: pd.DataFrame  # region, symbol, name, security_type, exchange
    rejected: list[str] = field(default_factory=list)


def listing_frame(entries: Sequence[Any], region: str) -> ListingRows:
    """Symbol-list entries {c, n, t, e} to the master's columns. An entry that is not an object, has no code,
    or whose code breaks the symbol rule is refused and described, never stored; nothing is rewritten (the
    protocol documents no normalisation of codes). A repeated code keeps its last entry."""
    rows: list[Mapping[str, Any]] = []
    rejected: list[str] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            rejected.append(f"entry {i}: not an object ({type(entry).__name__})")
            continue
        code = entry.get("c")
        if "c" not in entry or code is None:
            problem: str | None = "no code (`c` is absent)" if "c" not in entry else "no code (`c` is null)"
        else:
            problem = symbol_problem(code)
        if problem is not None:
            rejected.append(f"entry {i} {shown(code)}: {problem}" if code else f"entry {i}: {problem}")
            continue
        rows.append(entry)
    frame = pd.DataFrame(
        {
            "region": pd.array([region] * len(rows), dtype="string"),
            "symbol": pd.array([r["c"] for r in rows], dtype="string"),
            "name": pd.array([r.get("n") for r in rows], dtype="string"),
            "security_type": pd.array([r.get("t") or "stock" for r in rows], dtype="string"),
            "exchange": pd.array([r.get("e") for r in rows], dtype="string"),
        }
    )
    return ListingRows(frame.drop_duplicates("symbol", keep="last").reset_index(drop=True), rejected)


@dataclass(frozen=True)
class KlineRequest:
    """One batch call: these codes, the last `limit` bars up to session `end`, kept for `sessions`."""

    codes: tuple[str, ...]
    end: dt.date
    limit: int
    sessions: tuple[dt.date, ...]  # the requested sessions this call covers (what gets written)


def plan_kline_requests(codes: Sequence[str], requested: Iterable[dt.date], calendar: Sequence[dt.date], *,
                        max_codes: int, max_bars: int) -> list[KlineRequest]:
    """The fewest calls covering `requested` sessions for `codes`.

    `limit` counts bars per code, so a call covers a run of *consecutive calendar sessions*: the span from
    the first to the last requested session is cut into pages of at most `max_bars` calendar sessions, and
    pages holding no requested session are skipped. For a contiguous range that is exactly
    ceil(codes / max_codes) * ceil(sessions / max_bars) calls.
    """
    if max_codes <= 0 or max_bars <= 0:
        raise ValueError("max_codes and max_bars must be positive")
    wanted = set(requested)
    unknown = wanted.difference(calendar)
    if unknown:
        raise ValueError(f"not trading sessions: {', '.join(str(d) for d in sorted(unknown)[:5])}")
    if not wanted or not codes:
        return []
    span = [d for d in calendar if min(wanted) <= d <= max(wanted)]
    unique_codes = sorted(set(codes))
    batches = [tuple(unique_codes[i : i + max_codes]) for i in range(0, len(unique_codes), max_codes)]
    requests: list[KlineRequest] = []
    for start in range(len(span) - 1, -1, -max_bars):  # newest page first, like the API's `et` paging
        page = span[max(0, start - max_bars + 1) : start + 1]
        hits = [d for d in page if d in wanted]
        if not hits:
            continue
        trimmed = [d for d in page if hits[0] <= d <= hits[-1]]
        requests.extend(KlineRequest(batch, hits[-1], len(trimmed), tuple(hits)) for batch in batches)
    return requests


def minimum_kline_calls(n_codes: int, n_sessions: int, *, max_codes: int, max_bars: int) -> int:
    """The theoretical floor for contiguous sessions: ceil(codes / batch cap) * ceil(sessions / page)."""
    return math.ceil(n_codes / max_codes) * math.ceil(n_sessions / max_bars) if n_codes and n_sessions else 0
