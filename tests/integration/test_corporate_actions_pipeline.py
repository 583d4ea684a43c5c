"""corporate_actions and klines_daily_adjusted through real Dagster runs against the simulator's ground truth.

HK with 40 symbols: 9378 splits 1:2 on 2022-10-27 (among others). A late feed (publish delay 30 days for 9378
only) lets one home see the history first without that split (frozen now 2022-11-03), then with it
(2022-12-15): exactly 9378's adjusted history is re-derived, nothing else, raw untouched.
"""

from __future__ import annotations

import datetime as dt
import hashlib

import dagster as dg
import pandas as pd
import pytest

import ticklake
from automation.jobs import run_partition_range
from definitions import build_definitions
from ticklake.storage.frames import fetch_frame

pytestmark = pytest.mark.integration

REGION, LATE_CODE, EX_DATE = "HK", "9378", dt.date(2022, 10, 27)
BEFORE = dt.datetime(2022, 11, 3, 12, 0, tzinfo=dt.UTC)  # ex-date passed, split not yet published
AFTER = dt.datetime(2022, 12, 15, 12, 0, tzinfo=dt.UTC)  # published (30-day delay)
LATE = {"symbols_per_region": 40, "split_publish_delay_days": 30, "late_split_codes": frozenset({LATE_CODE})}


def _query(home, sql: str) -> pd.DataFrame:
    with ticklake.connect(home) as con:
        return fetch_frame(con.execute(sql))


def _digest(home, dataset: str) -> dict[str, str]:
    root = home / "lake" / dataset
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.parquet"))}


def _run_all(resources: dict, instance: dg.DagsterInstance, first_month: str, last_month: str,
             klines: bool = True) -> dict[str, dg.ExecuteInProcessResult]:
    defs = build_definitions(**resources)
    out = {"reference": defs.resolve_job_def("reference_refresh").execute_in_process(instance=instance,
                                                                                     partition_key=REGION)}
    if klines:
        out["klines"] = run_partition_range(defs, REGION, first_month, last_month, instance=instance)
    out["analytics"] = defs.resolve_job_def("analytics_refresh").execute_in_process(instance=instance,
                                                                                    partition_key=REGION)
    return out


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def _metadata(result: dg.ExecuteInProcessResult) -> dict:
    [event] = result.get_asset_materialization_events()
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_corporate_actions_equal_the_simulators_splits(make_server, resources_for, home):
    server = make_server(symbols_per_region=40)
    defs = build_definitions(**resources_for(server))
    assert defs.resolve_job_def("reference_refresh").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), partition_key=REGION).success
    stored = _query(home, "SELECT * FROM corporate_actions ORDER BY ex_date, symbol")
    truth = server.simulator.splits(REGION, published=True)
    assert len(truth) >= 5
    assert list(zip(stored["symbol"], pd.to_datetime(stored["ex_date"]).dt.date, stored["ratio_from"],
                    stored["ratio_to"], strict=True)) == [(s.code, s.ex_date, s.ratio_from, s.ratio_to) for s in truth]
    assert (stored["factor"] == stored["ratio_from"] / stored["ratio_to"]).all()
    assert set(stored["action"]) == {"split"}
    assert set(stored["source"]) == {"itick"}
    assert stored["name"].notna().all()


