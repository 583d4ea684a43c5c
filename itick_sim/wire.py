"""JSON encoding of bar arrays.

Bars are written as `{"tu":..,"c":..,"t":..,"v":..,"h":..,"l":..,"o":..}` (the docs' key order) by orjson: prices,
volume and turnover as floats in their shortest round-trip form with at least one decimal ("258.3", "1200.0"),
`t` as an integer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import orjson


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


def encode_bars(cols: BarCols) -> bytes:
    """One JSON array of bars."""
    f = cols.floats()
    columns = (f["tu"].tolist(), f["c"].tolist(), cols.t.tolist(), f["v"].tolist(), f["h"].tolist(),
               f["l"].tolist(), f["o"].tolist())
    return orjson.dumps([{"tu": tu, "c": c, "t": t, "v": v, "h": h, "l": low, "o": o}
                         for tu, c, t, v, h, low, o in zip(*columns, strict=True)])
