"""`trading_calendar` and `security_master` materialized by real Dagster against the simulator's ground truth."""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
import pandas as pd
import pytest

import ticklake
from assets.listings import listings
from assets.trading_calendar import trading_calendar
from definitions import build_definitions
from ticklake import markets
from ticklake.dictionary.reference_data import SECURITY_MASTER, TRADING_CALENDAR, UNIVERSE_ON
from ticklake.sources.itick.client import ITickClient
from ticklake.storage.frames import fetch_frame

pytestmark = pytest.mark.integration

NOW = dt.datetime(2024, 6, 28, 23, 0, tzinfo=dt.UTC)


def _query(home, sql: str, params: list | None = None) -> pd.DataFrame:
    with ticklake.connect(home) as con:
        return fetch_frame(con.execute(sql, params or []))


def _materialize(asset, resources: dict, region: str, instance=None, now: dt.datetime = NOW
                 ) -> dg.ExecuteInProcessResult:
    """Materialize `asset` acting at `now` (the frozen simulator's clock, so interval boundaries follow it)."""
    return dg.materialize([asset], resources=resources, partition_key=region,
                          instance=instance or dg.DagsterInstance.ephemeral(),
                          run_config={"ops": {asset.op.name: {"config": {"now": now.isoformat()}}}})


