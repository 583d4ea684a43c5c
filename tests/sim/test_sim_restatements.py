"""T+1 reconciliation work: restated and late bars, driven only by each server's clock, over real HTTP."""

from __future__ import annotations

import contextlib
import datetime as dt
import zoneinfo

import httpx
import pandas as pd
import pytest

from itick_sim import SimSettings, Simulator, serve
from itick_sim.__main__ import parser, settings_from_args
from itick_sim.markets import MARKETS

D = dt.date(2025, 6, 24)  # a Tuesday, a session in US and HK, with sessions on the following days
NOW = dt.datetime(2025, 6, 30, 23, 0, tzinfo=dt.UTC)
FIELDS = ("o", "h", "l", "c", "v", "tu")


def _evening(day: dt.date, region: str) -> dt.datetime:
    """23:00 exchange-local on `day`: after its session, still the same local day."""
    return dt.datetime.combine(day, dt.time(23), zoneinfo.ZoneInfo(MARKETS[region].tz)).astimezone(dt.UTC)


def _sim(region: str, day: dt.date, **kw) -> Simulator:
    return Simulator(SimSettings(now=_evening(day, region), regions=(region,), symbols_per_region=8, **kw))


def _codes(region: str, n: int = 3) -> list[str]:
    """Codes trading around D, with a bar on D itself."""
    probe = _sim(region, D + dt.timedelta(days=3))
    codes = [s.code for s in probe.universe(region) if s.delisted is None and s.listed < D - dt.timedelta(days=30)]
    with_d = [c for c in codes if D in _dates(probe.daily_bars(region, c))]
    assert len(with_d) >= n
    return with_d[:n]


def _dates(bars) -> set[dt.date]:
    return {t.date() for t in bars["trade_date"]}


@contextlib.contextmanager
def _http(sim: Simulator):
    with serve(sim) as server, httpx.Client(base_url=server.url, headers={"token": "t"}) as client:
        yield client


def _batch(client: httpx.Client, region: str, codes: list[str], limit: int = 10, ktype: int = 8) -> dict:
    body = client.get("/stock/klines", params={"region": region, "codes": ",".join(codes), "kType": ktype,
                                               "limit": limit}).json()
    assert body["code"] == 0
    return body["data"]


def _single(client: httpx.Client, region: str, code: str, limit: int = 10) -> list[dict]:
    body = client.get("/stock/kline", params={"region": region, "code": code, "kType": 8, "limit": limit}).json()
    assert body["code"] == 0
    return body["data"]


def _by_day(bars: list[dict], region: str) -> dict[dt.date, dict]:
    tz = zoneinfo.ZoneInfo(MARKETS[region].tz)
    return {dt.datetime.fromtimestamp(b["t"] / 1000, dt.UTC).astimezone(tz).date(): b for b in bars}


def _valid(bar: dict) -> bool:
    return 0 < bar["l"] <= min(bar["o"], bar["c"]) <= max(bar["o"], bar["c"]) <= bar["h"] and bar["v"] > 0


def _served(sim: Simulator, region: str, codes: list[str]) -> dict[str, dict[dt.date, dict]]:
    """Batch and single-code answers over HTTP, checked to agree with each other and with daily_bars."""
    with _http(sim) as client:
        batch = _batch(client, region, codes)
        singles = {c: _single(client, region, c) for c in codes}
    assert list(batch) == codes
    for c in codes:
        assert batch[c] == singles[c]
        truth = sim.daily_bars(region, c).tail(10)
        assert [b["c"] for b in batch[c]] == truth["c"].tolist()
        assert [b["v"] for b in batch[c]] == truth["v"].tolist()
    return {c: _by_day(batch[c], region) for c in codes}


