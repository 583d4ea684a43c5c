"""The nightly schedules around DST changes in two zones (New York, London) and on holidays: the daemon's ticks
stay at local midnight, and each tick maps to the session that just closed or is skipped with the reason.

US is a default region; GB is supported but not a default one, so its cases run in a subprocess that loads the code
location with TICKLAKE_REGIONS=US,GB, as such a deployment would (its schedule, partitions and repository).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import subprocess
import sys
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

# the iterator the schedule daemon itself uses to compute ticks (private, no public equivalent in dagster 1.13)
from dagster._utils.schedules import schedule_execution_time_iterator

from definitions import defs

ROOT = Path(__file__).resolve().parents[2]
REPOSITORY = defs.get_repository_def()
SUBPROCESS = pytest.mark.slow  # the GB cases load the code location again in a child process (once per worker)


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def _ticks(repository: dg.RepositoryDefinition, region: str, start_utc: str, n: int) -> list[dt.datetime]:
    schedule = repository.get_schedule_def(f"nightly_{region.lower()}")
    ticks = schedule_execution_time_iterator(_utc(start_utc).timestamp(), schedule.cron_schedule,
                                             schedule.execution_timezone)
    return [next(ticks) for _ in range(n)]


def _evaluate(repository: dg.RepositoryDefinition, region: str, when: dt.datetime) -> list[str]:
    """Run keys and partitions requested, or "skip: <reason>"."""
    with dg.build_schedule_context(scheduled_execution_time=when, repository_def=repository) as context:
        result = repository.get_schedule_def(f"nightly_{region.lower()}").evaluate_tick(context)
    return [f"{r.run_key} {r.partition_key}" for r in result.run_requests or []] or [f"skip: {result.skip_message}"]


def _case(repository: dg.RepositoryDefinition, kind: str, region: str, arg: str, n: int) -> object:
    if kind == "ticks":
        zone = ZoneInfo(repository.get_schedule_def(f"nightly_{region.lower()}").execution_timezone)
        ticks = [t.astimezone(dt.UTC) for t in _ticks(repository, region, arg, n)]
        return {"local": sorted({t.astimezone(zone).strftime("%H:%M") for t in ticks}),
                "utc_hours": [t.hour for t in ticks],
                "gaps": [(b - a).total_seconds() / 3600 for a, b in itertools.pairwise(ticks)]}
    if kind == "sessions":
        return [key for tick in _ticks(repository, region, arg, n) for key in _evaluate(repository, region, tick)]
    return _evaluate(repository, region, _utc(arg))


CHILD = """
import json, sys
from definitions import defs
from tests.unit.test_schedules_dst import _case
repository = defs.get_repository_def()
print(json.dumps([_case(repository, *case) for case in json.loads(sys.argv[1])]))
"""


@cache
def _in_gb_deployment(cases: tuple) -> list:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TICKLAKE_")}, "TICKLAKE_REGIONS": "US,GB"}
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cases)], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120, check=True)
    return json.loads(out.stdout.splitlines()[-1])


def case(kind: str, region: str, arg: str, n: int = 0) -> object:
    """Evaluate here for a default region; for GB, in the US,GB deployment (all GB cases in one subprocess)."""
    if region != "GB":
        return _case(REPOSITORY, kind, region, arg, n)
    results = _in_gb_deployment(GB_CASES)
    return results[GB_CASES.index((kind, region, arg, n))]


@pytest.mark.parametrize(
    ("region", "start", "utc_hours", "gaps"),
    [
        # US springs forward on Sunday 2024-03-10: midnight moves from 05:00 to 04:00 UTC, one 23-hour night
        ("US", "2024-03-08 12:00", [5, 5, 4, 4], [24, 23, 24]),
        # and falls back on Sunday 2024-11-03: 04:00 to 05:00 UTC, one 25-hour night
        ("US", "2024-11-01 12:00", [4, 4, 5, 5], [24, 25, 24]),
        # London on 2024-03-31 (00:00 UTC to 23:00 UTC the day before) and 2024-10-27
        pytest.param("GB", "2024-03-29 12:00", [0, 0, 23, 23], [24, 23, 24], marks=SUBPROCESS),
        pytest.param("GB", "2024-10-25 12:00", [23, 23, 0, 0], [24, 25, 24], marks=SUBPROCESS),
    ],
)
def test_daemon_ticks_stay_at_local_midnight_across_dst(region, start, utc_hours, gaps):
    assert case("ticks", region, start, 4) == {"local": ["00:00"], "utc_hours": utc_hours, "gaps": gaps}


@pytest.mark.parametrize(
    ("region", "start", "expected"),
    [
        # Friday before the switch (EST), the Sunday of the switch, Monday after it (EDT)
        ("US", "2024-03-08 12:00", ["nightly:US:2024-03-08 2024-03|US", "skip: 2024-03-09 is not a XNYS session",
                                    "skip: 2024-03-10 is not a XNYS session", "nightly:US:2024-03-11 2024-03|US"]),
        ("US", "2024-11-01 12:00", ["nightly:US:2024-11-01 2024-11|US", "skip: 2024-11-02 is not a XNYS session",
                                    "skip: 2024-11-03 is not a XNYS session", "nightly:US:2024-11-04 2024-11|US"]),
        # London's spring switch falls inside Easter: Good Friday and Easter Monday are holidays
        pytest.param("GB", "2024-03-29 12:00", [
            "skip: 2024-03-29 is not a XLON session", "skip: 2024-03-30 is not a XLON session",
            "skip: 2024-03-31 is not a XLON session", "skip: 2024-04-01 is not a XLON session",
            "nightly:GB:2024-04-02 2024-04|GB"], marks=SUBPROCESS),
        pytest.param("GB", "2024-10-25 12:00", [
            "nightly:GB:2024-10-25 2024-10|GB", "skip: 2024-10-26 is not a XLON session",
            "skip: 2024-10-27 is not a XLON session", "nightly:GB:2024-10-28 2024-10|GB"], marks=SUBPROCESS),
        # Thanksgiving, after the November switch
        ("US", "2024-11-27 12:00", ["nightly:US:2024-11-27 2024-11|US", "skip: 2024-11-28 is not a XNYS session",
                                    "nightly:US:2024-11-29 2024-11|US"]),
    ],
)
def test_each_tick_around_dst_and_holidays_maps_to_its_session(region, start, expected):
    assert case("sessions", region, start, len(expected)) == expected


@pytest.mark.parametrize(
    ("region", "instant", "run_key"),
    [
        # the same midnights given as UTC instants: the schedule converts to the exchange's zone itself
        ("US", "2024-03-09 05:00", "nightly:US:2024-03-08 2024-03|US"),  # 00:00 EST
        ("US", "2024-03-12 04:00", "nightly:US:2024-03-11 2024-03|US"),  # 00:00 EDT (a fixed -05:00 would say 03-10)
        ("US", "2024-11-05 05:00", "nightly:US:2024-11-04 2024-11|US"),  # 00:00 EST after falling back
        # 00:00 BST on 04-03 (in UTC still 04-02), then 00:00 GMT
        pytest.param("GB", "2024-04-02 23:00", "nightly:GB:2024-04-02 2024-04|GB", marks=SUBPROCESS),
        pytest.param("GB", "2024-10-29 00:00", "nightly:GB:2024-10-28 2024-10|GB", marks=SUBPROCESS),
    ],
)
def test_a_utc_instant_maps_to_the_exchanges_own_midnight(region, instant, run_key):
    assert case("instant", region, instant) == [run_key]


GB_CASES = (
    ("ticks", "GB", "2024-03-29 12:00", 4), ("ticks", "GB", "2024-10-25 12:00", 4),
    ("sessions", "GB", "2024-03-29 12:00", 5), ("sessions", "GB", "2024-10-25 12:00", 4),
    ("instant", "GB", "2024-04-02 23:00", 0), ("instant", "GB", "2024-10-29 00:00", 0),
)
