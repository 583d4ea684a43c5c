"""Quandl / Nasdaq Data Link end-of-day files (the EOD layout): CSV, gzipped or not (told by the content's magic
bytes, not the name), one row per ticker and exchange-local date, raw (unadjusted) prices, the day's split and
dividend events, and the vendor's adjusted columns. The header is exactly

    ticker,date,open,high,low,close,volume,ex-dividend,split_ratio,adj_open,adj_high,adj_low,adj_close,adj_volume

in any column order. Pure: bytes in, a Delivery out (or FileRefused).

Refused whole (FileRefused), since nothing of such a file can be trusted:
- compressed in another way, a truncated or corrupt gzip, text that is not UTF-8 CSV, a row with the wrong number
  of fields (a truncated upload ends in one);
- an empty file, or a header without data rows;
- missing, extra or repeated columns (named);
- a column that is mostly unreadable (more than half of its rows are not numbers, or not YYYY-MM-DD dates, in
  `date`): a shifted or foreign layout, named with its first bad line;
- a name holding a date (`quandl_eod_20240628.csv.gz`, `EOD_2024-06-28.csv`) that is not the file's latest date.

Quarantined row by row (the `rejected` frame; the rest is loaded), each row with the first rule it broke, in this
order: `bad_code` (the ticker, after the symbol mapping, breaks the dictionary's symbol rule), `not_a_date`,
`not_a_number` (a price or volume cell empty or not a finite number, an event or adjusted cell not a finite number:
a few such cells quarantine their rows, a mostly unreadable column refuses the file, above), `duplicate_key`
(the same ticker and date as another row with different values: every such row; identical rows collapse into one
silently), the dictionary's bounds of `klines_daily_by_source` (`open: open > 0`, `volume: volume >= 0`,
`split_ratio: split_ratio >= 0`, `dividend: dividend >= 0`, ...) and the same on the adjusted columns
(`adj_close: adj_close > 0`, `adj_volume: adj_volume >= 0`: adjusted values are only checked to be positive, their
ratio to the raw ones is not), the dictionary's OHLC rules (`low <= min(open, close)`, `high >= max(open, close)`,
`low <= high`), then `unit_jump` (a close 50x or more, or 1/50 or less, of the ticker's previous accepted close in
the file, with no split that day; a ticker's first bar in the file is its reference).

Line numbers in reasons count the header as line 1 (blank lines, which are skipped, are not counted).
"""

from __future__ import annotations

import datetime as dt
import gzip
import posixpath
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ticklake.dictionary.market_data import KLINES_DAILY_BY_SOURCE
from ticklake.dictionary.symbols import is_symbol, shown
from ticklake.sources.files.contract import (
    BAD_CODE,
    BARS_COLUMNS,
    DUPLICATE_KEY,
    NOT_A_DATE,
    NOT_A_NUMBER,
    UNIT_JUMP,
    Delivery,
    FileFormat,
    FileRefused,
    rejected_frame,
)

NAME = "quandl_eod"
COLUMNS = ("ticker", "date", "open", "high", "low", "close", "volume", "ex-dividend", "split_ratio",
           "adj_open", "adj_high", "adj_low", "adj_close", "adj_volume")
REQUIRED_NUMBERS = ("open", "high", "low", "close", "volume")  # an empty cell is not a number
OPTIONAL_NUMBERS = ("ex-dividend", "split_ratio", "adj_open", "adj_high", "adj_low", "adj_close", "adj_volume")
NUMBERS = (*REQUIRED_NUMBERS, *OPTIONAL_NUMBERS)
ADJUSTED = ("adj_open", "adj_high", "adj_low", "adj_close", "adj_volume")
RENAMED = {"ex-dividend": "dividend"}  # file column -> bars column
MAX_UNREADABLE_SHARE = 0.5  # more than this share of a column unreadable refuses the file; fewer quarantine rows
UNIT_JUMP_FACTOR = 50.0
NEWLINE = b"\n"
_FIRST_LINE = 2  # data row 0 is line 2 (the header is line 1)

