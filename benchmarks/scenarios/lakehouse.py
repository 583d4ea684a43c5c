"""The lakehouse (issue 16): analyst queries on the DuckLake lake versus a native DuckDB table, a fresh process's
attach and first query, nightly commit cost versus lake size, bytes on disk, and reads after many nightly appends.

The lake is written the way the pipeline writes it: synthetic daily bars (a random walk per symbol, so they compress
like prices do), committed month by month through `storage.writes.commit` (rows and `lake_partitions` status in one
transaction, the DDL, partitioning and insert order of `ticklake.storage.ddl`), then compacted by the weekly
maintenance itself (`ticklake.storage.maintenance.maintain`, every table, no retention).
Sessions are weekdays (the ingest path's calendar is not what is measured here).
Each figure is measured in this worker's fresh interpreter; the attach + first query figure in a fresh process of
its own (`python -c "import ticklake; ticklake.connect(home)..."`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from benchmarks.stats import percentile

ROOT = Path(__file__).resolve().parents[2]
SOURCE = "itick"
REGIONS4 = ("US", "HK", "SH", "JP")  # the nightly's regions (ticklake.markets.DEFAULT_REGIONS)

# The two shapes the layout must serve, and the first query an analyst types in a fresh process.
SYMBOL_SQL = ("SELECT trade_date, open, high, low, close, volume, turnover FROM klines_daily "
              "WHERE region = ? AND symbol = ? ORDER BY trade_date")
# A symbol's latest `n` sessions: the same number of rows on any night, so that what the nights change is the files
# the rows are in, not how many rows there are (a year of history doubles in 250 nights).
RECENT_SQL = ("SELECT trade_date, open, high, low, close, volume, turnover FROM klines_daily "
              "WHERE region = ? AND symbol = ? AND trade_date >= ? ORDER BY trade_date")
CROSS_SQL = ("SELECT symbol, open, high, low, close, volume, turnover FROM klines_daily "
             "WHERE region = ? AND trade_date = ? ORDER BY symbol")


# -- synthetic bars -----------------------------------------------------------------------------------------
def weekdays(last: dt.date, count: int) -> list[dt.date]:
    """`count` weekdays ending at `last` (oldest first)."""
    out: list[dt.date] = []
    day = last
    while len(out) < count:
        if day.weekday() < 5:
            out.append(day)
        day -= dt.timedelta(days=1)
    return out[::-1]


def symbol_codes(count: int) -> list[str]:
    return [f"S{i:05d}" for i in range(count)]


def by_month(dates: Sequence[dt.date]) -> list[list[dt.date]]:
    months: dict[tuple[int, int], list[dt.date]] = {}
    for d in dates:
        months.setdefault((d.year, d.month), []).append(d)
    return list(months.values())


class Bars:
    """Deterministic bars for (region, symbols): month `m` of the history is generated on demand, so a 50M-row lake
    never sits in memory. Prices walk per symbol (continuous across months); volumes are log-normal."""

    def __init__(self, region: str, symbols: Sequence[str], seed: int):
        self.region = region
        self.symbols = list(symbols)
        self.seed = seed
        rng = np.random.default_rng([seed, sum(map(ord, region))])
        self.level = rng.uniform(5, 300, len(self.symbols))  # the walk's state, carried from month to month

    def month(self, dates: Sequence[dt.date], *, ingested_at: dt.datetime, run_id: str) -> pa.Table:
        """The month's rows in the pipeline's order (symbol, trade_date), in the dictionary's Arrow schema."""
        from ticklake.dictionary import KLINES_DAILY

        n_sym, n_day = len(self.symbols), len(dates)
        rng = np.random.default_rng([self.seed, sum(map(ord, self.region)), dates[0].toordinal()])
        steps = rng.normal(0, 0.02, (n_sym, n_day))
        close = (self.level[:, None] * np.exp(np.cumsum(steps, axis=1))).round(2)
        self.level = close[:, -1]
        open_ = (close * np.exp(rng.normal(0, 0.005, close.shape))).round(2)
        high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.01, close.shape)))
        low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.01, close.shape)))
        volume = np.floor(rng.lognormal(12, 1.0, close.shape))
        days = np.array(dates, dtype="datetime64[D]")
        n = n_sym * n_day
        bar_ts = (np.tile(days, n_sym).astype("datetime64[ms]") + np.timedelta64(20, "h")).astype("int64")
        stamp = int(ingested_at.timestamp() * 1000)
        columns = {
            "region": pa.array([self.region] * n, pa.string()),
            "symbol": pa.array(np.repeat(np.array(self.symbols, dtype=object), n_day), pa.string()),
            "trade_date": pa.array(np.tile(days, n_sym), pa.date32()),
            "open": open_.ravel(), "high": high.round(2).ravel(), "low": low.round(2).ravel(),
            "close": close.ravel(), "volume": volume.ravel(), "turnover": (volume * close).round(2).ravel(),
            "bar_ts": pa.array(bar_ts, pa.timestamp("ms", tz="UTC")),
            "rule": pa.array(["single_source"] * n, pa.string()),
            "sources": pa.array([SOURCE] * n, pa.string()),
            "max_rel_diff": pa.nulls(n, pa.float64()),
            "source": pa.array([SOURCE] * n, pa.string()),
            "ingested_at": pa.array(np.full(n, stamp), pa.timestamp("ms", tz="UTC")),
            "run_id": pa.array([run_id] * n, pa.string()),
        }
        return pa.table(columns).cast(KLINES_DAILY.arrow_schema)


