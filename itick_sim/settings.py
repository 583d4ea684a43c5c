"""Configuration of the simulator, including the protocol variants the client must cope with."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

BarTime = Literal["close", "open", "local_midnight", "utc_midnight"]
# Transport faults `fault_rate` draws from: HTTP 429 with and without Retry-After, 5xx, an answer slower than the
# client's timeout, a connection closed mid-body, a body that is not JSON, an envelope with code != 0.
FAULT_KINDS = ("429", "429_bare", "500", "503", "timeout", "reset", "malformed_json", "envelope_error")


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
    # Restatements (T+1 reconciliation): every daily bar of a code in `restate_codes` is served with its original
    # values while the exchange-local today < session + `restate_after_days` calendar days, restated from then on:
    # close up 1% (rounded to the tick, at least one tick), high raised to that close if below it, volume up one
    # lot, turnover re-derived; open and low kept. Once restated a bar never changes again.
    restate_codes: frozenset[str] = frozenset()
    restate_after_days: int = 2
    # Late bars: the bar of session D of a code in `late_bar_codes` is left out of kline answers (the code still
    # answers with its other bars) while the exchange-local today < D + `late_bar_days` calendar days.
    late_bar_codes: frozenset[str] = frozenset()
    late_bar_days: int = 1
    # Random transport faults: each routed request n draws from a counter-based RNG keyed on (seed, n), so the same
    # request sequence meets the same faults. A fault of a kind in `fault_kinds` hits with probability `fault_rate`,
    # at most `fault_max` times in all (None: no limit). "timeout" answers after `fault_timeout_s`; "429" sends
    # `Retry-After: fault_retry_after_s`.
    fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] = FAULT_KINDS
    fault_max: int | None = None
    fault_timeout_s: float = 2.0
    fault_retry_after_s: float = 1.0

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
        for name in ("batch_omit_codes", "batch_extra_codes", "late_split_codes", "restate_codes",
                     "late_bar_codes"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(c, str) and c for c in value):
                raise TypeError(f"{name} must be a collection of non-empty code strings, got {value!r:.80}")
        for name in ("batch_omit_codes", "late_split_codes", "restate_codes", "late_bar_codes"):
            object.__setattr__(self, name, frozenset(getattr(self, name)))
        object.__setattr__(self, "batch_extra_codes", tuple(self.batch_extra_codes))
        # a delay of 0 days would make the restatement or the late bar invisible: nothing to reconcile
        for name, minimum in (("split_publish_delay_days", 0), ("restate_after_days", 1), ("late_bar_days", 1)):
            self._check_days(name, minimum)
        if self.batch_omit_style not in ("omit", "null", "empty"):
            raise ValueError(f"bad batch_omit_style {self.batch_omit_style!r} (omit, null or empty)")
        if self.batch_omit_times is not None and self.batch_omit_times < 1:
            raise ValueError("batch_omit_times must be >= 1 or None (always)")
        if not all(isinstance(e, Mapping) for e in self.symbol_list_extra):
            raise TypeError("symbol_list_extra must hold JSON objects (mappings)")
        object.__setattr__(self, "symbol_list_extra", tuple(self.symbol_list_extra))
        self._check_transport_faults()

    def _check_transport_faults(self) -> None:
        if isinstance(self.fault_rate, bool) or not 0.0 <= self.fault_rate <= 1.0:
            raise ValueError(f"fault_rate must be a probability in [0, 1], not {self.fault_rate!r}")
        if isinstance(self.fault_kinds, str):
            raise TypeError(f"fault_kinds must be a collection of kinds, not one string {self.fault_kinds!r}")
        object.__setattr__(self, "fault_kinds", tuple(self.fault_kinds))
        bad = [k for k in self.fault_kinds if k not in FAULT_KINDS]
        if bad or not self.fault_kinds:
            raise ValueError(f"bad fault_kinds {bad or '(none)'}; known: {', '.join(FAULT_KINDS)}")
        if self.fault_max is not None and (isinstance(self.fault_max, bool) or self.fault_max < 0):
            raise ValueError("fault_max must be >= 0 or None (no limit)")
        if self.fault_timeout_s <= 0 or self.fault_retry_after_s < 0:
            raise ValueError("fault_timeout_s must be > 0 and fault_retry_after_s >= 0")

    def _check_days(self, name: str, minimum: int) -> None:
        days = getattr(self, name)
        if isinstance(days, bool) or not isinstance(days, int):
            raise TypeError(f"{name} must be an int, got {days!r}")
        if days < minimum:
            raise ValueError(f"{name} must be >= {minimum}, not {days}")
