"""The simulator's Quandl-format vendor files: clean files agree exactly with the API's bars, every divergence sits in
the file exactly where (and as) its Truth says, and the same seed gives the same bytes."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import gzip
import io
import itertools
import subprocess
import sys
from pathlib import Path

import pytest

from itick_sim import SimSettings, Simulator
from itick_sim.vendor_files import HEADER, KINDS, Divergences, Truth, VendorFile, read_truth, vendor_file

ROOT = Path(__file__).resolve().parents[2]
NOW = dt.datetime(2024, 6, 28, 23, 0, tzinfo=dt.UTC)  # tests/conftest.py's FROZEN_NOW
SETTINGS = SimSettings(now=NOW, symbols_per_region=12)  # what conftest's make_server serves
JUNE = ("2024-06-03", "2024-06-28")  # no split in it
DEC_2019 = ("2019-12-02", "2019-12-31")  # W splits 1:2 on 2019-12-17
PRICE_FIELDS = ("open", "high", "low", "close")
BAR_FIELDS = (*PRICE_FIELDS, "volume")
FIELDS = (*BAR_FIELDS, "split_ratio")


@pytest.fixture(scope="module")
def sim() -> Simulator:
    return Simulator(SETTINGS)


def rows_of(vf: VendorFile) -> dict[tuple[str, dt.date], dict[str, float]]:
    text = gzip.decompress(vf.data).decode()
    reader = csv.reader(io.StringIO(text))
    assert tuple(next(reader)) == HEADER
    out = {}
    for r in reader:
        key = (r[0], dt.date.fromisoformat(r[1]))
        assert key not in out, f"duplicate row {key}"
        out[key] = dict(zip(HEADER[2:], map(float, r[2:]), strict=True))
    return out


def api_of(sim: Simulator, region: str, start: str, end: str, codes) -> dict[tuple[str, dt.date], dict[str, float]]:
    """The API's bars of the window with the split effective each session (ratio_to / ratio_from)."""
    lo, hi = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    splits = {(s.code, s.ex_date): s.ratio_to / s.ratio_from for s in sim.splits(region)}
    out = {}
    for code in codes:
        df = sim.daily_bars(region, code)
        for r in df.itertuples():
            d = r.trade_date.date()
            if lo <= d <= hi:
                out[(code, d)] = {"open": r.o, "high": r.h, "low": r.l, "close": r.c, "volume": r.v,
                                  "split_ratio": splits.get((code, d), 1.0)}
    return out


def diffs(vendor, api) -> dict[tuple[str, dt.date, str], tuple[float | None, float | None]]:
    """Every (symbol, session, field) where the file and the API disagree, computed independently of the module."""
    out = {}
    for key in vendor.keys() | api.keys():
        v, a = vendor.get(key), api.get(key)
        if v is None or a is None:
            out[(*key, "bar")] = (v and v["close"], a and a["close"])
            continue
        for f in FIELDS:
            if v[f] != a[f]:
                out[(*key, f)] = (v[f], a[f])
    return out


def listed_codes(sim: Simulator, region: str = "US") -> list[str]:
    return [s.code for s in sim.universe(region)]


# ------------------------------------------------------------------ clean files


def test_a_clean_file_is_the_api_bars_row_for_row(sim):
    vf = vendor_file(sim, "US", *JUNE)
    assert vf.name == "quandl_eod_20240628.csv.gz"
    assert vf.truth == []
    assert vf.shortfall == {}
    rows = rows_of(vf)
    api = api_of(sim, "US", *JUNE, listed_codes(sim))
    assert rows.keys() == api.keys()
    assert len(rows) > 100
    for key, row in rows.items():
        assert {f: row[f] for f in FIELDS} == api[key], key
        assert row["ex-dividend"] == 0.0
        assert row["split_ratio"] == 1.0
        assert [row[f"adj_{f}"] for f in BAR_FIELDS] == [row[f] for f in BAR_FIELDS]
    # exchange-local sessions only: Juneteenth (a NYSE holiday) has no row
    assert {d for _, d in rows} == {d.date() for d in sim.calendar("US")
                                    if dt.date(2024, 6, 3) <= d.date() <= dt.date(2024, 6, 28)}
    assert dt.date(2024, 6, 19) not in {d for _, d in rows}


