"""Partitions: calendar month x region.

Why months: Dagster writes a planned and a materialization event per partition, so 20 years of calendar-day
partitions cost minutes of bookkeeping for seconds of work, and weekends read as missing data. A month holds
about 21 sessions, and with batch codes and up to 1,000 bars per code a month costs the same API calls as a
day: the nightly run refreshes the month of the session that just closed. Keys read "2024-06|US".
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from ticklake import settings
from ticklake.dictionary import month_bounds

MONTH, REGION = "month", "region"
# Set by the nightly schedules: the session that just closed. A run carrying it fetches only what is new in its
# month (see ticklake.datasets.klines.nightly_dates); a run without it (a backfill, a correction) fetches whole months.
SESSION_TAG = "ticklake/session"

region_partitions = dg.StaticPartitionsDefinition(list(settings.regions()))

month_partitions = dg.MonthlyPartitionsDefinition(
    start_date=f"{settings.start_date():%Y-%m}",
    fmt="%Y-%m",
    end_offset=1,  # the current month exists, so the nightly run can refresh it as its sessions close
)

month_region_partitions = dg.MultiPartitionsDefinition({MONTH: month_partitions, REGION: region_partitions})


def months_by_region(keys: list[str] | list[dg.MultiPartitionKey]) -> dict[str, list[str]]:
    """Group a run's partition keys by region (single-run backfills hand us many keys at once)."""
    grouped: dict[str, set[str]] = {}
    for key in keys:
        dims = key.keys_by_dimension if isinstance(key, dg.MultiPartitionKey) else _parse(key)
        grouped.setdefault(dims[REGION], set()).add(dims[MONTH])
    return {region: sorted(months) for region, months in sorted(grouped.items())}


def calendar_days(months: list[str]) -> list[dt.date]:
    """Every date of the given months (the library keeps the sessions among them)."""
    days: list[dt.date] = []
    for month in months:
        first, last = month_bounds(month)
        days += [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    return days


def _parse(key: str) -> dict[str, str]:
    return month_region_partitions.get_partition_key_from_str(key).keys_by_dimension


def key(month: str, region: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({MONTH: month, REGION: region})


def key_for_session(day: dt.date, region: str) -> dg.MultiPartitionKey:
    """The partition holding a session (the one the nightly run refreshes)."""
    return key(f"{day:%Y-%m}", region)
