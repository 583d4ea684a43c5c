"""What Dagster records per partition after a single-run backfill is that partition's own truth.

A range run over several months and regions is materialized on a real (SQLite-backed) Dagster instance; each
partition's recorded metadata is read back from the instance and compared with the warehouse and with the
`lake_partitions` status table.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

import ticklake
from definitions import build_definitions
from ticklake import markets

pytestmark = pytest.mark.integration

REGIONS = ("US", "HK")
MONTHS = ("2024-04", "2024-05", "2024-06")


@pytest.fixture
def instance(tmp_path):
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        yield instance


@pytest.mark.slow
def test_each_partition_records_its_own_rows_and_sessions(make_server, resources_for, home, instance):
    server = make_server()
    defs = build_definitions(**resources_for(server))
    for region in REGIONS:
        assert defs.resolve_job_def("reference_refresh").execute_in_process(instance=instance,
                                                                            partition_key=region).success
    # the static dimension is ordered US, HK, SH, JP: this range is 3 months x {US, HK}, one run
    result = defs.resolve_job_def("nightly_refresh").execute_in_process(instance=instance, tags={
        "dagster/asset_partition_range_start": "2024-04|US", "dagster/asset_partition_range_end": "2024-06|HK"})
    assert result.success

    with ticklake.connect(home) as con:
        stored = {(r, m): (n, s, d) for r, m, n, s, d in con.execute(
            "SELECT region, strftime(trade_date, '%Y-%m'), count(*), count(DISTINCT symbol), "
            "count(DISTINCT trade_date) FROM klines_daily GROUP BY ALL").fetchall()}
        status = {(r, p): (rows, sessions, complete) for r, p, rows, sessions, complete in con.execute(
            "SELECT region, partition, rows, sessions, complete FROM lake_partitions "
            "WHERE dataset = 'klines_daily'").fetchall()}

    keys = [f"{m}|{r}" for r in REGIONS for m in MONTHS]
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("klines_daily"), asset_partitions=keys), limit=100).records
    recorded = {rec.partition_key: rec.asset_materialization.metadata for rec in records}
    assert set(recorded) == set(keys)
    total = sum(n for n, _, _ in stored.values())
    row_counts = set()
    for key in keys:
        month, region = key.split("|")
        meta = recorded[key]
        assert next(iter(meta)) == "dagster/row_count"  # the partition's own figures come first on its page
        rows, symbols, days = stored[(region, month)]
        sessions = markets.sessions(region, dt.date.fromisoformat(f"{month}-01"),
                                    dt.date.fromisoformat(f"{month}-01") + dt.timedelta(days=30))
        sessions = [d for d in sessions if f"{d:%Y-%m}" == month]
        assert meta["dagster/row_count"].value == rows == status[(region, month)][0]
        assert meta["symbols"].value == symbols
        assert meta["sessions_fetched"].value == len(sessions) == days == status[(region, month)][1]
        assert meta["first_session"].value == sessions[0].isoformat()
        assert meta["last_session"].value == sessions[-1].isoformat()
        assert meta["complete"].value is True
        assert meta["sessions_without_bars"].value == 0
        assert meta["lake_path"].value == f"klines_daily/region={region}/month={month}/golden"
        # what covers the whole run says so by its name, and is the run's total
        assert meta["run_rows"].value == total
        assert meta["run_partitions"].value == len(keys)
        row_counts.add(meta["dagster/row_count"].value)
    assert len(row_counts) > 1  # not one run total stamped on every partition


def test_partitions_of_a_month_still_trading_say_so(make_server, resources_for, home, instance):
    from assets.partitions import month_partitions

    # the newest partition is the current month: its sessions after today have not closed
    current = month_partitions.get_last_partition_key()
    server = make_server(now=None)  # the simulator on the real clock serves bars through today
    defs = build_definitions(**resources_for(server))
    assert defs.resolve_job_def("reference_refresh").execute_in_process(instance=instance,
                                                                        partition_key="US").success
    result = defs.resolve_job_def("nightly_refresh").execute_in_process(
        instance=instance, partition_key=f"{current}|US", raise_on_error=False)
    first = dt.date.fromisoformat(f"{current}-01")
    last_closed = markets.last_completed_session("US", dt.datetime.now(dt.UTC))
    if last_closed is None or last_closed < first:
        assert not result.success  # nothing closed yet this month: refused, nothing marked done
        return
    assert result.success
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    month_sessions = [d for d in markets.sessions("US", first, first + dt.timedelta(days=30))
                      if f"{d:%Y-%m}" == current]
    closed = [d for d in month_sessions if d <= last_closed]
    assert meta["sessions_fetched"].value == len(closed)
    assert meta["sessions_not_closed"].value == len(month_sessions) - len(closed)
    assert meta["complete"].value is (len(closed) == len(month_sessions))
