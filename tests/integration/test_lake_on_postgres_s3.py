"""The production lake for real: a DuckLake catalog in PostgreSQL, data on S3 (moto's server). Machines see each
other's commits, a commit killed midway leaves nothing half-visible, and the store or the catalog failing gives a
clear error that names the setting, never a secret, with the last snapshot intact."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import signal
import time

import pandas as pd
import pyarrow as pa
import pytest

from tests.unit.test_schemas import _bars
from ticklake.dictionary import KLINES_DAILY
from ticklake.storage import Catalog, CatalogError, Lakehouse, LakeStorageError, connect
from ticklake.storage.frames import to_arrow
from ticklake.storage.writes import Part, commit

pytestmark = [pytest.mark.integration, pytest.mark.slow]
MONTHS = [f"2024-{m:02d}" for m in range(1, 13)]
NOW = dt.datetime(2025, 1, 31, tzinfo=dt.UTC)


def _machine(tmp_path, name: str, postgres_url: str, storage_url: str, **kwargs) -> Lakehouse:
    """One worker's view: a home of its own, the shared catalog and data path."""
    home = tmp_path / name
    return Lakehouse(Catalog.from_settings(home, f"postgres:{postgres_url}", storage_url), home / "state", **kwargs)


def _month(region: str, month: str, close: float, n: int = 40) -> pa.Table:
    """n bars of one month: symbols S0.. on the month's first weekdays."""
    days = pd.bdate_range(f"{month}-01", periods=10)
    frame = _bars(n).assign(region=region, close=close, symbol=[f"S{i // 10}" for i in range(n)],
                            trade_date=[days[i % 10] for i in range(n)])
    frame["trade_date"] = frame["trade_date"].astype("datetime64[ms]")
    return to_arrow(KLINES_DAILY, frame)


def _commit_month(lake: Lakehouse, region: str, month: str, close: float) -> None:
    part = Part({"region": region, "month": month, "source": "itick"}, _month(region, month, close))
    commit(lake, KLINES_DAILY, [part], run_id=f"run-{close}", now=NOW)


def test_two_machines_share_one_lake_and_an_analyst_reads_it(tmp_path, s3, postgres_url):
    a = _machine(tmp_path, "a", postgres_url, s3.url("lake1"))
    b = _machine(tmp_path, "b", postgres_url, s3.url("lake1"))
    _commit_month(a, "US", "2024-01", 1.0)
    _commit_month(b, "HK", "2024-01", 2.0)
    with a.connection() as con:
        assert con.execute("SELECT region, count(*) FROM klines_daily GROUP BY 1 ORDER BY 1").fetchall() == \
            [("HK", 40), ("US", 40)]
        files = [f for (f,) in con.execute("SELECT data_file FROM ducklake_list_files('lake', 'klines_daily')")
                 .fetchall()]
    assert files
    assert all(f.startswith("s3://ticklake/lake1/lake/") for f in files)
    with connect(tmp_path / "analyst", catalog=f"postgres:{postgres_url}", storage_url=s3.url("lake1")) as con:
        assert con.execute("SELECT sum(rows) FROM lake_partitions WHERE dataset = 'klines_daily'").fetchone()[0] == 80


def _keep_committing(tmp_path, postgres_url: str, storage_url: str, env: dict) -> None:
    os.environ.update(env)
    lake = _machine(tmp_path, "victim", postgres_url, storage_url)
    close = 10.0
    while True:  # until killed: every commit replaces all twelve months at once
        close += 1
        parts = [Part({"region": "US", "month": m, "source": "itick"}, _month("US", m, close, 400)) for m in MONTHS]
        commit(lake, KLINES_DAILY, parts, run_id=f"run-{close}", now=NOW)


def test_a_writer_killed_mid_commit_leaves_no_partial_snapshot_and_a_rerun_converges(tmp_path, s3, postgres_url):
    ctx = multiprocessing.get_context("spawn")
    victim = ctx.Process(target=_keep_committing, args=(tmp_path, postgres_url, s3.url("kill"), s3.env))
    victim.start()
    reader = _machine(tmp_path, "reader", postgres_url, s3.url("kill"))
    deadline = time.monotonic() + 120
    seen: set[tuple] = set()
    try:
        while len(seen) < 3 and time.monotonic() < deadline:  # let it commit a few times, reading as it goes
            try:
                with reader.connection() as con:
                    con.execute("BEGIN")
                    # one snapshot: every month holds the same commit's rows, and its status rows agree
                    closes = con.execute("SELECT count(DISTINCT close), count(*) FROM klines_daily").fetchone()
                    recorded = con.execute("SELECT coalesce(sum(rows), 0) FROM lake_partitions").fetchone()[0]
                    con.execute("COMMIT")
            except CatalogError:
                time.sleep(0.2)  # the schema is still being created by the victim
                continue
            if closes[1]:
                assert closes[0] == 1, closes
                assert recorded == closes[1] == 12 * 40 * 10
                seen.add(closes)
            time.sleep(0.05)
        os.kill(victim.pid, signal.SIGKILL)  # somewhere inside a commit: it commits back to back
    finally:
        victim.join(30)
    assert len(seen) >= 1
    with reader.connection() as con:
        assert con.execute("SELECT count(DISTINCT close), count(*) FROM klines_daily").fetchone() == (1, 12 * 40 * 10)
    survivor = _machine(tmp_path, "survivor", postgres_url, s3.url("kill"), lock_timeout_s=30)
    for month in MONTHS:  # the re-run: its lock was released with the dead connection, and it converges
        _commit_month(survivor, "US", month, 99.0)
    with survivor.connection() as con:
        assert con.execute("SELECT DISTINCT close FROM klines_daily").fetchall() == [(99.0,)]
        assert con.execute("SELECT count(*) FROM klines_daily").fetchone()[0] == 12 * 40


def test_the_object_store_down_fails_clearly_and_the_last_snapshot_stays(tmp_path, s3, postgres_url):
    lake = _machine(tmp_path, "a", postgres_url, s3.url("outage"))
    _commit_month(lake, "US", "2024-01", 1.0)
    before = lake.snapshot_id()
    s3.stop()
    try:
        with pytest.raises(LakeStorageError) as failure:
            _commit_month(lake, "US", "2024-02", 2.0)
    finally:
        s3.restart()
    message = str(failure.value)
    assert "s3://ticklake/outage/lake/" in message
    assert "TICKLAKE_STORAGE_URL" in message
    assert s3.env["AWS_SECRET_ACCESS_KEY"] not in message
    assert lake.snapshot_id() == before
    with lake.connection() as con:
        assert con.execute("SELECT count(*) FROM klines_daily").fetchone()[0] == 40
    _commit_month(lake, "US", "2024-02", 2.0)  # back up: the re-run completes
    with lake.connection() as con:
        assert con.execute("SELECT count(*) FROM klines_daily").fetchone()[0] == 80


def test_a_catalog_that_refuses_is_named_without_its_password(tmp_path, s3, postgres_url):
    host = postgres_url.split("@", 1)[1].rsplit("/", 1)[0]  # a database that does not exist, with a password
    refused = f"postgresql://postgres:hunter22@{host}/no_such_database_here"
    lake = _machine(tmp_path, "a", refused, s3.url("refused"))
    with pytest.raises(CatalogError) as failure:
        lake.snapshot_id()
    assert "TICKLAKE_CATALOG=postgres:" in str(failure.value)
    assert "hunter22" not in str(failure.value)