def _check(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    [evaluation] = result.get_asset_check_evaluations()
    return evaluation


@pytest.mark.parametrize("region", ["US", "HK", "SH", "JP"])
def test_stored_calendar_equals_the_simulators_sessions(make_server, resources_for, home, region):
    server = make_server()
    result = _materialize(trading_calendar, resources_for(server), region)
    assert result.success
    first = _query(home, "SELECT min(date) AS d FROM trading_calendar WHERE region = ?", [region])["d"].iloc[0]
    assert first == pd.Timestamp("2016-01-01")  # the lake's start (TICKLAKE_START_DATE)
    truth = server.simulator.calendar(region)
    truth = [d.date() for d in truth[truth >= first]]
    stored = _query(home, "SELECT date FROM trading_calendar WHERE region = ? AND is_session AND date <= ? "
                          "ORDER BY date", [region, truth[-1]])
    assert [d.date() for d in pd.to_datetime(stored["date"])] == truth
    assert len(truth) > 2000
    evaluation = _check(result)
    assert evaluation.passed
    assert evaluation.metadata["disagreements"].value == 0
    # one row per calendar day, every day the source published a view of agreeing with it
    days = _query(home, "SELECT count(*) AS n, count(source_is_session) AS seen, min(date) AS lo, max(date) AS hi "
                        "FROM trading_calendar WHERE region = ?", [region]).iloc[0]
    assert days["n"] == (days["hi"] - days["lo"]).days + 1
    assert 0 < days["seen"] < days["n"]  # the source publishes 2014-2025 only: later days are null


def test_a_disagreement_with_the_source_is_a_warning_listing_the_dates(make_server, resources_for, home,
                                                                       monkeypatch):
    """The source's holiday list (real HTTP answer) claims one more holiday and forgets another."""
    original = ITickClient.holidays

    def holidays(self, code=None):
        answer = original(self, code)
        for entry in answer:
            if entry["ey"] == "2024":
                dates = set(json.loads(entry["v"])) - {"2024-07-04"} | {"2024-06-03"}
                entry["v"] = json.dumps(sorted(dates))
        return answer

    monkeypatch.setattr(ITickClient, "holidays", holidays)
    result = _materialize(trading_calendar, resources_for(make_server()), "US")
    assert result.success  # a warning, the calendar is still stored
    evaluation = _check(result)
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.metadata["disagreements"].value == 2
    assert evaluation.metadata["dates"].value.splitlines() == [
        "2024-06-03 calendar: session, source: closed", "2024-07-04 calendar: closed, source: session"]
    stored = _query(home, "SELECT date, is_session, source_is_session FROM trading_calendar WHERE "
                          "date IN (DATE '2024-06-03', DATE '2024-07-04') ORDER BY date")
    assert stored["is_session"].tolist() == [True, False]
    assert stored["source_is_session"].tolist() == [False, True]


def _universe(home, region: str, day: dt.date) -> set[str]:
    return set(_query(home, "SELECT symbol FROM universe_on(?, ?)", [region, day])["symbol"])


def test_universe_on_a_date_before_a_listing_excludes_the_symbol(make_server, resources_for, home):
    server = make_server()
    resources = resources_for(server)
    instance = dg.DagsterInstance.ephemeral()
    assert _materialize(listings, resources, "JP", instance).success
    ipos = server.simulator.ipos("JP", "recent")
    assert ipos
    listed = {s.code for s in server.simulator.universe("JP")}
    for ipo in ipos:
        assert ipo.code not in _universe(home, "JP", ipo.listed - dt.timedelta(days=1))
        assert ipo.code in _universe(home, "JP", ipo.listed)
    assert _universe(home, "JP", NOW.date()) == listed  # nothing delisted is known from a list that keeps them
    stored = _query(home, "SELECT symbol, listing_date FROM security_master WHERE listing_date IS NOT NULL")
    assert dict(zip(stored["symbol"], pd.to_datetime(stored["listing_date"]).dt.date, strict=True)) == {
        i.code: i.listed for i in ipos}

    before = _query(home, "SELECT * FROM security_master ORDER BY symbol, valid_from")
    rerun = _materialize(listings, resources, "JP", instance)  # the same day again: nothing changes
    assert rerun.success
    assert _query(home, "SELECT * FROM security_master ORDER BY symbol, valid_from").equals(before)
    metadata = rerun.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["intervals_opened"].value == 0
    assert metadata["intervals_closed"].value == 0


def test_a_symbol_dropped_from_the_list_is_closed_and_excluded_after(make_server, resources_for, home):
    later = make_server(list_delisted=False)
    [gone] = [s for s in later.simulator.universe("JP") if s.delisted is not None]
    first_now = dt.datetime.combine(gone.delisted - dt.timedelta(days=30), dt.time(12), tzinfo=dt.UTC)
    earlier = make_server(list_delisted=False, now=first_now)
    assert gone.code in {s.code for s in earlier.simulator.universe("JP") if s.delisted is None}

    instance = dg.DagsterInstance.ephemeral()
    assert _materialize(listings, resources_for(earlier), "JP", instance, now=first_now).success
    result = _materialize(listings, resources_for(later), "JP", instance)
    assert result.success
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["delisted_today"].value == gone.code

    seen_gone = pd.Timestamp(NOW).tz_convert("Asia/Tokyo").date()  # the observation's exchange-local date
    history = _query(home, "SELECT valid_from, valid_to, delisting_date FROM security_master WHERE symbol = ? "
                           "ORDER BY valid_from", [gone.code])
    assert pd.to_datetime(history["valid_from"]).dt.date.tolist() == [first_now.date(), seen_gone]
    assert pd.to_datetime(history["valid_to"]).dt.date.tolist()[0] == seen_gone  # its listed interval closed
    assert pd.isna(history["valid_to"].iloc[1])
    assert pd.Timestamp(history["delisting_date"].iloc[1]).date() == seen_gone
    assert gone.code in _universe(home, "JP", seen_gone - dt.timedelta(days=1))  # the vanishing was first seen then
    assert gone.code not in _universe(home, "JP", seen_gone)
    # as known before the second observation, the code was still in the universe of that day (point in time)
    known_then = set(_query(home, "SELECT symbol FROM universe_as_of(?, ?, ?)",
                            ["JP", seen_gone, first_now + dt.timedelta(hours=1)])["symbol"])
    assert gone.code in known_then
    others = _query(home, "SELECT count(*) AS n FROM security_master WHERE symbol <> ?", [gone.code])["n"].iloc[0]
    assert others == len(later.simulator.universe("JP")) - 1  # everyone else: one interval, unchanged


def test_reference_refresh_builds_calendar_and_master(make_server, resources_for, home):
    server = make_server()
    defs = build_definitions(**resources_for(server))
    result = defs.resolve_job_def("reference_refresh").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), partition_key="HK",
        run_config={"ops": {"security_master": {"config": {"now": NOW.isoformat()}}}})
    assert result.success
    done = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()
            for e in [e.materialization]}
    assert done == {"securities", "trading_calendar", "security_master", "corporate_actions"}
    # the universe and the point-in-time master are built from one symbol-list answer
    assert server.simulator.counters.count("/symbol/list") == 1
    assert _query(home, "SELECT count(*) AS n FROM securities WHERE region = 'HK'")["n"].iloc[0] == len(
        server.simulator.universe("HK"))
    assert _check(result).passed
    for example in (TRADING_CALENDAR.example, SECURITY_MASTER.example, UNIVERSE_ON.example):  # documented queries run
        assert example is not None
        _query(home, example)
    assert _query(home, TRADING_CALENDAR.example)["sessions"].iloc[0] == len(
        markets.sessions("HK", dt.date(2024, 1, 1), dt.date(2024, 6, 30)))


def test_a_list_lacking_many_symbols_at_once_is_refused_and_the_master_kept(make_server, resources_for, home):
    """Absence is not data: 8 of 12 symbols missing from one answer reads as a truncated list, not 8 delistings."""
    full, truncated = make_server(), make_server(symbols_per_region=4)  # codes are prefix-stable: the first 4
    instance = dg.DagsterInstance.ephemeral()
    assert _materialize(listings, resources_for(full), "JP", instance).success
    before = _query(home, "SELECT * FROM security_master ORDER BY symbol, valid_from")
    result = dg.materialize([listings], resources=resources_for(truncated), partition_key="JP",
                            instance=instance, raise_on_error=False,
                            run_config={"ops": {"security_master": {"config": {
                                "now": (NOW + dt.timedelta(days=1)).isoformat()}}}})
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    message = failure.step_failure_data.error.cause.message if failure.step_failure_data.error.cause else \
        failure.step_failure_data.error.message
    assert "TICKLAKE_MAX_VANISHED_SHARE" in message
    assert "lacks 8 of the 12 listed symbols" in message
    pd.testing.assert_frame_equal(_query(home, "SELECT * FROM security_master ORDER BY symbol, valid_from"), before)