# ---------------------------------------------------------------------------------------------------- restatements
@pytest.mark.parametrize("region", ["US", "HK"])
def test_a_bar_fetched_at_d1_is_restated_at_d3_on_the_documented_fields_only(region):
    a, b, c = _codes(region)
    kw = {"restate_codes": frozenset({a, c}), "restate_after_days": 2}
    early, late = _sim(region, D + dt.timedelta(days=1), **kw), _sim(region, D + dt.timedelta(days=3), **kw)
    x, y = _served(early, region, [a, b, c])[a][D], _served(late, region, [a, b, c])[a][D]
    dp = MARKETS[region].dp
    assert (y["o"], y["l"]) == (x["o"], x["l"])
    assert y["c"] == round(x["c"] + max(round(x["c"] * 0.01, dp), 10**-dp), dp)  # +1% to the tick, >= 1 tick
    assert y["h"] == max(x["h"], y["c"])
    assert y["v"] > x["v"]  # one lot more
    assert y["tu"] == pytest.approx(y["v"] * (y["h"] + y["l"] + y["c"]) / 3, abs=0.01)
    assert x["tu"] != y["tu"]
    assert _valid(x)
    assert _valid(y)


def test_restated_values_never_change_again_and_other_codes_never_change():
    region = "US"
    a, b, _ = _codes(region)
    kw = {"restate_codes": frozenset({a})}
    served = {n: _served(_sim(region, D + dt.timedelta(days=n), **kw), region, [a, b]) for n in (1, 2, 3, 10)}
    assert served[1][a][D] != served[2][a][D]
    assert served[2][a][D] == served[3][a][D] == served[10][a][D]
    for n in (2, 3, 10):  # b is not restated: every bar it shares with the D+1 answer is identical
        common = served[1][b].keys() & served[n][b].keys()
        assert common
        assert all(served[1][b][d] == served[n][b][d] for d in common)
    assert all(_valid(bar) for s in served.values() for bars in s.values() for bar in bars.values())


def test_the_ground_truth_lists_exactly_the_bars_a_clock_step_restated():
    region = "US"
    a, b, _ = _codes(region)
    kw = {"restate_codes": frozenset({a})}
    early, late = _sim(region, D + dt.timedelta(days=1), **kw), _sim(region, D + dt.timedelta(days=3), **kw)
    before, after = early.restated(region, a), late.restated(region, a)
    assert after[: len(before)] == before  # once restated, always the same values
    new = after[len(before):]
    assert new
    assert [day for day, _, _ in new] == [d for d in sorted(_dates(late.daily_bars(region, a)))
                                         if D - dt.timedelta(days=1) < d <= D + dt.timedelta(days=1)]
    wire_early, wire_late = _served(early, region, [a])[a], _served(late, region, [a])[a]
    for day, original, restated in new:
        assert {f: wire_early[day][f] for f in FIELDS} == original
        assert {f: wire_late[day][f] for f in FIELDS} == restated
        assert {f for f in FIELDS if original[f] != restated[f]} <= {"h", "c", "v", "tu"}
        assert {"c", "v", "tu"} <= {f for f in FIELDS if original[f] != restated[f]}
    assert late.restated(region, b) == []


def test_weekly_bars_are_built_from_the_restated_daily_bars():
    region = "US"
    a, _, _ = _codes(region)
    sim = _sim(region, D + dt.timedelta(days=3), restate_codes=frozenset({a}))
    with _http(sim) as client:
        week = _batch(client, region, [a], limit=1, ktype=9)[a][-1]
    daily = sim.daily_bars(region, a)
    this_week = daily[daily["trade_date"] >= "2025-06-23"]
    assert week["v"] == this_week["v"].sum()
    assert week["h"] == this_week["h"].max()


# ---------------------------------------------------------------------------------------------------- late bars
@pytest.mark.parametrize("days", [1, 2])
def test_a_late_bar_is_absent_at_d_and_present_after_the_delay_and_the_code_still_answers(days):
    region = "US"
    a, b, _ = _codes(region)
    kw = {"late_bar_codes": frozenset({a}), "late_bar_days": days}
    seen = {}
    for n in (0, 1, 2):
        sim = _sim(region, D + dt.timedelta(days=n), **kw)
        served = _served(sim, region, [a, b])
        assert len(served[a]) == 10  # the code answered: only the recent sessions are missing
        assert D + dt.timedelta(days=n) in served[b]  # other codes have today's bar
        seen[n] = served[a]
        assert sim.withheld(region, a) == sorted(d for d in _dates(sim.daily_bars(region, b))
                                                 if d > D + dt.timedelta(days=n - days))
        assert sim.withheld(region, b) == []
    assert max(seen[0]) < D
    assert [D in seen[n] for n in (0, 1, 2)] == [n >= days for n in (0, 1, 2)]
    assert seen[2][D] == _served(_sim(region, D + dt.timedelta(days=2)), region, [a])[a][D]  # late, not changed