# A date in a file's base name: 20240628 or 2024-06-28, not inside a longer run of digits.
_NAME_DATE = re.compile(r"(?<!\d)(\d{4})-?(\d{2})-?(\d{2})(?!\d)")
_NONBLANK = re.compile(rb"\S")  # a data row after the header (found without copying the text)
_OTHER_COMPRESSION = {b"PK\x03\x04": "zip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd"}


def _bound_rules() -> list[tuple[str, str, str, float]]:
    """(file column, rule name, op, bound) for every bounded value: the dictionary's bounds of
    klines_daily_by_source, named as `split_valid` names a column check (`open: open > 0`), then the adjusted
    columns' (positive prices, a non-negative volume)."""
    rules = []
    bars_to_file = {v: k for k, v in RENAMED.items()}
    for name in BARS_COLUMNS[2:]:
        field = KLINES_DAILY_BY_SOURCE.field(name)
        column = bars_to_file.get(name, name)
        if field.strictly_positive:
            rules.append((column, f"{name}: {name} > 0", ">", 0.0))
        if field.min_value is not None:
            rules.append((column, f"{name}: {name} >= {field.min_value:g}", ">=", float(field.min_value)))
        if field.max_value is not None:
            rules.append((column, f"{name}: {name} <= {field.max_value:g}", "<=", float(field.max_value)))
    for column in ADJUSTED:
        if column == "adj_volume":
            rules.append((column, f"{column}: {column} >= 0", ">=", 0.0))
        else:
            rules.append((column, f"{column}: {column} > 0", ">", 0.0))
    return rules


BOUND_RULES = _bound_rules()
OHLC_RULES = KLINES_DAILY_BY_SOURCE.rules  # low <= min(open, close), high >= max(open, close), low <= high


