"""The row checks of a delivered file that need the lake's knowledge, kept pure: the caller reads the region's
security master and calendar, and passes what they say.

- `unknown_code`: the symbol is not in the region's security master (`known_codes`);
- `off_calendar`: the date is not a session of the region's calendar (`sessions`: the calendar's sessions over the
  file's span; a date outside the sessions given is off the calendar too).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ticklake.sources.files.contract import OFF_CALENDAR, UNKNOWN_CODE, rejected_frame


def screen(bars: pd.DataFrame, *, known_codes: set[str], sessions: Sequence[dt.date]) -> tuple[pd.DataFrame,
                                                                                                 pd.DataFrame]:
    """(`bars` whose symbol is known and date a session, the other bars as rejected rows): a Delivery's bars in,
    the same columns out; rejected in the contract's columns (code, date, rule, reason, raw: the bar's values as
    text), each bar with the first rule it broke (`unknown_code`, then `off_calendar`)."""
    unknown = ~bars["symbol"].isin(list(known_codes)).to_numpy(dtype=bool)
    session_days = pd.DatetimeIndex([pd.Timestamp(d) for d in sessions]).as_unit("ms")
    off = ~bars["trade_date"].isin(session_days).to_numpy(dtype=bool)
    bad = unknown | off
    if not bad.any():
        return bars, rejected_frame([])
    span = (f"{session_days.min().date()}..{session_days.max().date()}, {len(session_days)} session(s)"
            if len(session_days) else "no sessions given")
    records = []
    for row, is_unknown in zip(np.flatnonzero(bad).tolist(), unknown[bad].tolist(), strict=True):
        bar = bars.iloc[row]
        symbol, day = str(bar["symbol"]), pd.Timestamp(bar["trade_date"])
        if is_unknown:
            rule, reason = UNKNOWN_CODE, (f"{UNKNOWN_CODE}: {symbol} is not in the region's security master "
                                          f"(map the vendor's ticker in the sources file, or list the security)")
        else:
            rule, reason = OFF_CALENDAR, (f"{OFF_CALENDAR}: {day.date()} is not a session of the region's calendar "
                                          f"({span})")
        records.append((symbol, day, rule, reason, {c: _text(bar[c]) for c in bars.columns}))
    return bars[~bad].reset_index(drop=True), rejected_frame(records)


def _text(value: object) -> str:
    """A bar's value as text for the quarantine's raw record: '' for null, a date as YYYY-MM-DD, floats exactly."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat()
    if isinstance(value, float | np.floating):
        return repr(float(value))
    return str(value)