def test_late_bars_restatements_and_late_splits_work_together():
    region = "US"
    sp = Simulator(SimSettings(now=NOW, regions=(region,))).splits(region)[-1]
    kw = {"regions": (region,), "restate_codes": frozenset({sp.code}), "late_bar_codes": frozenset({sp.code}),
          "late_split_codes": frozenset({sp.code}), "split_publish_delay_days": 3}

    def at(days: int) -> Simulator:
        return Simulator(SimSettings(now=_evening(sp.ex_date + dt.timedelta(days=days), region), **kw))

    on_ex, three_later = at(0), at(3)
    assert sp.ex_date in on_ex.withheld(region, sp.code)
    assert sp not in on_ex.splits(region, published=True)
    assert sp in three_later.splits(region, published=True)
    bars = three_later.daily_bars(region, sp.code).set_index("trade_date")
    assert pd.Timestamp(sp.ex_date) in bars.index
    restated = {day for day, _, _ in three_later.restated(region, sp.code)}
    assert sp.ex_date in restated  # ex-date + 3 >= ex-date + 2
    assert (bars["l"] <= bars[["o", "c"]].min(axis=1)).all()
    assert (bars["h"] >= bars[["o", "c"]].max(axis=1)).all()


# ------------------------------------------------------------------------------------------------- defaults, settings
def test_the_features_off_change_nothing(client_for):
    region = "US"
    codes = _codes(region)
    plain = _sim(region, D + dt.timedelta(days=3))
    empty = _sim(region, D + dt.timedelta(days=3), restate_codes=frozenset(), late_bar_codes=frozenset(),
                 restate_after_days=5, late_bar_days=4)
    others = _sim(region, D + dt.timedelta(days=3), restate_codes=frozenset({"ZZZZ"}),
                  late_bar_codes=frozenset({"ZZZZ"}))
    params = {"region": region, "codes": ",".join(codes), "kType": 8, "limit": 1000}
    answers = [client_for(s).get("/stock/klines", params=params).content for s in (plain, empty, others)]
    assert answers[0] == answers[1] == answers[2]
    for c in codes:
        assert plain.daily_bars(region, c).equals(others.daily_bars(region, c))
        assert plain.restated(region, c) == []
        assert plain.withheld(region, c) == []


@pytest.mark.parametrize(
    ("kw", "error"),
    [({"restate_after_days": 0}, ValueError), ({"restate_after_days": True}, TypeError),
     ({"late_bar_days": 0}, ValueError), ({"late_bar_days": 1.5}, TypeError),
     ({"restate_codes": "AAPL"}, TypeError), ({"late_bar_codes": ("",)}, TypeError)],
)
def test_bad_restatement_settings_are_refused(kw, error):
    with pytest.raises(error):
        SimSettings(**kw)


def test_cli_exposes_restatements_and_late_bars():
    settings = settings_from_args(parser().parse_args(["--restate-codes", "AAA,BBB", "--restate-after-days", "3",
                                                       "--late-bar-codes", "CCC", "--late-bar-days", "2"]))
    assert settings.restate_codes == frozenset({"AAA", "BBB"})
    assert settings.restate_after_days == 3
    assert settings.late_bar_codes == frozenset({"CCC"})
    assert settings.late_bar_days == 2
    defaults = settings_from_args(parser().parse_args([]))
    assert (defaults.restate_codes, defaults.late_bar_codes) == (frozenset(), frozenset())
    assert (defaults.restate_after_days, defaults.late_bar_days) == (2, 1)