def read(name: str, data: bytes, symbols: Mapping[str, str]) -> Delivery:
    """The quandl_eod file `name` with contents `data`, its tickers mapped through `symbols`."""
    text = _decompressed(data)
    header = _header(text)
    end = text.find(NEWLINE)
    cells = _Cells(text, header) if end >= 0 and _NONBLANK.search(text, end + 1) else None
    n = cells.rows if cells is not None else 0
    if cells is None or n == 0:
        raise FileRefused("the file has a header but no data rows: nothing to load (was the export cut short?)")
    for column in ("date", *NUMBERS):
        _refuse_unreadable(column, cells.bad[column], cells, n)
    dates, numbers = cells.dates, cells.numbers
    _check_name_date(name, dates, cells.bad["date"])

    # Tickers -> symbols on the distinct values; rows carry the rank of their symbol in sorted order, so one stable
    # sort by (symbol, date) serves the duplicates, the unit jumps and the output order.
    tickers = cells.tickers
    unique_tickers = pc.unique(tickers)
    ticker_of_row = pc.index_in(tickers, value_set=unique_tickers).to_numpy(zero_copy_only=False).astype(np.int64)
    ticker_names = unique_tickers.to_pylist()
    mapped = [symbols.get(t, t) for t in ticker_names]
    symbol_names = sorted(set(mapped))
    rank = {s: i for i, s in enumerate(symbol_names)}
    symbol_of_row = np.array([rank[s] for s in mapped], dtype=np.int64)[ticker_of_row]
    valid_symbol = np.array([is_symbol(s) for s in mapped], dtype=bool)[ticker_of_row]
    days = np.where(cells.bad["date"], 0, dates.view("int64") // 86_400_000)
    low_day = days[~cells.bad["date"]].min() if (~cells.bad["date"]).any() else 0
    packed = symbol_of_row * (int(days.max() - low_day) + 1) + (days - low_day)
    order = np.argsort(packed, kind="stable")

    rules = _Rules(n)
    rules.mark(~valid_symbol, BAD_CODE)
    rules.mark(cells.bad["date"], NOT_A_DATE)
    first_bad = np.full(n, -1, dtype=np.int8)  # the first column (index in NUMBERS) holding no number
    for i, column in enumerate(NUMBERS):
        first_bad[cells.bad[column] & (first_bad < 0)] = i
    rules.mark(first_bad >= 0, NOT_A_NUMBER)

    dropped, clashes = _duplicates(rules, order, packed, cells)
    rules.mark(clashes, DUPLICATE_KEY)
    for column, rule, op, bound in BOUND_RULES:
        values = numbers[column]
        broken = (values <= bound) if op == ">" else (values < bound) if op == ">=" else (values > bound)
        rules.mark(broken, rule)  # NaN compares False: an empty optional cell breaks no bound
    ohlc = pd.DataFrame({c: numbers[c] for c in ("open", "high", "low", "close")}, copy=False)
    for ohlc_rule in OHLC_RULES:
        rules.mark(~ohlc_rule.holds(ohlc).to_numpy(), ohlc_rule.name)

    split = numbers["split_ratio"]
    split = np.where((split == 1.0) | (split == 0.0), np.nan, split)
    dividend = numbers["ex-dividend"]
    dividend = np.where(dividend == 0.0, np.nan, dividend)
    jumps = _unit_jumps(rules.ok & ~dropped, order, symbol_of_row, numbers["close"], split)
    rules.mark(np.isin(np.arange(n), list(jumps)), UNIT_JUMP)

    kept = order[(rules.ok & ~dropped)[order]]
    bars = _bars(kept, symbol_of_row, symbol_names, dates, numbers, split, dividend)
    rejected = _rejected(rules, dropped, clashes, cells, ticker_of_row, ticker_names, mapped, first_bad, jumps)
    return Delivery(bars=bars, rejected=rejected, rows=n)


FORMAT = FileFormat(
    name=NAME,
    description="Quandl / Nasdaq Data Link end-of-day CSV (gzip optional): raw OHLCV, split and dividend events, "
                "adjusted columns",
    reader=read,
)


# --- file level ---------------------------------------------------------------------------------------------------

def _decompressed(data: bytes) -> bytes:
    if not data:
        raise FileRefused("the file is empty (0 bytes): no header and no data rows")
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except EOFError:
            raise FileRefused("the gzip data is truncated (it ends before its end-of-stream marker): the upload "
                              "was cut short, send the file again") from None
        except (gzip.BadGzipFile, zlib.error, OSError) as exc:
            raise FileRefused(f"the gzip data is corrupt ({shown(str(exc), 80)}): send the file again") from None
        if not data:
            raise FileRefused("the file is empty (a gzip of 0 bytes): no header and no data rows")
        return data
    for magic, kind in _OTHER_COMPRESSION.items():
        if data.startswith(magic):
            raise FileRefused(f"the file is compressed as {kind}, which {NAME} does not read: send CSV or gzipped CSV")
    return data


def _header(text: bytes) -> list[str]:
    end = text.find(b"\n")
    line = text[: end if end >= 0 else len(text)]
    try:
        decoded = line.decode("utf-8").removeprefix("\ufeff").rstrip("\r")
    except UnicodeDecodeError:
        raise FileRefused("the header (line 1) is not UTF-8 text: the file is not a CSV export") from None
    if not decoded.strip():
        raise FileRefused("the file has no header on line 1 (it is blank): nothing to load")
    names = [c.strip().strip('"').strip() for c in decoded.split(",")]
    missing = [c for c in COLUMNS if c not in names]
    extra = [c for c in dict.fromkeys(names) if c not in COLUMNS]
    repeated = [c for c in dict.fromkeys(names) if names.count(c) > 1]
    if missing or extra or repeated:
        parts = []
        if missing:
            parts.append(f"lacks column(s) {_listed(missing)}")
        if extra:
            parts.append(f"has unexpected column(s) {_listed(extra)}")
        if repeated:
            parts.append(f"repeats column(s) {_listed(repeated)}")
        raise FileRefused(f"the header (line 1) {' and '.join(parts)}: a {NAME} header is exactly "
                          f"{','.join(COLUMNS)} (in any order)")
    return names


def _listed(names: list[str], limit: int = 8) -> str:
    shown_names = ", ".join(f"`{shown(c, 40)[1:-1]}`" for c in names[:limit])
    return shown_names + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


class _Cells:
    """The file's cells: read typed (pyarrow's CSV reader converts dates and numbers, the fast path for a clean
    file), or, where a cell is no date or number, as strings converted column by column so the bad cells are
    located. The cells as the file spelled them (`raw`) are read as strings only when a reason or a quarantined
    row needs them."""

    def __init__(self, text: bytes, header: list[str]):
        self.text, self.header = text, header
        self._strings: pa.Table | None = None
        types = {"ticker": pa.string(), "date": pa.date32(), **dict.fromkeys(NUMBERS, pa.float64())}
        try:
            table = _read(text, header, types)
        except FileRefused:
            table = None
        if table is not None:
            self.rows = table.num_rows
            self.tickers = table.column("ticker")
            date = table.column("date")
            self.dates = _timestamps(date)
            self.bad = {"date": date.is_null().to_numpy(zero_copy_only=False)}
            self.numbers = {}
            for column in NUMBERS:
                values = table.column(column)
                floats = values.to_numpy(zero_copy_only=False).astype("float64", copy=False)
                unreadable = ~np.isfinite(floats)
                self.bad[column] = unreadable if column in REQUIRED_NUMBERS else (
                    unreadable & ~values.is_null().to_numpy(zero_copy_only=False))
                self.numbers[column] = np.where(unreadable, np.nan, floats)
            return
        strings = self.strings  # refuses the file when it is no CSV at all
        self.rows = strings.num_rows
        self.tickers = strings.column("ticker")
        self.dates, bad_date = _dates(strings.column("date"))
        self.bad = {"date": bad_date}
        self.numbers = {}
        for column in NUMBERS:
            self.numbers[column], self.bad[column] = _numbers(strings.column(column),
                                                              required=column in REQUIRED_NUMBERS)

    @property
    def strings(self) -> pa.Table:
        if self._strings is None:
            self._strings = _read(self.text, self.header, dict.fromkeys(self.header, pa.string()))
        return self._strings

    def raw(self, rows: np.ndarray) -> dict[str, list[str]]:
        """The cells of `rows` as the file spelled them, by column."""
        taken = pa.array(np.asarray(rows, dtype=np.int64))
        return {c: self.strings.column(c).take(taken).to_pylist() for c in COLUMNS}

    def cell(self, column: str, row: int) -> str:
        return self.strings.column(column)[int(row)].as_py()


def _read(text: bytes, header: list[str], types: dict[str, pa.DataType]) -> pa.Table:
    """The CSV read with `types`; FileRefused where pyarrow cannot read it (a conversion error of a typed read
    included: the caller reads strings then)."""
    invalid: list[pacsv.InvalidRow] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        invalid.append(row)
        return "skip"

    try:
        table = pacsv.read_csv(
            pa.BufferReader(text),
            read_options=pacsv.ReadOptions(column_names=header, skip_rows=1),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(column_types=types, null_values=[""], strings_can_be_null=False,
                                                 quoted_strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        message = str(exc)
        if "UTF8" in message or "utf8" in message.lower():
            raise FileRefused("the file is not UTF-8 text: export it as UTF-8 CSV") from None
        raise FileRefused(f"the file is not a readable CSV: {shown(message, 160)}") from None
    if invalid:
        row = invalid[0]
        at = text.find(row.text.encode("utf-8", "replace"))
        line = f"line {text.count(NEWLINE, 0, at) + 1}" if at >= 0 else "a line"
        raise FileRefused(f"{line} has {row.actual_columns} field(s) where the header has {row.expected_columns} "
                          f"({shown(row.text, 60)}): the file is truncated or not a clean CSV "
                          f"({len(invalid)} such line(s))")
    return table


def _timestamps(dates: pa.ChunkedArray) -> np.ndarray:
    return pc.cast(dates, pa.timestamp("ms")).to_numpy(zero_copy_only=False).astype("datetime64[ms]")


def _dates(values: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """The dates as datetime64[ms] (NaT where unreadable) and where they are unreadable (YYYY-MM-DD only)."""
    values = pc.utf8_trim_whitespace(values)
    shape_ok = pc.match_substring_regex(values, r"^\d{4}-\d{2}-\d{2}$").to_numpy(zero_copy_only=False)
    strings = pd.Series(values.to_numpy(zero_copy_only=False), dtype=object).where(shape_ok)
    parsed = pd.to_datetime(strings, format="%Y-%m-%d", errors="coerce").to_numpy().astype("datetime64[ms]")
    return parsed, np.isnat(parsed)


def _numbers(values: pa.ChunkedArray, *, required: bool) -> tuple[np.ndarray, np.ndarray]:
    """The cells as float64 (NaN where empty or unreadable) and which are bad: not a finite number (an empty cell
    is bad only where a number is required)."""
    values = pc.utf8_trim_whitespace(values)
    empty = pc.equal(values, "").to_numpy(zero_copy_only=False)
    floats = pd.to_numeric(pd.Series(values.to_numpy(zero_copy_only=False), dtype=object), errors="coerce")
    floats = floats.to_numpy(dtype="float64", na_value=np.nan)
    unreadable = ~np.isfinite(floats)
    bad = unreadable if required else unreadable & ~empty
    return np.where(unreadable, np.nan, floats), bad


def _refuse_unreadable(column: str, bad: np.ndarray, cells: _Cells, n: int) -> None:
    count = int(bad.sum())
    if count and count > MAX_UNREADABLE_SHARE * n:
        first = int(np.argmax(bad))
        what = "YYYY-MM-DD dates" if column == "date" else "numbers"
        raise FileRefused(f"column `{column}` is not {what}: line {first + _FIRST_LINE} holds "
                          f"{shown(cells.cell(column, first), 40)}, and {count} of its {n} row(s) are unreadable")


def _check_name_date(name: str, dates: np.ndarray, bad_date: np.ndarray) -> None:
    said = name_date(name)
    if said is None or bad_date.all():
        return
    latest = dates[~bad_date].max()
    if latest != np.datetime64(said, "ms"):
        at = int(np.flatnonzero(dates == latest)[0]) + _FIRST_LINE
        raise FileRefused(f"the file's name says {said.isoformat()} but its latest date is "
                          f"{pd.Timestamp(latest).date().isoformat()} (line {at}): the name or the contents are "
                          "for another day")


def name_date(name: str) -> dt.date | None:
    """The date a file's base name holds (`quandl_eod_20240628.csv.gz`, `EOD_2024-06-28.csv`), or None."""
    base = posixpath.basename(name.replace("\\", "/"))
    for match in _NAME_DATE.finditer(base):
        try:
            return dt.date(int(match[1]), int(match[2]), int(match[3]))
        except ValueError:
            continue
    return None


# --- row level ----------------------------------------------------------------------------------------------------

class _Rules:
    """The first rule each row broke, as a small integer per row (0: none yet), in the order rules are marked."""

    def __init__(self, n: int):
        self.ids = np.zeros(n, dtype=np.int16)
        self.names: list[str | None] = [None]

    @property
    def ok(self) -> np.ndarray:
        return self.ids == 0

    def mark(self, broken: np.ndarray, name: str) -> None:
        """Give `name` to the rows that broke it and no earlier rule."""
        hit = np.asarray(broken, dtype=bool) & (self.ids == 0)
        if hit.any():
            if name not in self.names:
                self.names.append(name)
            self.ids[hit] = self.names.index(name)

    def name(self, row: int) -> str | None:
        return self.names[self.ids[row]]


def _duplicates(rules: _Rules, order: np.ndarray, packed: np.ndarray,
                cells: _Cells) -> tuple[np.ndarray, np.ndarray]:
    """(identical repeats to drop silently, rows of a conflicting key) among rows with a good code and date; the
    key is the mapped symbol and the date (two tickers mapped to one symbol share a key). Rows are identical when
    every number is (an unreadable cell compares as the file spelled it)."""
    n = len(packed)
    dropped = np.zeros(n, dtype=bool)
    clashes = np.zeros(n, dtype=bool)
    candidates = order[rules.ok[order] | (rules.ids[order] == _id(rules, NOT_A_NUMBER))]
    keys = packed[candidates]
    same = keys[1:] == keys[:-1]
    if not same.any():
        return dropped, clashes
    in_group = np.zeros(len(candidates), dtype=bool)
    in_group[1:] |= same
    in_group[:-1] |= same
    rows = candidates[in_group]
    raw = cells.raw(rows)
    groups: dict[int, list[tuple[int, int]]] = {}
    for i, row in enumerate(rows.tolist()):
        groups.setdefault(int(packed[row]), []).append((i, row))
    for members in groups.values():
        seen: dict[tuple, int] = {}
        for i, row in members:
            identity = tuple(raw[c][i] if cells.bad[c][row] else
                             (None if np.isnan(cells.numbers[c][row]) else float(cells.numbers[c][row]))
                             for c in NUMBERS)
            if identity in seen:
                dropped[row] = True
            else:
                seen[identity] = row
        if len(seen) > 1:
            clashes[list(seen.values())] = True
    return dropped, clashes


def _id(rules: _Rules, name: str) -> int:
    return rules.names.index(name) if name in rules.names else -1


def _unit_jumps(ok: np.ndarray, order: np.ndarray, symbol_of_row: np.ndarray, close: np.ndarray,
                split: np.ndarray) -> dict[int, tuple[int, float]]:
    """{row: (the row it jumped from, the ratio)}: among the `ok` rows, a close 50x (or 1/50) of the same symbol's
    previous accepted close in the file with no split that day (a symbol's first bar in the file is the
    reference)."""
    rows = order[ok[order]]
    jumps: dict[int, tuple[int, float]] = {}
    if len(rows) < 2:
        return jumps
    symbols, closes = symbol_of_row[rows], close[rows]
    ratio = closes[1:] / closes[:-1]
    extreme = ((symbols[1:] == symbols[:-1]) & ((ratio >= UNIT_JUMP_FACTOR) | (ratio <= 1 / UNIT_JUMP_FACTOR))
               & np.isnan(split[rows[1:]]))
    for symbol in np.unique(symbols[1:][extreme]):  # walk only the symbols that jump, from their first bar
        mine = rows[symbols == symbol].tolist()
        reference = mine[0]
        for row in mine[1:]:
            r = float(close[row] / close[reference])
            if np.isnan(split[row]) and (r >= UNIT_JUMP_FACTOR or r <= 1 / UNIT_JUMP_FACTOR):
                jumps[row] = (reference, r)
            else:
                reference = row
    return jumps


# --- output -------------------------------------------------------------------------------------------------------

def _bars(kept: np.ndarray, symbol_of_row: np.ndarray, symbol_names: list[str], dates: np.ndarray,
          numbers: dict[str, np.ndarray], split: np.ndarray, dividend: np.ndarray) -> pd.DataFrame:
    """The kept rows (`kept`: row numbers in output order) in the contract's columns and dtypes."""
    indices = pa.array(symbol_of_row[kept].astype(np.int32))
    symbol = pa.DictionaryArray.from_arrays(indices, pa.array(symbol_names, type=pa.large_string()))
    return pd.DataFrame({
        "symbol": pd.arrays.ArrowStringArray(symbol.cast(pa.large_string())),
        "trade_date": dates[kept],
        **{c: numbers[c][kept] for c in ("open", "high", "low", "close", "volume")},
        "split_ratio": split[kept],
        "dividend": dividend[kept],
    })


def _rejected(rules: _Rules, dropped: np.ndarray, clashes: np.ndarray, cells: _Cells, ticker_of_row: np.ndarray,
              ticker_names: list[str], mapped: list[str], first_bad: np.ndarray,
              jumps: dict[int, tuple[int, float]]) -> pd.DataFrame:
    rows = np.flatnonzero(~rules.ok & ~dropped)
    if not len(rows):
        return rejected_frame([])
    raw = cells.raw(rows)
    clash_lines: dict[tuple, list[int]] = {}
    for row in np.flatnonzero(clashes).tolist():
        clash_lines.setdefault((mapped[ticker_of_row[row]], cells.dates[row]), []).append(row + _FIRST_LINE)
    records = []
    for i, row in enumerate(rows.tolist()):
        row_cells = {c: raw[c][i] for c in COLUMNS}
        code = mapped[ticker_of_row[row]]
        day = cells.dates[row]
        context = _Context(code, ticker_names[ticker_of_row[row]], clash_lines.get((code, day), []),
                           NUMBERS[first_bad[row]] if first_bad[row] >= 0 else None, jumps.get(row), cells)
        rule = rules.name(row)
        records.append((code, None if np.isnat(day) else pd.Timestamp(day), rule,
                        _reason(rule, row, row_cells, context), row_cells))
    return rejected_frame(records)


@dataclass(frozen=True)
class _Context:
    code: str
    ticker: str
    clash_lines: list[int]
    bad_column: str | None
    jump: tuple[int, float] | None
    cells: _Cells


def _reason(rule: str, row: int, cells: dict[str, str], context: _Context) -> str:
    """The rule, the values it judged as the file spelled them, and the line."""
    line = f"(line {row + _FIRST_LINE})"
    if rule == BAD_CODE:
        mapped = f" (mapped from ticker {shown(context.ticker)})" if context.ticker != context.code else ""
        return f"{BAD_CODE}: {shown(context.code)}{mapped} is not a valid symbol {line}"
    if rule == NOT_A_DATE:
        return f"{NOT_A_DATE}: date={shown(cells['date'], 40)} is not a YYYY-MM-DD date {line}"
    if rule == NOT_A_NUMBER:
        value = cells[context.bad_column]
        what = "empty" if not value.strip() else f"{shown(value, 40)}, not a finite number"
        return f"{NOT_A_NUMBER}: {context.bad_column} is {what} {line}"
    if rule == DUPLICATE_KEY:
        lines = ", ".join(str(x) for x in context.clash_lines)
        return f"{DUPLICATE_KEY}: {context.code} {cells['date']} is on lines {lines} with different values {line}"
    if rule == UNIT_JUMP:
        reference, ratio = context.jump
        return (f"{UNIT_JUMP}: close={cells['close']} is {ratio:.4g}x the previous close "
                f"{context.cells.cell('close', reference)} ({context.cells.cell('date', reference)}, line "
                f"{reference + _FIRST_LINE}) with no split that day {line}")
    for column, name, _, _ in BOUND_RULES:
        if name == rule:
            return f"{rule}: {column}={cells[column]} {line}"
    for ohlc_rule in OHLC_RULES:
        if ohlc_rule.name == rule:
            values = ", ".join(f"{c}={cells[c]}" for c in (ohlc_rule.column, *ohlc_rule.others))
            return f"{rule}: {values} {line}"
    return f"{rule} {line}"