# -- lake building --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def env(values: dict[str, str | None]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    for k, v in values.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def commit_month(lake, table: pa.Table, region: str, month: str, *, run_id: str, now: dt.datetime,
                 previous: pa.Table | None = None) -> None:
    """One (region, month) partition through the pipeline's write path: rows and status in one transaction."""
    from ticklake.dictionary import KLINES_DAILY
    from ticklake.storage.writes import Part, commit

    commit(lake, KLINES_DAILY, [Part({"region": region, "month": month, "source": SOURCE}, table,
                                     previous=previous)], run_id=run_id, now=now)


def build(lake, regions: Sequence[str], symbols: int, dates: Sequence[dt.date], *, seed: int,
          log: Callable[[str], None] = lambda _m: None) -> dict[str, Any]:
    """Backfill `regions` x `symbols` x `dates` month by month (one commit per region and month, as a backfill's
    pages commit their months); returns rows, commits and seconds."""
    now = dt.datetime.now(dt.UTC)
    walks = {r: Bars(r, symbol_codes(symbols), seed) for r in regions}
    rows = commits = 0
    started = time.perf_counter()
    months = by_month(dates)
    for i, month_dates in enumerate(months):
        for region in regions:
            table = walks[region].month(month_dates, ingested_at=now, run_id="bench-backfill")
            commit_month(lake, table, region, f"{month_dates[0]:%Y-%m}", run_id="bench-backfill", now=now)
            rows += table.num_rows
            commits += 1
        if i % 24 == 23:
            log(f"  built {rows:,} rows ({i + 1}/{len(months)} months)")
    return {"rows": rows, "commits": commits, "build_s": round(time.perf_counter() - started, 3),
            "walks": walks}


def file_stats(con, table: str = "klines_daily") -> dict[str, Any]:
    """klines_daily's current data files and delete files, and their bytes."""
    files, data_bytes, deletes, delete_bytes = con.execute(
        "SELECT count(*), coalesce(sum(data_file_size_bytes), 0), count(delete_file), "
        f"coalesce(sum(delete_file_size_bytes), 0) FROM ducklake_list_files('lake', '{table}')").fetchone()
    return {"files": files, "data_bytes": int(data_bytes), "delete_files": deletes, "delete_bytes": int(delete_bytes)}


def compact_full(lake) -> dict[str, Any]:
    """The weekly maintenance, as the `lake_maintenance` job runs it (`ticklake.storage.maintenance.maintain`, every
    table: rewrite files with many deleted rows, merge adjacent small files in SORTED BY order, expire snapshots,
    delete the files only expired snapshots referenced). The benchmark keeps no time travel past the maintenance
    (retention 0: `now` a day ahead with a retention of one day), so the bytes figure is the data's own."""
    from ticklake.storage.maintenance import maintain

    with lake.connection() as con:
        before = file_stats(con)
    t0 = time.perf_counter()
    report = maintain(lake, retention_days=1, now=dt.datetime.now(dt.UTC) + dt.timedelta(days=1, seconds=1))
    elapsed = time.perf_counter() - t0
    with lake.connection() as con:
        after = file_stats(con)
    return {"files_before": before["files"], "files_after": after["files"],
            "maintenance_s": round(elapsed, 3), "delete_files_after": after["delete_files"],
            "lake_files_after": report.after.live_files}


