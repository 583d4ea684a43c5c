"""The vendor file-drop adapter's pure part: the quandl_eod format (file-level refusals, row-level rules, the
exact frame), the lake-knowledge screen and listing a drop (a local directory and moto's S3)."""

from __future__ import annotations

import datetime as dt
import gzip
import os
import random

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticklake.sources.files import (
    BAD_CODE,
    BARS_COLUMNS,
    DUPLICATE_KEY,
    NOT_A_DATE,
    NOT_A_NUMBER,
    OFF_CALENDAR,
    REJECTED_COLUMNS,
    UNIT_JUMP,
    UNKNOWN_CODE,
    FileFormat,
    FileRefused,
    format_named,
    formats,
)
from ticklake.sources.files.drop import DropFile, list_drop, read_drop, sha256_of
from ticklake.sources.files.formats.quandl_eod import COLUMNS, name_date
from ticklake.sources.files.screen import screen

QUANDL = formats()["quandl_eod"]
HEADER = ",".join(COLUMNS)


def row(ticker="AAPL", date="2024-06-28", open_="10", high="11", low="9", close="10.5", volume="1000",
        dividend="0", split="1.0", adj=None, **overrides) -> dict[str, str]:
    cells = {"ticker": ticker, "date": date, "open": open_, "high": high, "low": low, "close": close,
             "volume": volume, "ex-dividend": dividend, "split_ratio": split}
    cells.update(adj or {"adj_open": open_, "adj_high": high, "adj_low": low, "adj_close": close,
                         "adj_volume": volume})
    cells.update(overrides)
    return cells


def csv(rows: list[dict[str, str]], columns=COLUMNS) -> bytes:
    lines = [",".join(columns), *(",".join(r[c] for c in columns) for r in rows)]
    return ("\n".join(lines) + "\n").encode()


def read(rows, name="quandl_eod.csv", symbols=None, **kw) -> object:
    return QUANDL.read(name, csv(rows, **kw), symbols or {})


def refused(data: bytes, name: str = "quandl_eod.csv") -> str:
    with pytest.raises(FileRefused) as info:
        QUANDL.read(name, data, {})
    assert isinstance(info.value, ValueError)
    assert info.value.reason == str(info.value)
    return info.value.reason


GOOD = [
    row("AAPL", "2024-06-27", "10", "11", "9", "10.5", "1000", dividend="0", split="1.0"),
    row("AAPL", "2024-06-28", "10.5", "11.5", "10", "11", "1200", dividend="0.25", split="1.0"),
    row("MSFT", "2024-06-28", "20", "21", "19", "20.5", "500", dividend="0", split="2"),
    row("BRK_B", "2024-06-28", "400", "410", "395", "405", "30", dividend="", split=""),
]
EXPECTED = pd.DataFrame({
    "symbol": pd.array(["AAPL", "AAPL", "BRK.B", "MSFT"], dtype="string"),
    "trade_date": pd.to_datetime(["2024-06-27", "2024-06-28", "2024-06-28", "2024-06-28"]).astype("datetime64[ms]"),
    "open": [10.0, 10.5, 400.0, 20.0],
    "high": [11.0, 11.5, 410.0, 21.0],
    "low": [9.0, 10.0, 395.0, 19.0],
    "close": [10.5, 11.0, 405.0, 20.5],
    "volume": [1000.0, 1200.0, 30.0, 500.0],
    "split_ratio": [np.nan, np.nan, np.nan, 2.0],
    "dividend": [np.nan, 0.25, np.nan, np.nan],
})


# --- the format registry ------------------------------------------------------------------------------------------

def test_formats_are_discovered_by_module():
    found = formats()
    assert "quandl_eod" in found
    assert isinstance(found["quandl_eod"], FileFormat)
    assert found["quandl_eod"].name == "quandl_eod"
    assert found["quandl_eod"].description
    assert format_named("quandl_eod") is found["quandl_eod"]
    with pytest.raises(KeyError, match="quandl_eod"):
        format_named("nope")


# --- a good file --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("compress", [False, True])
def test_a_good_file_reads_to_the_exact_frame(compress):
    data = csv(GOOD)
    if compress:
        data = gzip.compress(data)
    delivery = QUANDL.read("US/quandl_eod_20240628.csv.gz", data, {"BRK_B": "BRK.B"})
    pd.testing.assert_frame_equal(delivery.bars, EXPECTED)
    assert list(delivery.bars.columns) == list(BARS_COLUMNS)
    assert delivery.rows == 4
    assert len(delivery.rejected) == 0
    assert list(delivery.rejected.columns) == list(REJECTED_COLUMNS)
    assert str(delivery.rejected["date"].dtype) == "datetime64[ms]"


