"""Arbitration against the simulator's ground truth: the API's bars and a vendor file of the same sessions with
controlled divergences (itick_sim.vendor_files) make exactly the golden bars and exceptions the truth says."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json

import numpy as np
import pandas as pd
import pytest

from itick_sim import SimSettings, Simulator
from itick_sim.vendor_files import Divergences, vendor_file
from ticklake.datasets.golden import AGREED, OVERRIDE, PRIORITY, SINGLE, SPLIT_FIELD, arbitrate
from ticklake.sources.declared import Policy, RegionPolicy

NOW = dt.datetime(2024, 6, 28, 23, 0, tzinfo=dt.UTC)
API, VENDOR = "itick-sim", "quandl"
POLICY = Policy(priority=(API, VENDOR), price_tolerance_bps=5.0, volume_tolerance_pct=1.0)
DEC_2019 = ("2019-12-02", "2019-12-31")  # W splits 1:2 on 2019-12-17
DISAGREEING = {"off_tolerance", "shifted_date", "adjusted_rows", "missing_split"}


@pytest.fixture(scope="module")
def sim() -> Simulator:
    return Simulator(SimSettings(now=NOW, symbols_per_region=12))


def api_bars(sim: Simulator, region: str, start: str, end: str) -> pd.DataFrame:
    frames = []
    for security in sim.universe(region):
        df = sim.daily_bars(region, security.code)
        df = df[df["trade_date"].between(pd.Timestamp(start), pd.Timestamp(end))]
        frames.append(pd.DataFrame({
            "region": region, "symbol": security.code, "trade_date": df["trade_date"].astype("datetime64[ms]"),
            "open": df["o"], "high": df["h"], "low": df["l"], "close": df["c"], "volume": df["v"],
            "turnover": df["tu"], "split_ratio": np.nan, "dividend": np.nan,
            "bar_ts": pd.to_datetime(df["t"], unit="ms", utc=True), "file": None,
            "received_at": pd.Timestamp(NOW), "source": API}))
    return pd.concat(frames, ignore_index=True)


def file_bars(data: bytes, name: str, region: str) -> pd.DataFrame:
    df = pd.read_csv(io.BytesIO(gzip.decompress(data)), dtype={"ticker": str})
    return pd.DataFrame({
        "region": region, "symbol": df["ticker"], "trade_date": pd.to_datetime(df["date"]).astype("datetime64[ms]"),
        "open": df["open"], "high": df["high"], "low": df["low"], "close": df["close"], "volume": df["volume"],
        "turnover": np.nan, "split_ratio": df["split_ratio"].where(df["split_ratio"] != 1.0),
        "dividend": df["ex-dividend"].where(df["ex-dividend"] != 0), "bar_ts": pd.NaT, "file": name,
        "received_at": pd.Timestamp(NOW), "source": VENDOR})


def splits_of(sim: Simulator, region: str) -> pd.DataFrame:
    rows = [(s.code, pd.Timestamp(s.ex_date), s.ratio_to / s.ratio_from) for s in sim.splits(region)]
    return pd.DataFrame(rows, columns=["symbol", "ex_date", "split_ratio"])


# Windows that between them hold every kind of divergence (a split for adjusted rows, another for a missing one,
# gaps in the API's bars for halts and vendor-only bars).
WINDOWS = [(DEC_2019, Divergences(missing_split=0)), (("2021-06-01", "2021-06-30"), Divergences(adjusted_rows=0)),
           (("2019-01-02", "2019-06-28"), Divergences(adjusted_rows=0, missing_split=0))]
ALL_KINDS = {"off_tolerance", "within_tolerance", "shifted_date", "adjusted_rows", "missing_split", "halt",
             "vendor_only", "api_only"}


def _arbitrated(sim, divergences, window=DEC_2019, **kwargs):
    vf = vendor_file(sim, "US", *window, divergences=divergences, seed=3)
    bars = pd.concat([api_bars(sim, "US", *window), file_bars(vf.data, vf.name, "US")], ignore_index=True)
    return vf, arbitrate(bars, kwargs.pop("policy", POLICY), "US", splits=splits_of(sim, "US"), **kwargs)


def test_a_file_that_agrees_with_the_api_makes_every_shared_bar_agreed(sim):
    vf, result = _arbitrated(sim, Divergences.none())
    assert vf.truth == []
    assert len(result.exceptions) == 0
    assert set(result.golden["rule"]) == {AGREED}
    assert (result.golden["max_rel_diff"] == 0).all()
    assert set(result.golden["sources"]) == {f"{API},{VENDOR}"}
    assert set(result.golden["source"]) == {API}
    assert result.golden["bar_ts"].notna().all()  # the API's instant is kept where the API had the bar


def _beyond(t) -> bool:
    """Whether a divergence's field differs beyond the policy's tolerance (a split always does)."""
    if t.field == SPLIT_FIELD:
        return True
    return abs(t.vendor_value - t.api_value) / abs(t.api_value) > POLICY.tolerance(t.field)


def test_the_windows_hold_every_kind_of_divergence(sim):
    kinds = {t.kind for window, divergences in WINDOWS
             for t in vendor_file(sim, "US", *window, divergences=divergences, seed=3).truth}
    assert kinds == ALL_KINDS


@pytest.mark.parametrize(("window", "divergences"), WINDOWS, ids=["2019-12", "2021-06", "2019-H1"])
def test_every_divergence_gives_what_the_truth_says_and_nothing_else(sim, window, divergences):
    vf, result = _arbitrated(sim, divergences, window)
    golden = result.golden.set_index(["symbol", "trade_date"])
    truth = list(vf.truth)
    expected = {(t.symbol, pd.Timestamp(t.trade_date), t.field) for t in truth
                if t.kind in DISAGREEING and t.field != "bar" and _beyond(t)}
    found = {(r.symbol, pd.Timestamp(r.trade_date), r.field) for r in result.exceptions.itertuples()}
    assert found == expected
    for t in truth:
        key = (t.symbol, pd.Timestamp(t.trade_date))
        if t.field == "bar":  # one side only: that side's bar, as it said it
            row = golden.loc[key] if key in golden.index else None
            if t.vendor_value is None:
                assert row is not None
                assert (row["sources"], row["rule"]) == (API, SINGLE)
            else:
                assert row is not None
                assert (row["sources"], row["rule"]) == (VENDOR, SINGLE)
                assert row["close"] == pytest.approx(t.vendor_value)
            if t.kind == "halt":
                assert row["volume"] == 0
                assert row["open"] == row["high"] == row["low"] == row["close"]
        elif t.kind == "within_tolerance":
            assert golden.loc[key, "rule"] == AGREED
            assert 0 < golden.loc[key, "max_rel_diff"] < POLICY.tolerance(t.field)
        elif t.field == SPLIT_FIELD:
            assert golden.loc[key, "rule"] == PRIORITY
        elif _beyond(t):  # beyond tolerance: the priority source's value, an open exception
            assert golden.loc[key, "rule"] == PRIORITY
            assert golden.loc[key, t.field] == pytest.approx(t.api_value)
            assert golden.loc[key, "source"] == API
    assert (result.exceptions["status"] == "open").all()
    split = result.exceptions[result.exceptions["field"] == SPLIT_FIELD]
    missing = [t for t in truth if t.kind == "missing_split" and t.field == SPLIT_FIELD]
    assert len(split) == len(missing)
    for t, row in zip(missing, split.itertuples(), strict=True):  # never silently adjusted: raw, and an exception
        assert json.loads(row.source_values) == {VENDOR: 1.0, "corporate_actions": t.api_value}


def test_priority_is_per_region_and_field(sim):
    policy = Policy(priority=(API, VENDOR), regions={"US": RegionPolicy(priority=(VENDOR, API),
                                                                        fields={"volume": (API, VENDOR)})})
    vf, result = _arbitrated(sim, Divergences(off_tolerance=2), policy=policy)
    golden = result.golden.set_index(["symbol", "trade_date"])
    for t in (t for t in vf.truth if t.kind == "off_tolerance"):
        assert golden.loc[(t.symbol, pd.Timestamp(t.trade_date)), t.field] == pytest.approx(t.vendor_value)
    assert (result.exceptions.loc[result.exceptions["field"] != SPLIT_FIELD, "chosen_source"].isin([VENDOR, API])).all()


def test_an_override_decides_the_field_and_resolves_its_exception(sim):
    vf, _ = _arbitrated(sim, Divergences())
    disputed = next(t for t in vf.truth if t.kind == "off_tolerance")
    overrides = pd.DataFrame([{"override_id": "ov-1", "symbol": disputed.symbol,
                               "trade_date": pd.Timestamp(disputed.trade_date), "field": disputed.field,
                               "chosen_source": VENDOR, "value": np.nan}])
    _, result = _arbitrated(sim, Divergences(), overrides=overrides)
    bar = result.golden.set_index(["symbol", "trade_date"]).loc[(disputed.symbol, pd.Timestamp(disputed.trade_date))]
    assert bar["rule"] == OVERRIDE
    assert bar[disputed.field] == pytest.approx(disputed.vendor_value)
    row = result.exceptions[(result.exceptions["symbol"] == disputed.symbol) & (result.exceptions["field"] ==
                                                                                disputed.field)
                            & (result.exceptions["trade_date"] == pd.Timestamp(disputed.trade_date))]
    assert row[["status", "override_id"]].to_numpy().tolist() == [["overridden", "ov-1"]]