# -- measuring ------------------------------------------------------------------------------------------------
def timed(con, sql: str, args_cycle: Sequence[list], *, warmup: int, iterations: int) -> dict[str, Any]:
    """p50/p99 of `sql` fetched as a DataFrame, its parameters cycling through `args_cycle` (several symbols or
    dates, so no single file region stays hot by construction)."""
    rows = len(con.execute(sql, args_cycle[0]).df())
    for i in range(warmup):
        con.execute(sql, args_cycle[i % len(args_cycle)]).df()
    samples = []
    for i in range(iterations):
        t0 = time.perf_counter()
        con.execute(sql, args_cycle[i % len(args_cycle)]).df()
        samples.append((time.perf_counter() - t0) * 1000)
    return {"rows": rows, "p50_ms": round(percentile(samples, 50), 2), "p99_ms": round(percentile(samples, 99), 2),
            "max_ms": round(max(samples), 2), "iterations": iterations}


def probe_args(con, region: str, picks: int = 16) -> tuple[list[list], list[list]]:
    """Symbols spread over the universe, and sessions spread over the history (every one a full cross-section)."""
    symbols = [r[0] for r in con.execute("SELECT DISTINCT symbol FROM klines_daily WHERE region = ? ORDER BY 1",
                                         [region]).fetchall()]
    dates = [r[0] for r in con.execute("SELECT DISTINCT trade_date FROM klines_daily WHERE region = ? ORDER BY 1",
                                       [region]).fetchall()]
    pick = lambda xs: [xs[(i * len(xs)) // picks + len(xs) // (2 * picks)] for i in range(min(picks, len(xs)))]  # noqa: E731
    return [[region, s] for s in pick(symbols)], [[region, d] for d in pick(dates)]


FRESH_SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
import duckdb, ticklake, ticklake.storage  # the import chain, timed apart (duckdb is the analyst's own import)
t1 = time.perf_counter()
import pandas  # what `.df()` needs: the analyst's own import, timed apart (DuckDB's client would import it anyway
t2 = time.perf_counter()  # for the first query with parameters)
con = ticklake.connect(sys.argv[1])
t3 = time.perf_counter()
rows = len(con.execute(sys.argv[2], json.loads(sys.argv[3])).df())
t4 = time.perf_counter()
print(json.dumps({"import_ms": (t1 - t0) * 1000, "pandas_import_ms": (t2 - t1) * 1000,
                  "attach_ms": (t3 - t2) * 1000, "first_query_ms": (t4 - t3) * 1000,
                  "attach_and_first_query_ms": (t4 - t2) * 1000, "rows": rows}))
"""


def fresh_process(home: Path, sql: str, args: list, runs: int) -> dict[str, Any]:
    """A fresh interpreter's `ticklake.connect()` + first query (what an analyst does many times a day), `runs`
    times: medians and maxima of the in-process clocks. `attach_ms` is `ticklake.connect()` (extension loads from
    the wheels, catalog attach); `import_ms` (duckdb and ticklake.storage with what it imports) and
    `pandas_import_ms` (the analyst's `.df()` needs pandas) are apart, and `process_wall_ms` is the whole process,
    interpreter start included."""
    records, walls = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", FRESH_SCRIPT, str(home), sql, json.dumps(args, default=str)],
                              capture_output=True, text=True, cwd=ROOT, timeout=300,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        walls.append((time.perf_counter() - t0) * 1000)
        if done.returncode:
            raise RuntimeError(f"fresh-process query failed:\n{done.stderr[-3000:]}")
        records.append(json.loads(done.stdout.strip().splitlines()[-1]))
    out: dict[str, Any] = {"runs": runs, "rows": records[0]["rows"]}
    for key in ("import_ms", "pandas_import_ms", "attach_ms", "first_query_ms", "attach_and_first_query_ms"):
        values = sorted(r[key] for r in records)
        out[key] = round(values[len(values) // 2], 1)
    out["attach_and_first_query_max_ms"] = round(max(r["attach_and_first_query_ms"] for r in records), 1)
    out["process_wall_ms"] = round(sorted(walls)[len(walls) // 2], 1)
    return out


def directory_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# -- backends -------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def backend(kind: str, home: Path) -> Iterator[dict[str, Any]]:
    """The lake's catalog and data path: `local` (the embedded default: SQLite-WAL catalog and files under the
    home) or `s3-postgres` (moto's S3 server on loopback and a fresh PostgreSQL database, as in production)."""
    if kind == "local":
        with env({"TICKLAKE_CATALOG": None, "TICKLAKE_STORAGE_URL": None}):
            yield {"backend": kind, "catalog": "sqlite (WAL) under TICKLAKE_HOME", "data": "TICKLAKE_HOME/lake/"}
        return
    if kind != "s3-postgres":
        raise ValueError(f"unknown backend {kind!r}")
    import logging
    import socket
    import uuid

    import boto3
    import psycopg2
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    admin_url = os.environ.get("TICKLAKE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"ticklake_bench_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(admin_url)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        endpoint = f"http://127.0.0.1:{port}"
        aws = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "bench-not-a-secret",
               "AWS_SECRET_ACCESS_KEY": "bench-not-a-secret-either", "AWS_REGION": "us-east-1"}
        with env(aws):
            boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="ticklake")
        dsn = psycopg2.extensions.parse_dsn(admin_url)
        conninfo = f"host={dsn.get('host', '127.0.0.1')} port={dsn.get('port', 5432)} dbname={name} " \
                   f"user={dsn.get('user', 'postgres')}"
        with env({**aws, "TICKLAKE_CATALOG": f"postgres:{conninfo}", "TICKLAKE_STORAGE_URL": "s3://ticklake/bench"}):
            yield {"backend": kind, "catalog": "postgres (fresh database)", "data": "s3 (moto server, loopback)",
                   "postgres_database": name}
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
        server.stop()


# -- worker kinds ----------------------------------------------------------------------------------------------
def run_queries(params: dict[str, Any]) -> dict[str, Any]:
    """Analyst queries on a backfilled, compacted lake (and, locally, on the same rows in a native DuckDB table),
    a fresh process's attach + first query, and (locally) bytes on disk against one zstd Parquet copy."""
    import ticklake
    from benchmarks.worker import peak_rss_mb
    from ticklake.storage import extensions, open_lakehouse

    symbols, sessions = params["symbols"], params["sessions"]
    warmup, iterations = params.get("warmup", 20), params["iterations"]
    region = "US"
    dates = weekdays(dt.date.today() - dt.timedelta(days=1), sessions)
    with tempfile.TemporaryDirectory(prefix="ticklake-bench-lake-") as tmp, \
            backend(params.get("backend", "local"), Path(tmp)) as where:
        home = Path(tmp)
        lake = open_lakehouse(home)
        built = build(lake, [region], symbols, dates, seed=params["seed"])
        built.pop("walks")
        maintenance = compact_full(lake)
        with lake.connection() as con:
            files = file_stats(con)
            # one more commit (a day restated) so that the compacted state is a past snapshot to travel to
            before = con.execute("SELECT id FROM current_snapshot()").fetchone()[0]
            con.execute("UPDATE klines_daily SET close = close * 1.0 WHERE trade_date = "
                        "(SELECT max(trade_date) FROM klines_daily)")
        lake.close()
        built_rss = peak_rss_mb()
        out: dict[str, Any] = {**where, "region": region, "symbols": symbols, "sessions": sessions,
                               "first_session": dates[0].isoformat(), "last_session": dates[-1].isoformat(),
                               **built, "maintenance": maintenance, "files": files, "rss_after_build_mb": built_rss}
        con = ticklake.connect(home)
        sym_args, day_args = probe_args(con, region)
        out["lake"] = {"symbol_history": timed(con, SYMBOL_SQL, sym_args, warmup=warmup, iterations=iterations),
                       "cross_section": timed(con, CROSS_SQL, day_args, warmup=warmup, iterations=iterations),
                       # the same symbol query on the snapshot before the last commit (DuckLake time travel)
                       "symbol_history_time_travel": timed(
                           con, SYMBOL_SQL.replace("FROM klines_daily", f"FROM klines_daily AT (VERSION => {before})"),
                           sym_args, warmup=warmup, iterations=iterations)}
        out["fresh_process"] = fresh_process(home, SYMBOL_SQL, sym_args[len(sym_args) // 2],
                                             params.get("fresh_runs", 5))
        if where["backend"] == "local":
            native_path = home / "native.duckdb"
            con.execute(f"ATTACH '{native_path}' AS native")
            t0 = time.perf_counter()
            con.execute("CREATE TABLE native.klines_daily AS SELECT * FROM lake.klines_daily "
                        "ORDER BY region, symbol, trade_date")
            out["native_build_s"] = round(time.perf_counter() - t0, 3)
            con.execute("DETACH native")
            reference = home / "one-copy.parquet"
            con.execute(f"COPY (SELECT * FROM lake.klines_daily ORDER BY region, symbol, trade_date) TO "
                        f"'{reference}' (FORMAT parquet, COMPRESSION zstd)")
            con.close()
            native = extensions.connect(str(native_path), read_only=True)
            out["native"] = {"symbol_history": timed(native, SYMBOL_SQL, sym_args, warmup=warmup,
                                                     iterations=iterations),
                             "cross_section": timed(native, CROSS_SQL, day_args, warmup=warmup,
                                                    iterations=iterations)}
            native.close()
            catalog = sum(p.stat().st_size for p in home.glob("catalog.sqlite*"))
            data = directory_bytes(home / "lake")
            one_copy = reference.stat().st_size
            out["bytes"] = {"lake_data": data, "catalog": catalog, "lake_total": data + catalog,
                            "one_zstd_parquet_copy": one_copy, "native_duckdb": native_path.stat().st_size,
                            "ratio": round((data + catalog) / one_copy, 3)}
        else:
            con.close()
    return out


def nightly_once(lake, walks: dict[str, Bars], day: dt.date, *, now: dt.datetime) -> dict[str, float]:
    """One nightly through the write path: per region, the current month's stored rows (read as the ingest's
    merge reads them), plus the new session's bars, committed as the month partition (rows, superseded versions,
    status in one transaction). Seconds per region."""
    from ticklake.dictionary import KLINES_DAILY
    from ticklake.dictionary.frames import sort_table

    month = f"{day:%Y-%m}"
    spent = {}
    for region, walk in walks.items():
        new = walk.month([day], ingested_at=now, run_id=f"bench-night-{day}")
        t0 = time.perf_counter()
        previous = lake.read_table(KLINES_DAILY, region=region, month=month, source=SOURCE)
        table = new if previous is None else sort_table(pa.concat_tables([previous, new]), KLINES_DAILY)
        commit_month(lake, table, region, month, run_id=f"bench-night-{day}", now=now, previous=previous)
        spent[region] = time.perf_counter() - t0
    return spent


def next_weekdays(after: dt.date, count: int) -> list[dt.date]:
    out, day = [], after
    while len(out) < count:
        day += dt.timedelta(days=1)
        if day.weekday() < 5:
            out.append(day)
    return out


def run_nightly(params: dict[str, Any]) -> dict[str, Any]:
    """One nightly (4 regions, one session each) on lakes of several sizes (the same regions and symbols, longer
    histories), each backfilled month by month and compacted first: the nightly's cost must not grow with the
    lake. `nights` nightlies per size; the median of their total is the figure."""
    from ticklake.storage import open_lakehouse

    regions = tuple(params.get("regions") or REGIONS4)
    per_size = []
    # an untimed small lake first: the first lake a worker process committed to paid up to ~1.5x per night whatever
    # its size (measured: 1M rows first 1.42 s, then 4.4M 0.88 s, then 1M again 0.90 s), so the figure depended on
    # the order of the sizes
    for symbols, sessions in [(50, 40), *params["sizes"]]:
        warmup = (symbols, sessions) == (50, 40)
        nights = next_weekdays(dt.date.today() - dt.timedelta(days=40), params.get("nights", 3))
        history = weekdays(nights[0] - dt.timedelta(days=1), sessions)
        with tempfile.TemporaryDirectory(prefix="ticklake-bench-nightly-") as tmp, \
                backend(params.get("backend", "local"), Path(tmp)):
            lake = open_lakehouse(Path(tmp))
            built = build(lake, regions, symbols, history, seed=params["seed"])
            walks = built.pop("walks")
            maintenance = compact_full(lake)
            now = dt.datetime.now(dt.UTC)
            totals, by_region = [], []
            for day in nights:
                # each nightly is a run of its own (a new process in production): a fresh handle on the lake, not
                # the one that built it (whose DuckDB instance carries the backfill's hundreds of commits)
                lake.close()
                lake = open_lakehouse(Path(tmp))
                lake.snapshot_id()  # attached before the clock starts: the commit is what is measured
                spent = nightly_once(lake, walks, day, now=now)
                totals.append(sum(spent.values()))
                by_region.append({r: round(s, 3) for r, s in spent.items()})
            with lake.connection() as con:
                files = file_stats(con)
            lake.close()
        if warmup:
            continue
        per_size.append({"regions": ",".join(regions), "symbols_per_region": symbols, "sessions": sessions,
                         "lake_rows": built["rows"], "build_s": built["build_s"], "maintenance": maintenance,
                         "nightly_s": round(sorted(totals)[len(totals) // 2], 3), "nightly_runs_s":
                         [round(t, 3) for t in totals], "per_region_s": by_region, "files_after": files["files"]})
    smallest, largest = per_size[0], per_size[-1]
    return {"sizes": per_size, "largest_vs_smallest": round(largest["nightly_s"] / smallest["nightly_s"], 3)}


def run_nights(params: dict[str, Any]) -> dict[str, Any]:
    """`nights` simulated nights of one-session appends (the current month replaced each night, as the pipeline
    does) on a backfilled, compacted lake, with the maintenance every `maintenance_every` nights (weekly: 5
    sessions). A symbol's history after night 1 and after the last night (measured before that week's
    maintenance, the worst point of the cycle)."""
    import ticklake
    from ticklake.storage import open_lakehouse

    symbols, sessions, n_nights = params["symbols"], params["sessions"], params["nights"]
    every = params.get("maintenance_every", 5)
    warmup, iterations = params.get("warmup", 10), params["iterations"]
    region = "US"
    nights = next_weekdays(dt.date.today() - dt.timedelta(days=int(n_nights * 7 / 5) + 10), n_nights)
    history = weekdays(nights[0] - dt.timedelta(days=1), sessions)
    with tempfile.TemporaryDirectory(prefix="ticklake-bench-nights-") as tmp, \
            backend(params.get("backend", "local"), Path(tmp)):
        home = Path(tmp)
        lake = open_lakehouse(home)
        built = build(lake, [region], symbols, history, seed=params["seed"])
        walks = built.pop("walks")
        compact_full(lake)
        now = dt.datetime.now(dt.UTC)

        def measure(label: str) -> dict[str, Any]:
            with ticklake.connect(home) as con:
                sym_args, day_args = probe_args(con, region)
                since = con.execute("SELECT min(trade_date) FROM (SELECT DISTINCT trade_date FROM klines_daily "
                                    "ORDER BY 1 DESC LIMIT ?)", [sessions]).fetchone()[0]
                out = {"symbol_history": timed(con, SYMBOL_SQL, sym_args, warmup=warmup, iterations=iterations),
                       "symbol_recent": timed(con, RECENT_SQL, [[*a, since] for a in sym_args], warmup=warmup,
                                              iterations=iterations),
                       "cross_section": timed(con, CROSS_SQL, day_args[-4:], warmup=warmup, iterations=iterations)}
            with lake.connection() as con:
                out["files"] = file_stats(con)
            out["after"] = label
            return out

        commits, maintenances = [], []
        first = None
        for i, day in enumerate(nights, start=1):
            commits.append(sum(nightly_once(lake, walks, day, now=now).values()))
            if i == 1:
                first = measure("night 1")
            if i % every == 0 and i != n_nights:
                maintenances.append(compact_full(lake)["maintenance_s"])
        last = measure(f"night {n_nights} ({(n_nights - 1) % every + 1} nights after the last maintenance)")
        lake.close()
    return {"region": region, "symbols": symbols, "history_sessions": sessions, "nights": n_nights,
            "maintenance_every": every, "lake_rows": built["rows"] + symbols * n_nights,
            "first_night": first, "last_night": last,
            "symbol_p99_last_vs_first": round(last["symbol_history"]["p99_ms"] / first["symbol_history"]["p99_ms"], 3),
            # like for like: the latest `sessions` sessions, the same rows' count after night 1 and after the last
            "recent_p99_last_vs_first": round(last["symbol_recent"]["p99_ms"] / first["symbol_recent"]["p99_ms"], 3),
            "symbol_p50_last_vs_first": round(last["symbol_history"]["p50_ms"] / first["symbol_history"]["p50_ms"], 3),
            "commit_s_first": round(commits[0], 3), "commit_s_last": round(commits[-1], 3),
            "commit_s_median": round(sorted(commits)[len(commits) // 2], 3),
            "maintenance_s_median": round(sorted(maintenances)[len(maintenances) // 2], 3) if maintenances else None}