def test_gzip_is_told_by_its_magic_bytes_not_the_name():
    plain_named_gz = QUANDL.read("EOD_20240628.csv.gz", csv(GOOD), {"BRK_B": "BRK.B"})
    gz_named_csv = QUANDL.read("EOD_20240628.csv", gzip.compress(csv(GOOD)), {"BRK_B": "BRK.B"})
    pd.testing.assert_frame_equal(plain_named_gz.bars, EXPECTED)
    pd.testing.assert_frame_equal(gz_named_csv.bars, EXPECTED)


def test_column_order_is_free_and_crlf_and_a_bom_are_read():
    columns = list(reversed(COLUMNS))
    data = csv(GOOD, columns=columns).replace(b"\n", b"\r\n")
    delivery = QUANDL.read("x.csv", b"\xef\xbb\xbf" + data, {"BRK_B": "BRK.B"})
    pd.testing.assert_frame_equal(delivery.bars, EXPECTED)


def test_unmapped_tickers_pass_through_and_mapped_ones_are_renamed():
    delivery = read([row("BRK_B"), row("IBM")], symbols={"BRK_B": "BRK.B", "GONE": "X"})
    assert delivery.bars["symbol"].tolist() == ["BRK.B", "IBM"]


# --- file-level refusals ------------------------------------------------------------------------------------------

def test_an_empty_file_is_refused():
    assert "empty" in refused(b"")
    assert "empty" in refused(gzip.compress(b""))
    assert "no data rows" in refused((HEADER + "\n").encode())
    assert "no data rows" in refused(HEADER.encode())


def test_missing_and_extra_columns_are_refused_by_name():
    columns = [c for c in COLUMNS if c not in ("adj_close", "split_ratio")] + ["exchange"]
    data = ("\n".join([",".join(columns), ",".join("1" for _ in columns)]) + "\n").encode()
    reason = refused(data)
    assert "`split_ratio`" in reason
    assert "`adj_close`" in reason
    assert "`exchange`" in reason
    assert "line 1" in reason
    reason = refused((HEADER + ",close\n").encode() + csv(GOOD).split(b"\n", 1)[1])
    assert "repeats" in reason
    assert "`close`" in reason


@pytest.mark.parametrize("cut", [10, 30, -9])
def test_a_truncated_or_corrupt_gzip_is_refused(cut):
    data = gzip.compress(csv(GOOD * 50))
    assert "truncated" in refused(data[:cut])


