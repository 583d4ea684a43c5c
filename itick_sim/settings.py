"""Configuration of the simulator, including the protocol variants the client must cope with."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

BarTime = Literal["close", "open", "local_midnight", "utc_midnight"]


@dataclass(frozen=True)
class SimSettings:
    seed: int = 20240101
    regions: tuple[str, ...] = ("US", "HK", "SH", "JP")
    symbols_per_region: int = 20
    history_start: dt.date = dt.date(2014, 1, 2)
    now: dt.datetime | None = None
    # --- protocol variants (ambiguous points of the real API) ---
    bar_time: BarTime = "close"
    sort_order: Literal["asc", "desc"] = "asc"
    et_inclusive: bool = True
    error_code_style: Literal["string", "msg"] = "string"
    error_http_status: bool = False
    unknown_code_in_batch: Literal["null", "omit"] = "null"
    max_codes_per_call: int = 50
    max_limit: int = 1000
    calls_per_window: int | None = None
    window_seconds: float = 60.0
    tokens: frozenset[str] | None = None
    list_delisted: bool = True
    latency_ms: float = 0.0
    # --- fault injection (deterministic, off by default) ---
    # Batch kline answers leave these codes out ("omit"), send them as null ("null") or as an empty list of bars
    # ("empty", what a truncated or failing backend may send), on the first
    # `batch_omit_times` batch requests that include each code (None: always).
    batch_omit_codes: frozenset[str] = frozenset()
    batch_omit_style: Literal["omit", "null", "empty"] = "omit"
    batch_omit_times: int | None = None
    # Codes added to every batch kline answer without being requested (with plausible bars).
    batch_extra_codes: tuple[str, ...] = ()
    # Raw entries appended to every stock /symbol/list answer, e.g. {"c": "A,B"}, {"c": None}, {"n": "no code"}.
    symbol_list_extra: tuple[Mapping[str, Any], ...] = ()
    # /stock/split publishes a split only `split_publish_delay_days` calendar days after its ex-date (exchange-local
    # today), as a late corporate-actions feed does; the bars split on the ex-date regardless. Limited to
    # `late_split_codes` when given (empty: every code).
    split_publish_delay_days: int = 0
    late_split_codes: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        from itick_sim.markets import MARKETS  # local import: markets imports nothing from here

        bad = [r for r in self.regions if r not in MARKETS]
        if bad:
            raise ValueError(f"unknown regions {bad}; known: {sorted(MARKETS)}")
        if self.symbols_per_region < 0:
            raise ValueError("symbols_per_region must be >= 0")
        if self.bar_time not in ("close", "open", "local_midnight", "utc_midnight"):
            raise ValueError(f"bad bar_time {self.bar_time!r}")
        if self.sort_order not in ("asc", "desc"):
            raise ValueError(f"bad sort_order {self.sort_order!r}")
        if self.error_code_style not in ("string", "msg"):
            raise ValueError(f"bad error_code_style {self.error_code_style!r}")
        if self.unknown_code_in_batch not in ("null", "omit"):
            raise ValueError(f"bad unknown_code_in_batch {self.unknown_code_in_batch!r}")
        if self.max_limit < 1 or self.max_codes_per_call < 1:
            raise ValueError("max_limit and max_codes_per_call must be >= 1")
        if self.calls_per_window is not None and self.calls_per_window < 0:
            raise ValueError("calls_per_window must be >= 0 or None")
        if self.window_seconds <= 0:
            raise ValueError("window_seconds must be > 0")
        if self.now is not None and not isinstance(self.now, dt.datetime):
            raise TypeError("now must be a datetime (UTC) or None")
        self._check_faults()

    def _check_faults(self) -> None:
        for name in ("batch_omit_codes", "batch_extra_codes", "late_split_codes"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(c, str) and c for c in value):
                raise TypeError(f"{name} must be a collection of non-empty code strings, got {value!r:.80}")
        object.__setattr__(self, "batch_omit_codes", frozenset(self.batch_omit_codes))
        object.__setattr__(self, "batch_extra_codes", tuple(self.batch_extra_codes))
        object.__setattr__(self, "late_split_codes", frozenset(self.late_split_codes))
        delay = self.split_publish_delay_days
        if isinstance(delay, bool) or not isinstance(delay, int):
            raise TypeError(f"split_publish_delay_days must be an int, got {delay!r}")
        if delay < 0:
            raise ValueError(f"split_publish_delay_days must be >= 0, not {delay}")
        if self.batch_omit_style not in ("omit", "null", "empty"):
            raise ValueError(f"bad batch_omit_style {self.batch_omit_style!r} (omit, null or empty)")
        if self.batch_omit_times is not None and self.batch_omit_times < 1:
            raise ValueError("batch_omit_times must be >= 1 or None (always)")
        if not all(isinstance(e, Mapping) for e in self.symbol_list_extra):
            raise TypeError("symbol_list_extra must hold JSON objects (mappings)")
        object.__setattr__(self, "symbol_list_extra", tuple(self.symbol_list_extra))
