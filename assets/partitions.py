"""Partitions: trading date x region. Dates are calendar days (the UI's ranges and schedules work on them);
a date that is not a session for a region materializes as zero rows with `is_session: false`."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from ticklake import settings

DATE, REGION = "date", "region"

region_partitions = dg.StaticPartitionsDefinition(list(settings.regions()))

date_partitions = dg.DailyPartitionsDefinition(
    start_date=settings.start_date().isoformat(),
    end_offset=1,  # today's date exists, so an Asian market's midnight run can target the session just closed
)

date_region_partitions = dg.MultiPartitionsDefinition({DATE: date_partitions, REGION: region_partitions})


def dates_by_region(keys: list[str] | list[dg.MultiPartitionKey]) -> dict[str, list[dt.date]]:
    """Group a run's partition keys by region (single-run backfills hand us many keys at once)."""
    grouped: dict[str, set[dt.date]] = {}
    for key in keys:
        dims = key.keys_by_dimension if isinstance(key, dg.MultiPartitionKey) else _parse(key)
        grouped.setdefault(dims[REGION], set()).add(dt.date.fromisoformat(dims[DATE]))
    return {region: sorted(days) for region, days in sorted(grouped.items())}


def _parse(key: str) -> dict[str, str]:
    return date_region_partitions.get_partition_key_from_str(key).keys_by_dimension


def key(day: dt.date, region: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({DATE: day.isoformat(), REGION: region})