@pytest.mark.slow
def test_late_split_rederives_exactly_that_symbols_history(make_server, resources_for, home):
    instance = dg.DagsterInstance.ephemeral()
    before = make_server(now=BEFORE, **LATE)
    assert EX_DATE in {s.ex_date for s in before.simulator.splits(REGION) if s.code == LATE_CODE}
    assert EX_DATE not in {s.ex_date for s in before.simulator.splits(REGION, published=True) if s.code == LATE_CODE}
    first = _run_all(resources_for(before), instance, "2022-08", "2022-10")
    assert all(r.success for r in first.values())

    adjusted_1 = _query(home, "SELECT * FROM klines_daily_adjusted ORDER BY symbol, trade_date")
    raw_1 = _query(home, "SELECT * FROM klines_daily ORDER BY symbol, trade_date")
    raw_files = _digest(home, "klines_daily")
    assert len(adjusted_1) == len(raw_1) > 0
    # The unpublished split shows in the raw prices as a split-sized jump without a recorded split: a warning.
    jumps = _checks(first["analytics"])["no_unrecorded_split_sized_jumps"]
    assert not jumps.passed
    assert jumps.severity == dg.AssetCheckSeverity.WARN
    assert f"{LATE_CODE} {EX_DATE}" in jumps.metadata["details"].value
    late = adjusted_1[adjusted_1["symbol"] == LATE_CODE]
    assert (late["close"].to_numpy() == raw_1.loc[raw_1["symbol"] == LATE_CODE, "close"].to_numpy()).all()

    after = make_server(now=AFTER, **LATE)
    second = _run_all(resources_for(after), instance, "2022-08", "2022-10", klines=False)
    assert all(r.success for r in second.values())
    stored_splits = _query(home, f"SELECT * FROM corporate_actions WHERE symbol = '{LATE_CODE}'")
    assert EX_DATE in set(pd.to_datetime(stored_splits["ex_date"]).dt.date)

    adjusted_2 = _query(home, "SELECT * FROM klines_daily_adjusted ORDER BY symbol, trade_date")
    assert _digest(home, "klines_daily") == raw_files  # raw never changes
    pd.testing.assert_frame_equal(_query(home, "SELECT * FROM klines_daily ORDER BY symbol, trade_date"), raw_1)
    others_1 = adjusted_1[adjusted_1["symbol"] != LATE_CODE].reset_index(drop=True)
    others_2 = adjusted_2[adjusted_2["symbol"] != LATE_CODE].reset_index(drop=True)
    pd.testing.assert_frame_equal(others_2, others_1)  # values and lineage (ingested_at, run_id) unchanged
    late_2 = adjusted_2[adjusted_2["symbol"] == LATE_CODE]
    rederived = late_2[pd.to_datetime(late_2["trade_date"]).dt.date < EX_DATE]
    assert len(rederived)
    assert (rederived["adjustment_factor"] == 0.5).all()
    assert set(rederived["run_id"]) == {second["analytics"].run_id}
    kept = late_2[pd.to_datetime(late_2["trade_date"]).dt.date >= EX_DATE]
    assert set(kept["run_id"]) == {first["analytics"].run_id}  # on/after the ex-date nothing changed

    meta = _metadata(second["analytics"])
    assert meta["symbols_rederived"] == 1
    assert meta["symbols_rederived_list"] == LATE_CODE
    assert meta["rows_changed"] == len(rederived)
    checks = _checks(second["analytics"])
    assert checks["no_unrecorded_split_sized_jumps"].passed
    assert checks["recorded_splits_show_in_raw_prices"].passed

    # Continuous across the ex-date, equal to raw on and after it.
    raw = raw_1[raw_1["symbol"] == LATE_CODE].set_index("trade_date")
    adj = late_2.set_index("trade_date")
    ex, prev = pd.Timestamp(EX_DATE), adj.index[adj.index < pd.Timestamp(EX_DATE)].max()
    assert abs(raw.loc[ex, "close"] / raw.loc[prev, "close"] / 0.5 - 1) < 0.25  # the split shows in raw
    assert abs(adj.loc[ex, "close"] / adj.loc[prev, "close"] - 1) < 0.25  # and not in adjusted
    on_after = adj.index >= ex
    for column in ("open", "high", "low", "close", "volume"):
        assert (adj.loc[on_after, column] == raw.loc[on_after, column]).all(), column
    assert (adj.loc[~on_after, "volume"] == raw.loc[~on_after, "volume"] / 0.5).all()

    # A third run with nothing new writes nothing.
    third = build_definitions(**resources_for(after)).resolve_job_def("analytics_refresh").execute_in_process(
        instance=instance, partition_key=REGION)
    assert _metadata(third)["rows_changed"] == 0
    assert _metadata(third)["months_written"] == 0
    pd.testing.assert_frame_equal(_query(home, "SELECT * FROM klines_daily_adjusted ORDER BY symbol, trade_date"),
                                  adjusted_2)
