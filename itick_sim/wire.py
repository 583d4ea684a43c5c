"""JSON encoding of bar arrays — the hot path of big backfills.

Bars are written as `{"tu":..,"c":..,"t":..,"v":..,"h":..,"l":..,"o":..}` (the docs' key order). Large
arrays go through a vectorised fixed-point formatter (numpy digit extraction into a byte matrix, then
the padding is squeezed out); small ones through orjson dicts. Both give byte-identical output: the
shortest float repr with at least one decimal (as orjson prints floats), integer `t`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import orjson

_SP = 32
_KEYS = (b'{"tu":', b',"c":', b',"t":', b',"v":', b',"h":', b',"l":', b',"o":')
_END = b"},"
SMALL = 256  # below this many bars in one response the orjson path is faster


@dataclass
class BarCols:
    """Integer columns of a run of bars: prices in ticks of 10**-dp, tu in cents, v whole units."""

    t: np.ndarray  # int64 epoch ms
    o: np.ndarray
    h: np.ndarray
    low: np.ndarray
    c: np.ndarray
    v: np.ndarray  # float64 (integral values)
    tu_cents: np.ndarray  # int64
    dp: int

    def __len__(self) -> int:
        return len(self.t)

    def floats(self) -> dict[str, np.ndarray]:
        scale = 10.0**self.dp
        return {
            "o": self.o / scale, "h": self.h / scale, "l": self.low / scale, "c": self.c / scale,
            "v": self.v.astype(np.float64), "tu": self.tu_cents / 100.0,
        }


def _digits(vals: np.ndarray, dp: int, strip: bool) -> np.ndarray:
    """Right-aligned ASCII of non-negative fixed-point ints (value = vals / 10**dp), space padded."""
    x = np.asarray(vals, dtype=np.int64)
    n = len(x)
    if n and int(x.min()) < 0:
        raise ValueError("negative values are not supported by the fast encoder")
    mx = int(x.max()) if n else 0
    nint = max(len(str(mx)) - dp, 1)
    width = nint + (dp + 1 if dp else 0)
    out = np.full((n, width), _SP, np.uint8)
    col = width - 1
    trailing = np.ones(n, dtype=bool)
    for k in range(dp):
        x, r = np.divmod(x, 10)
        digit = (r + 48).astype(np.uint8)
        if strip and k < dp - 1:  # drop trailing zeros but keep one decimal ("258.0", "258.3")
            trailing &= r == 0
            digit[trailing] = _SP
        out[:, col] = digit
        col -= 1
    if dp:
        out[:, col] = 46
        col -= 1
    x, r = np.divmod(x, 10)
    out[:, col] = r + 48
    col -= 1
    while col >= 0:
        nz = x > 0
        x, r = np.divmod(x, 10)
        out[:, col] = np.where(nz, r + 48, _SP)
        col -= 1
    return out


def _fast_rows(cols: BarCols) -> tuple[bytes, np.ndarray]:
    """All bars as `{...},{...},` plus the cumulative end offset of each bar in the bytes."""
    n = len(cols)
    pdp = max(cols.dp, 1)
    pmul = 10 ** (pdp - cols.dp)
    fields = [
        (cols.tu_cents, 2), (cols.c * pmul, pdp), (cols.t, 0), (np.rint(cols.v).astype(np.int64) * 10, 1),
        (cols.h * pmul, pdp), (cols.low * pmul, pdp), (cols.o * pmul, pdp),
    ]
    parts = []
    for key, (vals, dp) in zip(_KEYS, fields, strict=False):
        parts.append(np.broadcast_to(np.frombuffer(key, np.uint8), (n, len(key))))
        parts.append(_digits(vals, dp, strip=dp > 0))
    parts.append(np.broadcast_to(np.frombuffer(_END, np.uint8), (n, len(_END))))
    mat = np.concatenate(parts, axis=1)
    keep = mat != _SP
    ends = np.cumsum(keep.sum(axis=1))
    return mat[keep].tobytes(), ends


def _small(cols: BarCols) -> bytes:
    f = cols.floats()
    bars = [
        {"tu": a, "c": b, "t": t, "v": v, "h": h, "l": lo, "o": o}
        for a, b, t, v, h, lo, o in zip(
            f["tu"].tolist(), f["c"].tolist(), cols.t.tolist(), f["v"].tolist(), f["h"].tolist(),
            f["l"].tolist(), f["o"].tolist(), strict=False,
        )
    ]
    return orjson.dumps(bars)


def encode_bars(cols: BarCols, fast: bool | None = None) -> bytes:
    """One JSON array of bars."""
    if fast is None:
        fast = len(cols) >= SMALL
    if not fast or len(cols) == 0:
        return _small(cols)
    body, _ = _fast_rows(cols)
    return b"[" + body[:-1] + b"]"


def concat(parts: list[BarCols]) -> BarCols:
    dps = {p.dp for p in parts}
    if len(dps) != 1:
        raise ValueError("mixed precisions")
    return BarCols(*(np.concatenate([getattr(p, k) for p in parts]) for k in
                     ("t", "o", "h", "low", "c", "v", "tu_cents")), dp=dps.pop())


def encode_many(parts: list[BarCols]) -> list[bytes]:
    """Several arrays (a batch answer), vectorised together when large."""
    total = sum(len(p) for p in parts)
    if total < SMALL or len({p.dp for p in parts}) != 1:
        return [encode_bars(p) for p in parts]
    body, ends = _fast_rows(concat(parts))
    out, row, start = [], 0, 0
    for p in parts:
        if len(p) == 0:
            out.append(b"[]")
            continue
        row += len(p)
        end = int(ends[row - 1])
        out.append(b"[" + body[start : end - 1] + b"]")
        start = end
    return out
