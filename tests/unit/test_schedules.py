"""Per-region midnight schedules target the session that just closed, on that exchange's own calendar."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from automation.schedules import SCHEDULES
from definitions import defs

BY_NAME = {s.name: s for s in SCHEDULES}
REPOSITORY = defs.get_repository_def()


def _evaluate(name: str, local_midnight: str, zone: str):
    when = dt.datetime.fromisoformat(local_midnight).replace(tzinfo=ZoneInfo(zone))
    schedule = BY_NAME[name]
    with dg.build_schedule_context(scheduled_execution_time=when, repository_def=REPOSITORY) as context:
        result = schedule.evaluate_tick(context)
        return list(result.run_requests or []), result.skip_message


def test_every_region_has_a_nightly_and_a_reference_schedule_in_its_own_zone():
    kinds = ("nightly", "securities", "fundamentals")
    regions = ("us", "hk", "sh", "jp")
    assert set(BY_NAME) == {f"{kind}_{r}" for kind in kinds for r in regions} | {"warehouse_checks_daily",
                                                                                  "klines_freshness_hourly",
                                                                                  "lake_maintenance_weekly"}
    assert BY_NAME["nightly_us"].execution_timezone == "America/New_York"
    assert BY_NAME["nightly_jp"].execution_timezone == "Asia/Tokyo"
    assert all(s.cron_schedule == "0 0 * * *" for name, s in BY_NAME.items() if name.startswith("nightly"))
    assert all(s.default_status == dg.DefaultScheduleStatus.STOPPED for s in SCHEDULES)


@pytest.mark.parametrize(
    ("name", "midnight", "zone", "partition", "session"),
    [
        ("nightly_us", "2024-06-25 00:00", "America/New_York", "2024-06|US", "2024-06-24"),  # Monday's session
        ("nightly_hk", "2024-06-29 00:00", "Asia/Hong_Kong", "2024-06|HK", "2024-06-28"),  # Friday's, not Monday's
        ("nightly_jp", "2024-06-26 00:00", "Asia/Tokyo", "2024-06|JP", "2024-06-25"),
        ("nightly_us", "2024-07-02 00:00", "America/New_York", "2024-07|US", "2024-07-01"),  # a new month
    ],
)
def test_midnight_refreshes_the_month_of_the_session_that_just_closed(name, midnight, zone, partition, session):
    requests, skip = _evaluate(name, midnight, zone)
    assert [r.partition_key for r in requests] == [partition], skip
    # one run per session: the month's partition key alone would deduplicate every later night of the month
    assert requests[0].run_key == f"nightly:{partition[-2:]}:{session}"


@pytest.mark.parametrize(
    ("name", "midnight", "zone", "reason"),
    [
        ("nightly_us", "2024-06-30 00:00", "America/New_York", "2024-06-29 is not a XNYS session"),  # Saturday
        ("nightly_us", "2024-06-20 00:00", "America/New_York", "2024-06-19 is not a XNYS session"),  # Juneteenth
        ("nightly_sh", "2024-10-02 00:00", "Asia/Shanghai", "2024-10-01 is not a XSHG session"),  # National Day
    ],
)
def test_non_sessions_are_skipped_with_the_reason(name, midnight, zone, reason):
    requests, skip = _evaluate(name, midnight, zone)
    assert requests == []
    assert skip == reason


def test_reference_schedule_refreshes_its_region():
    requests, _ = _evaluate("securities_hk", "2024-06-24 23:00", "Asia/Hong_Kong")
    assert [(r.partition_key, r.run_key) for r in requests] == [("HK", "securities:HK:2024-06-24")]


def test_fundamentals_run_in_their_own_job_two_hours_after_klines():
    requests, _ = _evaluate("fundamentals_hk", "2024-06-29 02:00", "Asia/Hong_Kong")
    assert [r.partition_key for r in requests] == ["HK"]
    assert BY_NAME["fundamentals_hk"].job_name == "fundamentals_refresh"
    assert BY_NAME["fundamentals_hk"].cron_schedule == "0 2 * * *"
    nightly = {k.to_user_string() for k in defs.resolve_job_def("nightly_refresh").asset_layer.executable_asset_keys}
    assert not nightly & {"fundamentals_daily", "fx_daily", "valuation_daily"}  # klines never wait on them
