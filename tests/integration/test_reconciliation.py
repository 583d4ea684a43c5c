"""T+1 reconciliation, walking days forward on a real Dagster instance: the source restates a bar two days after
publishing it and publishes another a day late; the region's reconciliation sensor detects both, records one ledger
row per changed field, requests only the affected partition, and the applied correction keeps the old value
readable as of before it. Evaluating the sensor again requests nothing."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

import ticklake
from assets.partitions import SESSION_TAG, key
from automation.jobs import run_partition_range
from automation.reconciliation import RECONCILIATION_SENSORS
from definitions import build_definitions
from resources.clock import ClockResource

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REGION = "US"
MONDAY, TUESDAY, WEDNESDAY = dt.date(2024, 6, 24), dt.date(2024, 6, 25), dt.date(2024, 6, 26)
[SENSOR] = [s for s in RECONCILIATION_SENSORS if s.name == "reconciliation_us"]


def _evening(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(23, 0), tzinfo=dt.UTC)  # after the US close, same local date


def _clock(day: dt.date) -> dict:
    return {"ops": {"klines_daily": {"config": {"now": _evening(day).isoformat()}}}}


def _night(defs: dg.Definitions, instance: dg.DagsterInstance, day: dt.date) -> None:
    """What the nightly schedule launches for `day`: its month, tagged with the session (only new bars fetched)."""
    result = defs.resolve_job_def("nightly_refresh").execute_in_process(
        instance=instance, partition_key=key(f"{day:%Y-%m}", REGION), tags={SESSION_TAG: day.isoformat()},
        run_config=_clock(day))
    assert result.success


def _evaluate(resources: dict, instance: dg.DagsterInstance, day: dt.date, cursor: str | None):
    """One sensor tick at `day`'s evening: its result and the cursor it leaves (as the daemon stores it)."""
    with dg.build_sensor_context(instance=instance, cursor=cursor, sensor_name=SENSOR.name,
                                 resources={**resources, "clock": ClockResource(now=_evening(day).isoformat())}
                                 ) as context:
        result = SENSOR(context)
        return result, (result.cursor if result.cursor is not None else context.cursor)


def _launch(defs: dg.Definitions, instance: dg.DagsterInstance, request: dg.RunRequest, day: dt.date) -> None:
    """What the daemon does with a run request: a run of the sensor's job, keyed by the request's run key."""
    assert not instance.get_runs(filters=dg.RunsFilter(tags={"dagster/run_key": request.run_key}))  # not launched
    result = defs.resolve_job_def("nightly_refresh").execute_in_process(
        instance=instance, partition_key=request.partition_key, run_config=_clock(day),
        tags={**request.tags, "dagster/run_key": request.run_key})
    assert result.success


def _query(home, sql: str, params: list | None = None) -> list[tuple]:
    with ticklake.connect(home) as con:
        return con.execute(sql, params or []).fetchall()


