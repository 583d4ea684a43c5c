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
import pandas as pd

from ticklake.symbols import shown, symbol_problem
from ticklake.transforms import string_array

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


def _bar_matrix(region: str, code: str, bars: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """One C-level pass per code: itemgetter over the dicts into a float64 matrix, sorted by `t`."""
    try:
        block = np.array(list(map(_BAR_GETTER, bars)), dtype=np.float64)
    except KeyError as exc:
        raise PayloadError(f"{region}/{code}: bar without field {exc} in {bars[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"{region}/{code}: non-numeric bar field ({exc})") from None
    if block.ndim != 2 or block.shape[1] != len(_BAR_KEYS):
        raise PayloadError(f"{region}/{code}: bars are not flat objects of numbers")
    t = block[:, 0]
    if not np.isfinite(t).all() or (len(t) and np.abs(t).max() >= 2**53):
        raise PayloadError(f"{region}/{code}: bar timestamp `t` missing or out of range")
    steps = np.diff(t)
    if (steps < 0).any():  # the sort order is undocumented: accept either, and anything else
        block = block[::-1] if (steps <= 0).all() else block[np.argsort(t, kind="stable")]
    return block


def bars_to_frame(payload: Mapping[str, Sequence[Mapping[str, Any]] | None], *, region: str, timezone: str,
                  convention: TimeConvention) -> pd.DataFrame:
    """Batch kline payload (code -> bars) to a typed frame, one row per bar, sorted by (symbol, date).

    Codes whose value is None (unknown to the source) contribute no rows; duplicates within a code keep the
    last bar the source sent for a date. A JSON null in a numeric field becomes NaN, which validation rejects.
    """
    codes = sorted(code for code, bars in payload.items() if bars)
    blocks = [_bar_matrix(region, code, payload[code]) for code in codes]  # type: ignore[arg-type]
    counts = [len(b) for b in blocks]
    matrix = np.concatenate(blocks) if blocks else np.empty((0, len(_BAR_KEYS)))
    ts = matrix[:, 0].astype("int64")
    dates = trade_dates(ts, timezone, convention)
    code_index = np.repeat(np.arange(len(codes)), counts)
    keep = np.ones(len(ts), dtype=bool)  # last bar per (code, date): rows are sorted by code, then t
    keep[:-1] = (code_index[:-1] != code_index[1:]) | (dates[:-1] != dates[1:])
    frame = pd.DataFrame(
        {
            "region": string_array([region], [len(ts)]),
            "symbol": string_array(codes, counts),
            "trade_date": dates,
            **{name: matrix[:, i + 1] for i, name in enumerate(BAR_FIELDS.values())},
            "bar_ts": pd.to_datetime(ts, unit="ms", utc=True).astype("datetime64[ms, UTC]"),
        }
    )
    return frame if keep.all() else frame[keep].reset_index(drop=True)


@dataclass(frozen=True)
class BatchAnswer:
    """What batch kline answers say about the codes they were asked for. Absence is not data: a code left out
    or sent as null is `missing` (its stored bars must be kept); an explicit empty list is `answered` (no
    trading). Codes sent without being asked are dropped and only named in `unrequested`."""

    bars: pd.DataFrame  # rows of answered codes only
    answered: frozenset[str] = frozenset()
    missing: frozenset[str] = frozenset()
    unrequested: frozenset[str] = frozenset()


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
    frame = bars_to_frame(answered, region=region, timezone=timezone, convention=convention)
    return BatchAnswer(frame, frozenset(answered), frozenset(wanted - answered.keys()),
                       frozenset(set(payload) - wanted))


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
    return BatchAnswer(bars, answered, wanted - answered,
                       frozenset().union(*(a.unrequested for a in answers)) - wanted)


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
