"""fundamentals_daily, fx_daily and valuation_daily against the simulator's ground truth, through Dagster."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pandas as pd
import pytest

import ticklake
from definitions import build_definitions
from tests.conftest import FROZEN_NOW
from ticklake import markets
from ticklake.datasets.fundamentals import local_date
from ticklake.storage.frames import fetch_frame

REGION = "SH"  # 12 listed symbols, none delisted, a non-USD currency (CNY via USDCNY)


def _warehouse(home, sql: str, params: list | None = None) -> pd.DataFrame:
    with ticklake.connect(home) as con:
        return fetch_frame(con.execute(sql, params or []))


def _clock(now: dt.datetime, *assets: str) -> dict:
    return {"ops": {name: {"config": {"now": now.isoformat()}} for name in assets}}


def _materialization(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    [event] = result.asset_materializations_for_node(asset)
    return {k: v.value for k, v in event.metadata.items()}


def _refresh(defs: dg.Definitions, instance: dg.DagsterInstance, now: dt.datetime) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def("fundamentals_refresh").execute_in_process(
        instance=instance, partition_key=REGION,
        run_config=_clock(now, "fundamentals_daily", "fx_daily", "valuation_daily"))


def test_snapshot_fx_and_valuation_match_the_simulator(make_server, resources_for, home):
    server = make_server()
    resources = resources_for(server)
    defs = build_definitions(**resources)
    instance = dg.DagsterInstance.ephemeral()
    defs.resolve_job_def("reference_refresh").execute_in_process(instance=instance, partition_key=REGION)
    defs.resolve_job_def("nightly_refresh").execute_in_process(instance=instance, partition_key="2024-06|SH")
    result = _refresh(defs, instance, FROZEN_NOW)
    assert result.success

    as_of = local_date(REGION, FROZEN_NOW)
    stored = _warehouse(home, "SELECT * FROM fundamentals_daily ORDER BY symbol")
    specs = {s.code: s for s in server.simulator.universe(REGION)}
    assert sorted(stored["symbol"]) == sorted(specs)
    for row in stored.itertuples():
        truth = server.simulator.fundamentals(REGION, row.symbol, as_of)
        assert row.as_of.date() == as_of
        assert row.market_cap == pytest.approx(truth["market_cap"], rel=1e-12)
        assert row.shares_outstanding == truth["shares_outstanding"]
        assert row.pe == pytest.approx(truth["pe"], rel=1e-12)
        assert row.currency == truth["currency"] == specs[row.symbol].currency
        assert (row.name, row.exchange) == (specs[row.symbol].name, specs[row.symbol].exchange)
    meta = _materialization(result, "fundamentals_daily")
    assert (meta["refreshed"], meta["skipped"], meta["never_fetched"], meta["api_rate_limited"]) == (12, 0, 0, 0)
    [check] = result.get_asset_check_evaluations()
    assert check.check_name == "market_cap_matches_close_x_shares"
    assert check.passed
    assert check.metadata["checked"].value == 12

    # fx_daily: USD per CNY is 1 / the USDCNY close, on every FX day of the window
    fx = _warehouse(home, "SELECT * FROM fx_daily ORDER BY trade_date")
    bars = server.simulator.daily_bars("GB", "USDCNY", "forex").set_index("trade_date")
    assert set(fx["currency"]) == {"CNY"}
    assert set(fx["pair"]) == {"USDCNY"}
    assert len(fx) >= 5
    assert fx["trade_date"].max().date() == dt.date(2024, 6, 28)
    for row in fx.itertuples():
        assert row.usd_per_unit == pytest.approx(1 / bars.loc[row.trade_date, "c"], rel=1e-12)

    # valuation_daily recomputed by hand for a sample: as_of is a Saturday, so the Friday close is used
    valuation = _warehouse(home, "SELECT * FROM valuation_daily ORDER BY symbol")
    assert len(valuation) == 12
    rate = 1 / bars.loc[pd.Timestamp("2024-06-28"), "c"]
    for row in valuation.head(3).itertuples():
        truth = server.simulator.fundamentals(REGION, row.symbol, as_of)
        assert row.fx_date.date() == dt.date(2024, 6, 28)
        assert row.market_cap_usd == pytest.approx(truth["market_cap"] * rate, rel=1e-12)
        assert row.pe == pytest.approx(truth["pe"])
        assert pd.isna(row.pe_percentile)
        assert row.pe_history == 1


@pytest.mark.slow
def test_budget_refreshes_stalest_first_over_three_nights(make_server, resources_for, home, monkeypatch):
    monkeypatch.setenv("TICKLAKE_FUNDAMENTALS_BUDGET", "5")
    nows = [FROZEN_NOW + dt.timedelta(days=i) for i in range(3)]
    servers = [make_server(now=now) for now in nows]
    instance = dg.DagsterInstance.ephemeral()
    build_definitions(**resources_for(servers[0])).resolve_job_def("reference_refresh").execute_in_process(
        instance=instance, partition_key=REGION)
    codes = sorted(s.code for s in servers[0].simulator.universe(REGION))
    assert len(codes) == 12
    runs = []
    for server, now in zip(servers, nows, strict=True):
        defs = build_definitions(**resources_for(server))
        result = defs.resolve_job_def("fundamentals_refresh").execute_in_process(
            instance=instance, partition_key=REGION, run_config=_clock(now, "fundamentals_daily", "fx_daily",
                                                                       "valuation_daily"))
        assert result.success
        runs.append(_materialization(result, "fundamentals_daily"))
        counters = server.simulator.counters
        assert counters.rate_limited == 0
        assert counters.by_path["/stock/info"] == 5

    refreshed = [m["refreshed_codes"].split(", ") for m in runs]
    assert [m["refreshed"] for m in runs] == [5, 5, 5]
    assert [m["skipped"] for m in runs] == [7, 7, 7]  # 12 due each night (a day-old snapshot is due too)
    assert refreshed[0] == codes[:5]
    assert refreshed[1] == codes[5:10]
    assert refreshed[2] == codes[10:] + codes[:3]  # the 2 never fetched, then the 3 oldest (ties by code)
    assert all(m["api_calls"] == 5 and m["api_rate_limited"] == 0 for m in runs)
    assert [m["never_fetched"] for m in runs] == [7, 2, 0]
    assert runs[2]["oldest_as_of"] == f"{local_date(REGION, nows[0])}"
    assert runs[2]["staleness_days"] == 2

    stored = _warehouse(home, "SELECT symbol, as_of FROM fundamentals_daily")
    assert len(stored) == 15
    assert stored["symbol"].nunique() == 12
    for row in stored.itertuples():  # every snapshot is the simulator's truth as of the fetch
        night = (row.as_of.date() - local_date(REGION, nows[0])).days
        truth = servers[night].simulator.fundamentals(REGION, row.symbol,
                                                      markets.last_completed_session(REGION, nows[night]))
        got = _warehouse(home, "SELECT market_cap FROM fundamentals_daily WHERE symbol = ? AND as_of = ?",
                         [row.symbol, row.as_of])
        assert got["market_cap"].iloc[0] == pytest.approx(truth["market_cap"])


def test_valuation_rederives_only_the_months_whose_inputs_changed(make_server, resources_for, home):
    """A night adds snapshots to one month: only that month is derived again; with no new input, nothing is."""
    july = dt.datetime(2024, 7, 2, 23, 0, tzinfo=dt.UTC)
    june, later = make_server(), make_server(now=july)
    instance = dg.DagsterInstance.ephemeral()
    build_definitions(**resources_for(june)).resolve_job_def("reference_refresh").execute_in_process(
        instance=instance, partition_key=REGION)
    assert _refresh(build_definitions(**resources_for(june)), instance, FROZEN_NOW).success
    june_rows = _warehouse(home, "SELECT * FROM valuation_daily ORDER BY symbol, as_of")

    defs = build_definitions(**resources_for(later))
    valuation = [a for a in defs.assets
                 if isinstance(a, dg.AssetsDefinition) and dg.AssetKey("valuation_daily") in a.keys]
    again = dg.materialize(valuation,
                           resources=resources_for(later), partition_key=REGION, instance=instance,
                           run_config=_clock(july, "valuation_daily"))
    meta = _materialization(again, "valuation_daily")
    assert (meta["rows_derived"], meta["derived_since"], meta["months_written"]) == (0, "nothing (inputs unchanged)", 0)

    result = _refresh(defs, instance, july)  # a July snapshot of every symbol (and FX through July)
    assert result.success
    meta = _materialization(result, "valuation_daily")
    assert meta["derived_since"] >= "2024-06-01"  # FX refetched over its overlap may reach back into June
    assert meta["dagster/row_count"] == 24
    after = _warehouse(home, "SELECT * FROM valuation_daily WHERE as_of < DATE '2024-06-01' OR as_of IS NULL")
    assert after.empty
    kept = _warehouse(home, "SELECT * FROM valuation_daily WHERE as_of < DATE '2024-07-01' ORDER BY symbol, as_of")
    pd.testing.assert_frame_equal(kept.drop(columns=["run_id", "ingested_at"]),
                                  june_rows.drop(columns=["run_id", "ingested_at"]))


def test_the_security_master_learns_sector_industry_and_currency_from_the_snapshots(make_server, resources_for,
                                                                                    home):
    server = make_server()
    defs = build_definitions(**resources_for(server))
    instance = dg.DagsterInstance.ephemeral()
    clock = _clock(FROZEN_NOW, "security_master")
    assert defs.resolve_job_def("reference_refresh").execute_in_process(
        instance=instance, partition_key=REGION, run_config=clock).success
    assert _warehouse(home, "SELECT count(*) AS n FROM security_master WHERE sector IS NOT NULL")["n"][0] == 0
    assert _refresh(defs, instance, FROZEN_NOW).success
    next_day = FROZEN_NOW + dt.timedelta(days=1)
    assert defs.resolve_job_def("reference_refresh").execute_in_process(
        instance=instance, partition_key=REGION, run_config=_clock(next_day, "security_master")).success

    current = _warehouse(home, "SELECT symbol, sector, industry, currency FROM security_master "
                               "WHERE valid_to IS NULL ORDER BY symbol").set_index("symbol")
    truth = {s.code: s for s in server.simulator.universe(REGION)}
    assert set(current.index) == set(truth)
    for code, row in current.iterrows():
        assert (row.sector, row.industry, row.currency) == (truth[code].sector, truth[code].industry,
                                                            truth[code].currency)
    versions = _warehouse(home, "SELECT symbol, count(*) AS n FROM security_master GROUP BY 1")
    assert set(versions["n"]) == {2}  # learning the descriptors opened a new interval; the first one is kept
