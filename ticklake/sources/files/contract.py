"""The vendor file-drop contract: a file format reads one delivered file into a `Delivery` (its bars, and the rows
it quarantined with the rule each broke), or refuses the whole file with `FileRefused` and a reason a person can
act on. Pure: no I/O here or in any format (listing and reading a drop is `ticklake.sources.files.drop`).

Rule names are the quarantine's `rule` column. The dictionary's own rules keep the dictionary's names (its OHLC row
rules `low <= min(open, close)`, `high >= max(open, close)`, `low <= high`, and its column bounds as
`split_valid` names them, `open: open > 0`, `volume: volume >= 0`); the adapter's rules are the constants below.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

__all__ = [
    "BAD_CODE",
    "BARS_COLUMNS",
    "DUPLICATE_KEY",
    "NOT_A_DATE",
    "NOT_A_NUMBER",
    "OFF_CALENDAR",
    "REJECTED_COLUMNS",
    "UNIT_JUMP",
    "UNKNOWN_CODE",
    "Delivery",
    "FileFormat",
    "FileRefused",
    "Reader",
    "empty_bars",
    "rejected_frame",
]

# The adapter's row rules (the dictionary's own rules keep the dictionary's names).
BAD_CODE = "bad_code"  # the ticker (after the symbol mapping) breaks the dictionary's symbol rule
NOT_A_DATE = "not_a_date"  # the row's date is empty or not a YYYY-MM-DD date
NOT_A_NUMBER = "not_a_number"  # a price, volume or event cell is empty (where required), not a number or not finite
DUPLICATE_KEY = "duplicate_key"  # same ticker and date as another row with different values (both are quarantined)
UNIT_JUMP = "unit_jump"  # close over the ticker's previous close >= 50x or <= 1/50 with no split that day
UNKNOWN_CODE = "unknown_code"  # not in the region's security master (screen)
OFF_CALENDAR = "off_calendar"  # not a session of the region's calendar (screen)

BARS_COLUMNS = ("symbol", "trade_date", "open", "high", "low", "close", "volume", "split_ratio", "dividend")
REJECTED_COLUMNS = ("code", "date", "rule", "reason", "raw")


class FileRefused(ValueError):  # noqa: N818 - the contract's name: a file is refused, not an error of ours
    """A delivered file refused whole (nothing of it is loaded); `reason` says what is wrong and where, in one
    sentence its sender can act on (the column, the line)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Delivery:
    """One file, read: `bars` (BARS_COLUMNS: symbol string, trade_date datetime64[ms], the rest float64;
    split_ratio and dividend null where the file reports no event), `rejected` (REJECTED_COLUMNS: the rows that
    broke a row rule, one rule each; code string, date datetime64[ms] or NaT, rule and reason strings, raw a dict of
    the row's cells as the file spelled them) and `rows`, the data rows the file held (identical duplicates
    included)."""

    bars: pd.DataFrame
    rejected: pd.DataFrame
    rows: int


Reader = Callable[[str, bytes, Mapping[str, str]], Delivery]


@dataclass(frozen=True)
class FileFormat:
    """A vendor file layout: `name` (its module in ticklake/sources/files/formats/, the sources file's `format`),
    a one-line `description`, and `reader(name, data, symbols) -> Delivery` (raises FileRefused)."""

    name: str
    description: str
    reader: Reader

    def read(self, name: str, data: bytes, symbols: Mapping[str, str] | None = None) -> Delivery:
        """The file `name` (its base name may carry the date it covers) with contents `data`, its vendor tickers
        mapped through `symbols` (unmapped ones pass through)."""
        return self.reader(name, data, symbols or {})


def empty_bars() -> pd.DataFrame:
    """A bars frame with no rows and the contract's dtypes."""
    return pd.DataFrame({
        "symbol": pd.Series(dtype="string"),
        "trade_date": pd.Series(dtype="datetime64[ms]"),
        **{c: pd.Series(dtype="float64") for c in BARS_COLUMNS[2:]},
    })


def rejected_frame(records: Iterable[tuple[Any, Any, str, str, dict]]) -> pd.DataFrame:
    """A rejected frame from (code, date, rule, reason, raw) records; `date` a date, a Timestamp or None."""
    records = list(records)
    codes, dates, rules, reasons, raws = ([list(c) for c in zip(*records, strict=True)] if records
                                          else [[], [], [], [], []])
    return pd.DataFrame({
        "code": pd.array(codes, dtype="string"),
        "date": pd.to_datetime(pd.Series(dates, dtype=object)).astype("datetime64[ms]"),
        "rule": pd.array(rules, dtype="string"),
        "reason": pd.array(reasons, dtype="string"),
        "raw": pd.Series(raws, dtype=object),
    })