def test_a_clean_file_carries_the_split_and_back_adjusts_before_it(sim):
    (split,) = [s for s in sim.splits("US") if dt.date(2019, 12, 2) <= s.ex_date <= dt.date(2019, 12, 31)]
    ratio = split.ratio_to / split.ratio_from
    vf = vendor_file(sim, "US", *DEC_2019, divergences=Divergences.none())
    assert vf.name == "quandl_eod_20191231.csv.gz"
    rows = rows_of(vf)
    api = api_of(sim, "US", *DEC_2019, listed_codes(sim))
    assert rows.keys() == api.keys()
    assert all({f: r[f] for f in FIELDS} == api[k] for k, r in rows.items())
    mine = {d: r for (c, d), r in rows.items() if c == split.code}
    assert mine[split.ex_date]["split_ratio"] == ratio
    assert sum(r["split_ratio"] != 1.0 for r in rows.values()) == 1
    for d, r in mine.items():
        if d < split.ex_date:
            for f in PRICE_FIELDS:
                assert r[f"adj_{f}"] == pytest.approx(r[f] / ratio, rel=1e-9)
            assert r["adj_volume"] == pytest.approx(r["volume"] * ratio, rel=1e-9)
        else:
            assert [r[f"adj_{f}"] for f in BAR_FIELDS] == [r[f] for f in BAR_FIELDS]


# ------------------------------------------------------------------ divergences


def check_truth(sim: Simulator, vf: VendorFile, window) -> dict[str, list[Truth]]:
    rows = rows_of(vf)
    api = api_of(sim, "US", *window, listed_codes(sim))
    found = diffs(rows, api)
    truth = {(t.symbol, t.trade_date, t.field): (t.vendor_value, t.api_value) for t in vf.truth}
    assert len(truth) == len(vf.truth), "one Truth per (symbol, session, field)"
    assert found == truth  # every divergence where its Truth says, as it says, and nowhere else
    by_kind: dict[str, list[Truth]] = {}
    for t in vf.truth:
        by_kind.setdefault(t.kind, []).append(t)
    # rows stay valid bars
    for key, r in rows.items():
        assert 0 < r["low"] <= min(r["open"], r["close"]) <= max(r["open"], r["close"]) <= r["high"], key
        assert r["volume"] >= 0
    # no two kinds share a row
    owners: dict[tuple[str, dt.date], set[str]] = {}
    for t in vf.truth:
        owners.setdefault((t.symbol, t.trade_date), set()).add(t.kind)
    assert all(len(k) == 1 for k in owners.values())
    check_kinds(sim, vf, rows, api, by_kind)
    return by_kind


def check_kinds(sim, vf, rows, api, by_kind) -> None:
    div = vf.divergences
    for t in by_kind.get("off_tolerance", []):
        assert t.field in PRICE_FIELDS
        assert abs(t.vendor_value / t.api_value - 1) == pytest.approx(div.off_tolerance_bps / 1e4, rel=1e-3)
    for t in by_kind.get("within_tolerance", []):
        assert t.field in PRICE_FIELDS
        assert 0 < abs(t.vendor_value / t.api_value - 1) < 1e-4
    for t in by_kind.get("halt", []):
        assert (t.field, t.api_value) == ("bar", None)
        r = rows[(t.symbol, t.trade_date)]
        bars = sim.daily_bars("US", t.symbol)
        assert t.trade_date not in {d.date() for d in bars.trade_date}  # the API has no bar that session
        prev_close = bars[bars.trade_date < str(t.trade_date)].c.iloc[-1]
        assert r["open"] == r["high"] == r["low"] == r["close"] == prev_close == t.vendor_value
        assert r["volume"] == 0.0
    for t in by_kind.get("vendor_only", []):
        assert (t.field, t.api_value) == ("bar", None)
        r = rows[(t.symbol, t.trade_date)]
        assert t.vendor_value == r["close"]
        assert r["volume"] > 0
        assert r["high"] > r["low"]
    for t in by_kind.get("api_only", []):
        assert (t.field, t.vendor_value) == ("bar", None)
        assert t.api_value == api[(t.symbol, t.trade_date)]["close"]
    for t in by_kind.get("missing_split", []):
        assert (t.field, t.vendor_value) == ("split_ratio", 1.0)
        assert t.api_value != 1.0
        assert any(s.code == t.symbol and s.ex_date == t.trade_date for s in sim.splits("US"))
    shifted = by_kind.get("shifted_date", [])
    for code in {t.symbol for t in shifted}:
        days = sorted({t.trade_date for t in shifted if t.symbol == code})
        assert len(days) == div.shifted_span + 1
        d0 = days[0]
        assert (code, d0) in api
        assert (code, d0) not in rows  # the first session has no vendor row
        for prev, d in itertools.pairwise(days):
            v, a = rows[(code, d)], api[(code, prev)]
            assert {f: v[f] for f in BAR_FIELDS} == {f: a[f] for f in BAR_FIELDS}
            # every shifted bar disagrees beyond a 5 bps tolerance
            assert abs(v["close"] / api[(code, d)]["close"] - 1) > 5e-4
    adjusted = by_kind.get("adjusted_rows", [])
    for code in {t.symbol for t in adjusted}:
        (ex,) = [s.ex_date for s in sim.splits("US") if s.code == code
                 if vf.start <= s.ex_date <= vf.end]
        mine = {d: r for (c, d), r in rows.items() if c == code}
        assert {t.trade_date for t in adjusted if t.symbol == code} == {d for d in mine if d < ex}
        for d, r in mine.items():
            if d < ex:
                assert [r[f] for f in BAR_FIELDS] == [r[f"adj_{f}"] for f in BAR_FIELDS]
                assert r["close"] != api[(code, d)]["close"]