def test_a_restated_and_a_late_bar_are_detected_recorded_and_applied_once(make_server, resources_for, home,
                                                                            tmp_path):
    probe = make_server(now=_evening(MONDAY))
    restated, late = sorted(s.code for s in probe.simulator.universe(REGION) if s.delisted is None)[:2]
    faults = {"restate_codes": frozenset({restated}), "restate_after_days": 2,
              "late_bar_codes": frozenset({late}), "late_bar_days": 1}
    servers = {day: make_server(now=_evening(day), **faults) for day in (MONDAY, TUESDAY, WEDNESDAY)}
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        # Monday: the history of June as published Monday evening (the late code's Monday bar is not out yet)
        monday = resources_for(servers[MONDAY])
        defs = build_definitions(**monday)
        assert defs.resolve_job_def("reference_refresh").execute_in_process(instance=instance,
                                                                           partition_key=REGION).success
        assert run_partition_range(defs, REGION, "2024-06", "2024-06", instance=instance,
                                   run_config=_clock(MONDAY)).success
        before = _query(home, "SELECT close, ingested_at FROM klines_daily WHERE symbol = ? AND trade_date = ?",
                        [restated, MONDAY])
        assert before
        assert not _query(home, "SELECT 1 FROM klines_daily WHERE symbol = ? AND trade_date = ?", [late, MONDAY])

        # Tuesday: the nightly run stores Tuesday only; the sensor finds the late Monday bar
        tuesday = resources_for(servers[TUESDAY])
        defs = build_definitions(**tuesday)
        _night(defs, instance, TUESDAY)
        result, cursor = _evaluate(tuesday, instance, TUESDAY, None)
        assert result.skip_reason is None, result.skip_reason
        [request] = result.run_requests
        assert request.partition_key == key("2024-06", REGION)  # only the affected partition
        assert _query(home, "SELECT symbol, date, field FROM reconciliation_log") == [(late, MONDAY, "added")]
        _launch(defs, instance, request, TUESDAY)
        assert _query(home, "SELECT count(*) FROM klines_daily WHERE symbol = ? AND trade_date = ?",
                      [late, MONDAY]) == [(1,)]

        # Wednesday: the source restates Monday's bar of the other code
        wednesday = resources_for(servers[WEDNESDAY])
        defs = build_definitions(**wednesday)
        _night(defs, instance, WEDNESDAY)
        result, cursor = _evaluate(wednesday, instance, WEDNESDAY, cursor)
        [request] = result.run_requests
        assert request.partition_key == key("2024-06", REGION)
        truth = {d: (o, r) for d, o, r in servers[WEDNESDAY].simulator.restated(REGION, restated)}
        original, restatement = truth[MONDAY]
        changed = {f: (original[w], restatement[w]) for f, w in
                   (("open", "o"), ("high", "h"), ("low", "l"), ("close", "c"), ("volume", "v"), ("turnover", "tu"))
                   if original[w] != restatement[w]}
        ledger = _query(home, "SELECT field, stored_value, source_value FROM reconciliation_log WHERE symbol = ?",
                        [restated])
        assert sorted(ledger) == sorted((f, pytest.approx(a), pytest.approx(b)) for f, (a, b) in changed.items())
        assert {"close", "volume"} <= set(changed)  # one ledger row per changed field
        _launch(defs, instance, request, WEDNESDAY)

        # the latest view shows the new value; as of Tuesday evening, the old one
        [(latest_close,)] = _query(home, "SELECT close FROM klines_daily WHERE symbol = ? AND trade_date = ?",
                                   [restated, MONDAY])
        assert latest_close == pytest.approx(restatement["c"])
        [(old_close,)] = _query(home, "SELECT close FROM klines_daily_as_of(?) WHERE symbol = ? AND trade_date = ?",
                                [_evening(TUESDAY), restated, MONDAY])
        assert old_close == pytest.approx(before[0][0])
        assert old_close != latest_close

        # evaluating again requests nothing, and the same differences would make the same run key
        again, _ = _evaluate(wednesday, instance, WEDNESDAY, cursor)
        assert not again.run_requests
        assert "already re-checked" in again.skip_reason.skip_message
        fresh, _ = _evaluate(wednesday, instance, WEDNESDAY, None)  # a lost cursor: re-checks, nothing left to fix
        assert not fresh.run_requests
        # each correction recorded once: the restated fields, and the late code's Monday and Tuesday bars (each
        # published a day late, each found the next evening)
        assert sorted(_query(home, "SELECT date, field FROM reconciliation_log WHERE symbol = ?", [late])) == [
            (MONDAY, "added"), (TUESDAY, "added")]
        assert len(_query(home, "SELECT * FROM reconciliation_log")) == 2 + len(changed)
        assert _query(home, "SELECT count(*) FROM klines_daily WHERE symbol = ? AND trade_date IN (?, ?)",
                      [late, MONDAY, TUESDAY]) == [(2,)]


def test_a_restatement_applied_by_a_backfill_is_recorded_in_the_ledger_too(make_server, resources_for, home):
    """No change is silent: a re-run over stored months that meets a restatement records it, without any sensor."""
    probe = make_server(now=_evening(MONDAY))
    restated = sorted(s.code for s in probe.simulator.universe(REGION) if s.delisted is None)[0]
    faults = {"restate_codes": frozenset({restated}), "restate_after_days": 2}
    instance = dg.DagsterInstance.ephemeral()
    monday = build_definitions(**resources_for(make_server(now=_evening(MONDAY), **faults)))
    assert monday.resolve_job_def("reference_refresh").execute_in_process(instance=instance,
                                                                         partition_key=REGION).success
    assert run_partition_range(monday, REGION, "2024-06", "2024-06", instance=instance,
                               run_config=_clock(MONDAY)).success
    assert _query(home, "SELECT count(*) FROM reconciliation_log") == [(0,)]  # a first load changes nothing

    wednesday = build_definitions(**resources_for(make_server(now=_evening(WEDNESDAY), **faults)))
    rerun = run_partition_range(wednesday, REGION, "2024-06", "2024-06", instance=instance,
                                run_config=_clock(WEDNESDAY))
    assert rerun.success
    ledger = _query(home, "SELECT dataset, symbol, date, field, run_id FROM reconciliation_log ORDER BY field")
    assert {row[3] for row in ledger} >= {"close", "volume"}
    assert {(d, s, day, r) for d, s, day, _f, r in ledger} == {("klines_daily", restated, MONDAY, rerun.run_id)}
    assert _query(home, "SELECT count(*) FROM klines_daily_history WHERE symbol = ?", [restated]) == [(1,)]
