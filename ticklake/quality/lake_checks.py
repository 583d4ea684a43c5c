"""What the lake-wide checks measure, as plain figures: the SQL lives in `sql/*.sql` beside this module (DuckDB's
own style: one statement per file, named for what it answers), and the Dagster layer only turns figures into
check results."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cache
from importlib import resources

import duckdb

from ticklake import markets


@cache
def sql(name: str) -> str:
    """The statement in `ticklake/quality/sql/<name>.sql`."""
    return (resources.files("ticklake.quality") / "sql" / f"{name}.sql").read_text()


def duplicate_keys(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, dt.date, int]]:
    """(region, symbol, trade_date, rows) of keys stored more than once (at most 20)."""
    return con.execute(sql("duplicate_keys")).fetchall()


def off_calendar(con: duckdb.DuckDBPyConnection) -> list[tuple[str, dt.date, int]]:
    """(region, date, rows) of stored bars dated on a day that is no session of the region's exchange calendar."""
    dates: dict[str, dict[dt.date, int]] = {}
    for region, day, n in con.execute(sql("bars_per_date")).fetchall():
        dates.setdefault(region, {})[day] = n
    off = []
    for region, counts in sorted(dates.items()):
        sessions = set(markets.sessions(region, min(counts), max(counts)))
        off += [(region, day, n) for day, n in sorted(counts.items()) if day not in sessions]
    return off


@dataclass(frozen=True)
class PartitionRows:
    partitions: int  # klines partitions lake_partitions records
    mismatches: list[str]  # "region/month/source: n rows stored, m recorded in lake_partitions"


def partition_rows(con: duckdb.DuckDBPyConnection) -> PartitionRows:
    rows = con.execute(sql("partition_rows")).fetchall()
    mismatches = [f"{r}/{m}/{s}: {stored} rows stored, {recorded} recorded in lake_partitions"
                  for r, m, s, stored, recorded, _ in rows if stored != recorded]
    return PartitionRows(sum(1 for *_, listed in rows if listed), mismatches)


def outside_listing_window(con: duckdb.DuckDBPyConnection) -> tuple[list[tuple], int]:
    """(region, symbol, bars, first, last, listing_date, delisting_date) per symbol with bars outside its listing
    window, and how many symbols the security master knows."""
    outside = con.execute(sql("outside_listing_window")).fetchall()
    (listed,) = con.execute("SELECT count(DISTINCT (region, symbol)) FROM security_master").fetchone()
    return outside, int(listed)


def symbols_by_region(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Codes the klines universe (`securities`) holds per region."""
    return dict(con.execute("SELECT region, count(*) FROM securities GROUP BY 1").fetchall())


def bars_on(con: duckdb.DuckDBPyConnection, region: str, day: dt.date) -> int:
    """Bars the region has stored for one session, every source's."""
    (n,) = con.execute("SELECT count(*) FROM klines_daily WHERE region = ? AND trade_date = ?",
                       [region, day]).fetchone()
    return int(n)


def open_exceptions(con: duckdb.DuckDBPyConnection, regions: list[str]) -> list[tuple]:
    """(region, symbol, trade_date, field, source_values, rel_diff, chosen_source) of every open golden exception
    in `regions`, newest session first."""
    return con.execute(sql("open_exceptions"), {"regions": regions}).fetchall()