def test_default_divergences_in_a_month_without_splits(sim):
    vf = vendor_file(sim, "US", *JUNE, divergences=Divergences(), seed=7)
    by_kind = check_truth(sim, vf, JUNE)
    # no split in the window: the split kinds cannot be placed, and say so
    assert vf.shortfall == {"adjusted_rows": 1, "missing_split": 1}
    for kind in ("off_tolerance", "within_tolerance", "halt", "vendor_only", "api_only"):
        assert len({(t.symbol, t.trade_date) for t in by_kind[kind]}) == getattr(Divergences(), kind), kind
    assert len({t.symbol for t in by_kind["shifted_date"]}) == 1


def test_adjusted_rows_in_a_month_with_a_split(sim):
    div = Divergences(adjusted_rows=1, missing_split=0)
    vf = vendor_file(sim, "US", *DEC_2019, divergences=div, seed=3)
    by_kind = check_truth(sim, vf, DEC_2019)
    assert {t.symbol for t in by_kind["adjusted_rows"]} == {"W"}
    assert "missing_split" not in by_kind


def test_missing_split_in_a_month_with_a_split(sim):
    div = dataclasses.replace(Divergences.none(), missing_split=1, off_tolerance=1)
    vf = vendor_file(sim, "US", *DEC_2019, divergences=div, seed=3)
    by_kind = check_truth(sim, vf, DEC_2019)
    (t,) = by_kind["missing_split"]
    assert (t.symbol, t.trade_date, t.api_value) == ("W", dt.date(2019, 12, 17), 2.0)
    # the vendor that omits the split does not adjust for it either
    rows = rows_of(vf)
    assert all(r["adj_close"] == r["close"] for (c, _), r in rows.items() if c == "W")
    assert set(by_kind) == {"missing_split", "off_tolerance"}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_seed_keeps_the_truth_exact(sim, seed):
    check_truth(sim, vendor_file(sim, "US", *JUNE, divergences=Divergences(), seed=seed), JUNE)


def test_codes_limit_the_file(sim):
    codes = listed_codes(sim)[:3]
    vf = vendor_file(sim, "US", *JUNE, codes=codes)
    assert {c for c, _ in rows_of(vf)} == set(codes)


# ------------------------------------------------------------------ determinism, format, CLI


def test_the_same_seed_gives_the_same_bytes(sim):
    a = vendor_file(sim, "US", *JUNE, divergences=Divergences(), seed=5)
    b = vendor_file(Simulator(SETTINGS), "US", *JUNE, divergences=Divergences(), seed=5)
    assert (a.name, a.data, a.truth) == (b.name, b.data, b.truth)
    c = vendor_file(sim, "US", *JUNE, divergences=Divergences(), seed=6)
    assert c.truth != a.truth


def test_the_gzip_round_trips(sim):
    vf = vendor_file(sim, "US", *JUNE, divergences=Divergences(), seed=1)
    text = gzip.decompress(vf.data).decode()
    assert text.splitlines()[0] == ",".join(HEADER)
    assert vf.data[4:8] == b"\0\0\0\0"  # no timestamp in the gzip header: the bytes depend on the data only
    last = max(dt.date.fromisoformat(line.split(",")[1]) for line in text.splitlines()[1:])
    assert vf.name == f"quandl_eod_{last:%Y%m%d}.csv.gz"
    assert read_truth(vf.truth_json()) == vf.truth


def test_divergence_counts_are_checked():
    with pytest.raises(ValueError, match="halt"):
        Divergences(halt=-1)
    with pytest.raises(ValueError, match="within"):
        Divergences(within_tolerance_bps=2.0)
    assert all(v == 0 for v in Divergences.none().counts().values())
    assert set(Divergences().counts()) == set(KINDS)


def test_the_cli_writes_the_file_and_its_truth(tmp_path, sim):
    out = tmp_path / "drop"
    cmd = [sys.executable, "-m", "itick_sim", "vendor-file", "--region", "US", "--start", JUNE[0], "--end", JUNE[1],
           "--out", str(out), "--divergences", "default", "--divergence-seed", "4", "--symbols", "12",
           "--now", NOW.isoformat()]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    expected = vendor_file(sim, "US", *JUNE, divergences=Divergences(), seed=4)
    data = out / expected.name
    truth = out / f"{expected.name}.truth.json"
    assert sorted(p.name for p in out.iterdir()) == sorted([data.name, truth.name])
    assert data.read_bytes() == expected.data  # the server's settings give the server's bars
    assert read_truth(truth.read_bytes()) == expected.truth
    assert proc.stdout.split() == [str(data), str(truth)]