def test_a_corrupt_gzip_is_refused():
    data = bytearray(gzip.compress(csv(GOOD * 50)))
    data[len(data) // 2] ^= 0xFF
    data[len(data) // 2 + 1] ^= 0xFF
    reason = refused(bytes(data))
    assert "gzip" in reason
    assert "zip" in refused(b"PK\x03\x04" + b"\0" * 40)


def test_a_truncated_plain_csv_is_refused_naming_the_line():
    data = csv(GOOD)[:-12]
    reason = refused(data)
    assert "line 5" in reason
    assert "field(s)" in reason


def test_a_file_that_is_not_utf8_is_refused():
    data = csv(GOOD).replace(b"MSFT", b"MS\xff\xfe")
    assert "UTF-8" in refused(data)


def test_a_mostly_unreadable_column_refuses_the_file_naming_the_column_and_line():
    rows = [row(date=f"2024-06-{d:02d}") for d in (24, 25, 26, 27, 28)]
    bad = [dict(r, close="n/a") for r in rows[:3]] + rows[3:]
    reason = refused(csv(bad))
    assert "`close`" in reason
    assert "line 2" in reason
    assert "'n/a'" in reason
    assert "3 of its 5" in reason
    bad_dates = [dict(r, date=f"06/{24 + i}/2024") for i, r in enumerate(rows)]
    reason = refused(csv(bad_dates))
    assert "`date`" in reason
    assert "line 2" in reason
    assert "'06/24/2024'" in reason


def test_a_single_bad_cell_quarantines_its_row_only():
    rows = [row(date=f"2024-06-{d:02d}") for d in (24, 25, 26, 27, 28)]
    rows[1] = dict(rows[1], close="abc")
    rows[2] = dict(rows[2], date="2024-02-30")
    delivery = read(rows)
    assert len(delivery.bars) == 3
    rules = dict(zip(delivery.rejected["rule"], delivery.rejected["reason"], strict=True))
    assert rules[NOT_A_NUMBER] == "not_a_number: close is 'abc', not a finite number (line 3)"
    assert rules[NOT_A_DATE] == "not_a_date: date='2024-02-30' is not a YYYY-MM-DD date (line 4)"
    assert delivery.rejected["raw"].iloc[0]["close"] == "abc"
    assert pd.isna(delivery.rejected.loc[delivery.rejected["rule"] == NOT_A_DATE, "date"]).all()


def test_a_name_whose_date_does_not_match_the_contents_is_refused():
    data = csv(GOOD)
    for name in ("quandl_eod_20240628.csv.gz", "EOD_2024-06-28.csv", "drop/US/EOD_2024-06-28.csv", "daily.csv"):
        QUANDL.read(name, data, {})
    reason = refused(data, "quandl_eod_20240627.csv.gz")
    assert "2024-06-27" in reason
    assert "2024-06-28" in reason
    assert "2024-06-21" in refused(data, "EOD_2024-06-21.csv")


def test_name_dates():
    assert name_date("quandl_eod_20240628.csv.gz") == dt.date(2024, 6, 28)
    assert name_date("2023/EOD_2024-06-28.csv") == dt.date(2024, 6, 28)
    assert name_date("EOD.csv") is None
    assert name_date("batch_123456789.csv") is None
    assert name_date("v20241399.csv") is None


# --- row-level rules ----------------------------------------------------------------------------------------------

def test_identical_duplicates_collapse_silently():
    delivery = read([GOOD[0], GOOD[1], GOOD[0], dict(GOOD[0], close="10.50", adj_close="10.50")])
    assert len(delivery.rejected) == 0
    assert delivery.rows == 4
    assert len(delivery.bars) == 2


def test_conflicting_duplicates_quarantine_every_row_of_the_key():
    delivery = read([GOOD[0], GOOD[1], dict(GOOD[1], close="11.2"), GOOD[2]])
    assert delivery.bars["symbol"].tolist() == ["AAPL", "MSFT"]
    rejected = delivery.rejected
    assert rejected["rule"].tolist() == [DUPLICATE_KEY, DUPLICATE_KEY]
    assert rejected["code"].tolist() == ["AAPL", "AAPL"]
    assert rejected["reason"].iloc[0] == ("duplicate_key: AAPL 2024-06-28 is on lines 3, 4 with different values "
                                          "(line 3)")
    assert [r["close"] for r in rejected["raw"]] == ["11", "11.2"]


def test_two_tickers_mapped_to_one_symbol_share_a_key():
    delivery = read([row("BRK_B"), row("BRK.B", close="10.6")], symbols={"BRK_B": "BRK.B"})
    assert len(delivery.bars) == 0
    assert set(delivery.rejected["rule"]) == {DUPLICATE_KEY}


@pytest.mark.parametrize(("cells", "rule", "reason"), [
    ({"low": "10.2"}, "low <= min(open, close)", "low <= min(open, close): low=10.2, open=10, close=10.5 (line 2)"),
    ({"high": "10.2"}, "high >= max(open, close)",
     "high >= max(open, close): high=10.2, open=10, close=10.5 (line 2)"),
    ({"open": "9", "close": "9", "high": "8.5", "low": "8.9"}, "high >= max(open, close)", None),
    ({"open": "0"}, "open: open > 0", "open: open > 0: open=0 (line 2)"),
    ({"low": "-1"}, "low: low > 0", None),
    ({"close": "-10.5", "open": "-11", "low": "-12", "high": "-10"}, "open: open > 0", None),
    ({"volume": "-5"}, "volume: volume >= 0", "volume: volume >= 0: volume=-5 (line 2)"),
    ({"split_ratio": "-2"}, "split_ratio: split_ratio >= 0", None),
    ({"ex-dividend": "-0.1"}, "dividend: dividend >= 0", "dividend: dividend >= 0: ex-dividend=-0.1 (line 2)"),
    ({"adj_close": "0"}, "adj_close: adj_close > 0", None),
    ({"adj_volume": "-1"}, "adj_volume: adj_volume >= 0", None),
    ({"adj_open": "x"}, NOT_A_NUMBER, "not_a_number: adj_open is 'x', not a finite number (line 2)"),
    ({"volume": ""}, NOT_A_NUMBER, "not_a_number: volume is empty (line 2)"),
    ({"close": "inf"}, NOT_A_NUMBER, None),
    ({"open": "nan"}, NOT_A_NUMBER, None),
    ({"date": ""}, NOT_A_DATE, None),
    ({"date": "2024-6-28"}, NOT_A_DATE, None),
    ({"ticker": "BAD TICKER"}, BAD_CODE, "bad_code: 'BAD TICKER' is not a valid symbol (line 2)"),
    ({"ticker": ""}, BAD_CODE, None),
    ({"ticker": "A/B"}, BAD_CODE, None),
])
def test_a_row_rule_quarantines_the_row_and_keeps_the_rest(cells, rule, reason):
    others = [row("MSFT", "2024-06-27"), row("MSFT", "2024-06-28"), row("IBM", "2024-06-28")]
    delivery = read([dict(row(), **cells), *others])
    assert delivery.rows == 4
    assert len(delivery.bars) == 3
    assert set(delivery.bars["symbol"]) == {"MSFT", "IBM"}
    assert delivery.rejected["rule"].tolist() == [rule]
    if reason is not None:
        assert delivery.rejected["reason"].tolist() == [reason]
    assert delivery.rejected["raw"].iloc[0] == dict(row(), **cells)


def test_the_dictionary_names_the_ohlc_rules():
    from ticklake.dictionary.market_data import KLINES_DAILY_BY_SOURCE

    names = {r.name for r in KLINES_DAILY_BY_SOURCE.rules}
    assert names == {"low <= min(open, close)", "high >= max(open, close)", "low <= high"}


def test_a_mapped_ticker_that_is_no_symbol_is_a_bad_code():
    delivery = read([row("BRK_B"), row("IBM")], symbols={"BRK_B": "BRK B"})
    assert delivery.rejected["rule"].tolist() == [BAD_CODE]
    assert "mapped from ticker 'BRK_B'" in delivery.rejected["reason"].iloc[0]


def _series(closes, splits=None, ticker="AAPL"):
    days = pd.bdate_range("2024-06-03", periods=len(closes)).strftime("%Y-%m-%d")
    splits = splits or [""] * len(closes)
    return [row(ticker, d, c, str(float(c) * 1.01), str(float(c) * 0.99), c, "100", split=s)
            for d, c, s in zip(days, closes, splits, strict=True)]


def test_a_100x_unit_jump_is_quarantined():
    delivery = read(_series(["10", "10.2", "1020", "10.3", "10.1"]) + _series(["5", "5.1"], ticker="IBM"))
    assert delivery.rejected["rule"].tolist() == [UNIT_JUMP]
    assert delivery.rejected["reason"].iloc[0].startswith("unit_jump: close=1020 is 100x the previous close 10.2")
    assert len(delivery.bars) == 6  # the bar after the jump compares with the last accepted close


def test_a_drop_by_100x_is_a_jump_too_and_file_order_does_not_matter():
    rows = _series(["1000", "1010", "10.1", "1005"])
    delivery = read(list(reversed(rows)))
    assert delivery.rejected["rule"].tolist() == [UNIT_JUMP]
    assert delivery.rejected["raw"].iloc[0]["close"] == "10.1"


def test_a_jump_on_a_split_day_is_no_unit_jump():
    delivery = read(_series(["1000", "1010", "10.1", "10.2"], splits=["", "", "100", ""]))
    assert len(delivery.rejected) == 0
    assert delivery.bars["split_ratio"].tolist()[2] == 100.0
    below = read(_series(["10", "10.2", "499"]))  # 48.9x: not a jump
    assert len(below.rejected) == 0


def test_split_ratio_one_or_zero_and_dividend_zero_are_null():
    delivery = read([row(date="2024-06-26", split="1.0", dividend="0.0"), row(date="2024-06-27", split="0",
                                                                               dividend="0"),
                     row(date="2024-06-28", split="", dividend="")])
    assert delivery.bars["split_ratio"].isna().all()
    assert delivery.bars["dividend"].isna().all()


# --- every frame of valid bars reads back equal -------------------------------------------------------------------

PRICES = st.floats(min_value=1.0, max_value=40.0, allow_nan=False).map(lambda x: round(x, 4))


@st.composite
def valid_bars(draw) -> pd.DataFrame:
    tickers = draw(st.lists(st.from_regex(r"[A-Z][A-Z0-9._-]{0,6}", fullmatch=True), min_size=1, max_size=4,
                            unique=True))
    days = pd.bdate_range("2024-01-01", periods=30)
    records = []
    for ticker in tickers:
        for day in draw(st.sets(st.sampled_from(list(days)), min_size=1, max_size=8)):
            a, b = draw(PRICES), draw(PRICES)
            low, high = min(a, b), max(a, b) * draw(st.sampled_from([1.0, 1.01]))
            records.append({
                "symbol": ticker, "trade_date": day,
                "open": draw(st.sampled_from([low, high])), "high": high, "low": low,
                "close": draw(st.floats(min_value=low, max_value=high)) if low < high else low,
                "volume": float(draw(st.integers(0, 10**9))),
                "split_ratio": draw(st.sampled_from([np.nan, 2.0, 0.5, 3.0])),
                "dividend": draw(st.sampled_from([np.nan, 0.25, 1.5])),
            })
    frame = pd.DataFrame(records).sort_values(["symbol", "trade_date"], ignore_index=True)
    frame["symbol"] = frame["symbol"].astype("string")
    frame["trade_date"] = frame["trade_date"].astype("datetime64[ms]")
    return frame


def _cell(value: float, empty_means: str) -> str:
    return empty_means if np.isnan(value) else repr(float(value))


@given(bars=valid_bars(), seed=st.integers(0, 2**32 - 1), compress=st.booleans())
def test_any_frame_of_valid_bars_written_as_csv_reads_back_equal(bars, seed, compress):
    rng = random.Random(seed)
    columns = list(COLUMNS)
    rng.shuffle(columns)
    rows = []
    for bar in bars.itertuples(index=False):
        rows.append({
            "ticker": bar.symbol, "date": bar.trade_date.strftime("%Y-%m-%d"),
            "open": repr(bar.open), "high": repr(bar.high), "low": repr(bar.low), "close": repr(bar.close),
            "volume": repr(bar.volume), "ex-dividend": _cell(bar.dividend, rng.choice(["", "0", "0.0"])),
            "split_ratio": _cell(bar.split_ratio, rng.choice(["", "1", "1.0", "0"])),
            "adj_open": repr(bar.open / 2), "adj_high": repr(bar.high / 2), "adj_low": repr(bar.low / 2),
            "adj_close": repr(bar.close / 2), "adj_volume": repr(bar.volume * 2),
        })
    rng.shuffle(rows)
    data = csv(rows, columns=columns)
    if compress:
        data = gzip.compress(data)
    last = bars["trade_date"].max().strftime("%Y%m%d")
    delivery = QUANDL.read(f"quandl_eod_{last}.csv.gz" if rng.random() < 0.5 else "drop.csv", data, {})
    assert len(delivery.rejected) == 0, delivery.rejected["reason"].tolist()
    assert delivery.rows == len(bars)
    pd.testing.assert_frame_equal(delivery.bars, bars)


def test_a_million_rows_read_in_reasonable_time():
    import time

    n = 200_000
    tickers = np.array([f"T{i}" for i in range(2000)])[np.arange(n) % 2000]
    days = pd.bdate_range("2023-01-02", periods=n // 2000)[np.arange(n) // 2000].strftime("%Y-%m-%d")
    close = np.random.default_rng(0).uniform(10, 20, n).round(2)
    frame = pd.DataFrame({"ticker": tickers, "date": days, "open": close, "high": close + 1, "low": close - 1,
                          "close": close, "volume": 1000.0, "ex-dividend": 0.0, "split_ratio": 1.0,
                          "adj_open": close, "adj_high": close + 1, "adj_low": close - 1, "adj_close": close,
                          "adj_volume": 1000.0})
    data = frame.to_csv(index=False).encode()
    started = time.perf_counter()
    delivery = QUANDL.read("x.csv", data, {})
    elapsed = time.perf_counter() - started
    assert len(delivery.bars) == n
    assert elapsed < 5.0  # ~0.25 s here; a generous bound on a loaded machine (1M rows ~1.2 s)


# --- the screen ---------------------------------------------------------------------------------------------------

def test_screen_quarantines_unknown_codes_and_off_calendar_dates():
    bars = EXPECTED.copy()
    sessions = [dt.date(2024, 6, 28)]  # 2024-06-27 is off this (made-up) calendar
    good, rejected = screen(bars, known_codes={"AAPL", "MSFT"}, sessions=sessions)
    assert good["symbol"].tolist() == ["AAPL", "MSFT"]
    assert good["trade_date"].dt.date.tolist() == [dt.date(2024, 6, 28)] * 2
    assert list(rejected.columns) == list(REJECTED_COLUMNS)
    assert rejected["rule"].tolist() == [OFF_CALENDAR, UNKNOWN_CODE]
    assert rejected["code"].tolist() == ["AAPL", "BRK.B"]
    assert rejected["date"].tolist() == [pd.Timestamp("2024-06-27"), pd.Timestamp("2024-06-28")]
    assert "2024-06-27 is not a session" in rejected["reason"].iloc[0]
    assert "BRK.B is not in the region's security master" in rejected["reason"].iloc[1]
    assert rejected["raw"].iloc[0]["close"] == "10.5"
    assert rejected["raw"].iloc[0]["split_ratio"] == ""
    assert str(rejected["date"].dtype) == "datetime64[ms]"
    pd.testing.assert_frame_equal(good.dtypes.to_frame(), bars.dtypes.to_frame())


def test_screen_keeps_everything_that_passes():
    good, rejected = screen(EXPECTED, known_codes={"AAPL", "MSFT", "BRK.B"},
                            sessions=[dt.date(2024, 6, 27), dt.date(2024, 6, 28)])
    pd.testing.assert_frame_equal(good, EXPECTED)
    assert len(rejected) == 0
    assert list(rejected.columns) == list(REJECTED_COLUMNS)


# --- listing a drop -----------------------------------------------------------------------------------------------

def _populate(put) -> None:
    put("quandl_eod_20240628.csv.gz", b"one")
    put("US/EOD_2024-06-27.csv", b"two!")
    put("US/upload.csv.part", b"partial")
    put("US/upload.csv.tmp", b"partial")
    put(".hidden.csv", b"dot")
    put(".staging/EOD.csv", b"dot dir")


def test_list_drop_on_a_local_directory(tmp_path):
    def put(name, data):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    _populate(put)
    files = list_drop(str(tmp_path))
    assert [f.name for f in files] == ["US/EOD_2024-06-27.csv", "quandl_eod_20240628.csv.gz"]
    assert [f.size for f in files] == [4, 3]
    assert all(isinstance(f, DropFile) and f.mtime.tzinfo is not None for f in files)
    mtime = os.stat(tmp_path / "US/EOD_2024-06-27.csv").st_mtime
    assert abs(files[0].mtime.timestamp() - mtime) < 1
    assert read_drop(str(tmp_path), "US/EOD_2024-06-27.csv") == b"two!"
    assert list_drop(f"file://{tmp_path}") == files
    assert list_drop(str(tmp_path / "not-yet")) == []
    with pytest.raises(ValueError, match="relative"):
        read_drop(str(tmp_path), "../secret")
    with pytest.raises(FileNotFoundError, match=r"gone\.csv"):
        read_drop(str(tmp_path), "gone.csv")


def test_sha256_of():
    assert sha256_of(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_list_drop_on_s3(s3):
    import boto3

    client = boto3.client("s3", endpoint_url=s3.endpoint, region_name="us-east-1")

    def put(name, data):
        client.put_object(Bucket=s3.bucket, Key=f"vendor/quandl/{name}", Body=data)

    _populate(put)
    client.put_object(Bucket=s3.bucket, Key="vendor/other/EOD.csv", Body=b"not ours")
    location = s3.url("vendor/quandl")
    files = list_drop(location)
    assert [f.name for f in files] == ["US/EOD_2024-06-27.csv", "quandl_eod_20240628.csv.gz"]
    assert "EOD.csv" not in [f.name for f in files]
    assert [f.size for f in files] == [4, 3]
    assert all(f.mtime.tzinfo is not None for f in files)
    assert read_drop(location, "US/EOD_2024-06-27.csv") == b"two!"
    assert list_drop(s3.url("vendor/none")) == []
    with pytest.raises(FileNotFoundError):
        read_drop(location, "gone.csv")


def test_a_gzipped_delivery_is_read_as_delivered_not_decompressed(tmp_path):
    data = gzip.compress(b"ticker,date\n")
    (tmp_path / "quandl_eod_20240628.csv.gz").write_bytes(data)
    assert read_drop(str(tmp_path), "quandl_eod_20240628.csv.gz") == data  # its sha256 is the delivery's
