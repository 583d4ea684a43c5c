"""The iTick wire parser, pure part: bar timestamps to trade dates on the exchange's own calendar, kline payloads
to typed frames (a bad value refuses only its bar), and the fewest-calls fetch plan."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import orjson
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ticklake import markets
from ticklake.sources.itick.wire import (
    PayloadError,
    bars_to_frame,
    minimum_kline_calls,
    parse_bars,
    plan_kline_requests,
    session_end_ms,
    trade_dates,
)

NY = "America/New_York"


def _ms(ts: str, tz: str) -> int:
    return int(pd.Timestamp(ts, tz=tz).value // 1_000_000)


@pytest.mark.parametrize(
    ("instant", "tz", "convention", "expected"),
    [
        ("2024-01-02 16:00", NY, "exchange_local", "2024-01-02"),  # close
        ("2024-01-02 09:30", NY, "exchange_local", "2024-01-02"),  # open
        ("2024-01-02 00:00", NY, "exchange_local", "2024-01-02"),  # local midnight: UTC date would be 01-02 05:00
        ("2024-01-02 00:00", "UTC", "utc", "2024-01-02"),
        ("2024-01-02 00:00", "Asia/Tokyo", "exchange_local", "2024-01-02"),  # UTC date would be 01-01
    ],
)
def test_trade_dates_follow_the_exchange_zone(instant, tz, convention, expected):
    out = trade_dates(np.array([_ms(instant, tz)]), "Asia/Tokyo" if tz == "Asia/Tokyo" else NY, convention)
    assert str(out[0])[:10] == expected


def test_utc_midnight_bars_read_as_local_would_shift_a_day():
    # The trap the convention setting exists for: 00:00 UTC is the previous evening in New York.
    t = np.array([_ms("2024-01-02 00:00", "UTC")])
    assert str(trade_dates(t, NY, "exchange_local")[0])[:10] == "2024-01-01"
    assert str(trade_dates(t, NY, "utc")[0])[:10] == "2024-01-02"


@given(day=st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2035, 12, 31)),
       tz=st.sampled_from([NY, "Asia/Hong_Kong", "Asia/Tokyo", "Europe/London", "UTC"]),
       convention=st.sampled_from(["exchange_local", "utc"]))
def test_session_end_includes_the_whole_day_and_nothing_after(day, tz, convention):
    zone = tz if convention == "exchange_local" else "UTC"
    et = session_end_ms(day, tz, convention)
    last_instant = _ms(f"{day} 23:59:59.999", zone)
    next_day = _ms(f"{day + dt.timedelta(days=1)} 00:00", zone)
    assert et == last_instant < next_day
    assert str(trade_dates(np.array([et]), tz, convention)[0])[:10] == day.isoformat()


bar = st.fixed_dictionaries({
    "t": st.integers(min_value=946_684_800_000, max_value=2_000_000_000_000),
    "o": st.floats(0.01, 1e6), "h": st.floats(0.01, 1e6), "l": st.floats(0.01, 1e6), "c": st.floats(0.01, 1e6),
    "v": st.floats(0, 1e12) | st.integers(0, 10**12), "tu": st.floats(0, 1e15),
})


@settings(max_examples=60, deadline=None)
@given(payload=st.dictionaries(st.text("ABCDEFG0123456789", min_size=1, max_size=5),
                               st.none() | st.lists(bar, max_size=8), max_size=6))
def test_bars_to_frame_keeps_every_distinct_bar_and_types_it(payload):
    frame = bars_to_frame(payload, region="US", timezone=NY, convention="exchange_local")
    expected_keys = {
        (code, str(d)[:10])
        for code, bars in payload.items() if bars
        for d in trade_dates(np.array([b["t"] for b in bars]), NY, "exchange_local")
    }
    assert set(zip(frame["symbol"], frame["trade_date"].astype(str).str[:10], strict=True)) == expected_keys
    # one row per (symbol, date, values): identical bars collapse, bars that disagree all stay (for the quarantine)
    distinct = {
        (code, str(d)[:10], *(float(b[k]) for k in ("o", "h", "l", "c", "v", "tu")))
        for code, bars in payload.items() if bars
        for b, d in zip(bars, trade_dates(np.array([b["t"] for b in bars]), NY, "exchange_local"), strict=True)
    }
    assert len(frame) == len(distinct)
    assert list(frame.columns) == ["region", "symbol", "trade_date", "open", "high", "low", "close", "volume",
                                   "turnover", "bar_ts"]
    assert frame["volume"].dtype == "float64"
    assert str(frame["bar_ts"].dtype) == "datetime64[ms, UTC]"


def test_bars_to_frame_rejects_malformed_bars_with_the_code():
    with pytest.raises(PayloadError, match="AAPL"):
        bars_to_frame({"AAPL": [{"t": 1, "o": 1}]}, region="US", timezone=NY, convention="utc")
    with pytest.raises(PayloadError, match="AAPL: bar timestamp `t` is not a number: 'soon'"):
        bars_to_frame({"AAPL": [{"t": "soon", "o": 1, "h": 1, "l": 1, "c": 1, "v": 1, "tu": 1}]},
                      region="US", timezone=NY, convention="utc")


INT64 = st.integers(-(2**63), 2**63 - 1)  # what JSON decoding yields
CLEAN = {"o": 10.0, "h": 11.0, "l": 9.0, "c": 10.5, "v": 100.0, "tu": 1050.0}
not_a_number = (st.text(min_size=1, max_size=300).filter(lambda s: _not_float(s)) | st.lists(INT64, max_size=3)
                | st.dictionaries(st.text(max_size=3), INT64, max_size=2))


def _not_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return True
    return False


@settings(max_examples=80, deadline=None)
@given(bad=st.lists(st.tuples(st.integers(0, 9), st.sampled_from(["o", "h", "l", "c", "v", "tu"]), not_a_number),
                    min_size=1, max_size=6))
def test_a_value_that_is_not_a_number_refuses_only_its_bar_keeping_the_raw_value(bad):
    bars = [{"t": 1_718_841_600_000 + i * 86_400_000, **CLEAN} for i in range(10)]
    for i, key, value in bad:
        bars[i][key] = value
    frame, refused = parse_bars({"AAPL": bars, "MSFT": [dict(b, **CLEAN) for b in bars]}, region="US", timezone=NY,
                                convention="utc")
    broken = {i for i, _, _ in bad}
    assert len(refused) == len(broken)
    kept = frame[frame["symbol"] == "AAPL"]
    assert set(kept["bar_ts"].array.asi8) == {bars[i]["t"] for i in range(10) if i not in broken}
    assert (frame["symbol"] == "MSFT").sum() == 10  # the other code is whole
    assert frame[["open", "high", "low", "close", "volume", "turnover"]].notna().all().all()
    names = {"o": "open", "h": "high", "l": "low", "c": "close", "v": "volume", "tu": "turnover"}
    for row in refused.itertuples():
        i = (row.bar_ts.value // 10**6 - 1_718_841_600_000) // 86_400_000
        bad_fields = [names[k] for k in ("o", "h", "l", "c", "v", "tu") if _is_bad(bars[i][k])]
        assert row.rule == f"{bad_fields[0]} is a number"
        for key, field in names.items():
            value = bars[i][key]
            if field in bad_fields:
                text = value if isinstance(value, str) else orjson.dumps(value).decode()
                assert getattr(row, field) == text or (len(text) > 200 and getattr(row, field).startswith(text[:200]))
                assert f"{field}=" in row.reason
            else:
                assert getattr(row, field) == value
        assert row.reason.isprintable()
        assert len(row.reason) < 400


def _is_bad(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return True
    return False


def test_plan_for_a_contiguous_range_is_the_theoretical_minimum():
    calendar = markets.sessions("US", dt.date(2019, 1, 1), dt.date(2024, 6, 28))
    requested = calendar[-1300:]
    plan = plan_kline_requests([f"S{i}" for i in range(120)], requested, calendar, max_codes=50, max_bars=1000)
    assert len(plan) == minimum_kline_calls(120, 1300, max_codes=50, max_bars=1000) == 3 * 2
    covered = {d for r in plan for d in r.sessions}
    assert covered == set(requested)
    assert all(r.limit <= 1000 and r.end == max(r.sessions) for r in plan)


@settings(max_examples=80, deadline=None)
@given(data=st.data(), n_codes=st.integers(1, 130), max_codes=st.integers(1, 60), max_bars=st.integers(1, 40))
def test_plan_covers_every_requested_session_with_bounded_limits(data, n_codes, max_codes, max_bars):
    calendar = markets.sessions("HK", dt.date(2023, 1, 1), dt.date(2023, 6, 30))
    requested = data.draw(st.lists(st.sampled_from(calendar), min_size=1, max_size=60, unique=True))
    plan = plan_kline_requests([f"C{i}" for i in range(n_codes)], requested, calendar,
                               max_codes=max_codes, max_bars=max_bars)
    assert {d for r in plan for d in r.sessions} == set(requested)
    for request in plan:
        assert 1 <= len(request.codes) <= max_codes
        assert request.limit <= max_bars
        # limit counts calendar sessions back from `end`, so it must reach the page's first session
        span = [d for d in calendar if min(request.sessions) <= d <= request.end]
        assert request.limit == len(span)
    pages = {r.sessions for r in plan}
    assert len(plan) == len(pages) * math.ceil(n_codes / max_codes)
    span = [d for d in calendar if min(requested) <= d <= max(requested)]
    assert len(pages) <= math.ceil(len(span) / max_bars)


def test_plan_refuses_non_sessions():
    calendar = markets.sessions("US", dt.date(2024, 1, 1), dt.date(2024, 1, 31))
    with pytest.raises(ValueError, match="2024-01-06"):
        plan_kline_requests(["A"], [dt.date(2024, 1, 6)], calendar, max_codes=5, max_bars=10)
