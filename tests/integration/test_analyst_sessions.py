"""Analysts and the nightly run on the embedded lake: a read session held open for as long as it likes never makes
the writer wait or fail, sees one whole snapshot, and the next transaction sees the latest commit. The SQLite
catalog in WAL mode is what makes this hold (docs/analyst.md, "What a session sees", has the measured alternatives)."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import time

import pytest

from tests.unit.test_lakehouse import US_JAN, _lake
from tests.unit.test_schemas import _bars
from ticklake.dictionary import KLINES_DAILY
from ticklake.storage import connect
from ticklake.storage.frames import to_arrow

pytestmark = pytest.mark.integration


def _table(n: int, close: float):
    """n golden bars of US January, all at `close`."""
    return to_arrow(KLINES_DAILY, _bars(n).assign(close=close, high=max(11.0, close), low=min(9.0, close)))


def _hold_a_session(home, ready, done, seen) -> None:
    """An analyst: one transaction open across the writer's commits, reading twice, then a new one."""
    with connect(home) as con:
        con.execute("BEGIN")
        seen.append(con.execute("SELECT count(*), max(close) FROM klines_daily").fetchone())
        ready.set()
        done.wait(60)
        seen.append(con.execute("SELECT count(*), max(close) FROM klines_daily").fetchone())
        con.execute("COMMIT")
        seen.append(con.execute("SELECT count(*), max(close) FROM klines_daily").fetchone())


def test_an_open_read_session_never_blocks_the_writer_and_keeps_its_snapshot(tmp_path):
    lake = _lake(tmp_path)
    lake.replace_partitions(KLINES_DAILY, _table(3, 1.0), US_JAN)
    ctx = multiprocessing.get_context("spawn")
    manager = ctx.Manager()
    ready, done, seen = ctx.Event(), ctx.Event(), manager.list()
    analyst = ctx.Process(target=_hold_a_session, args=(tmp_path, ready, done, seen))
    analyst.start()
    try:
        assert ready.wait(60)
        started = time.monotonic()
        for i in range(5):  # the nightly run commits five times while the session stays open
            lake.replace_partitions(KLINES_DAILY, _table(4, 2.0 + i), US_JAN)
        took = time.monotonic() - started
    finally:
        done.set()
        analyst.join(60)
    assert analyst.exitcode == 0
    assert list(seen) == [(3, 1.0), (3, 1.0), (4, 6.0)]  # one snapshot inside the transaction, then the latest
    assert took < 30, took  # the writer did not wait out the reader (a rollback-journal catalog fails after ~5 s)


@pytest.mark.slow
def test_the_sql_command_prints_a_query_and_lists_files(tmp_path):
    _lake(tmp_path).replace_partitions(KLINES_DAILY, _table(2, 7.5), US_JAN)
    env = {"TICKLAKE_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-m", "ticklake.sql", "SELECT max(close) AS top FROM klines_daily"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "7.5" in out.stdout
    files = subprocess.run([sys.executable, "-m", "ticklake.sql", "--files", "klines_daily"],
                           capture_output=True, text=True, env=env, timeout=120)
    assert files.returncode == 0, files.stderr
    assert f"{tmp_path}/lake/" in files.stdout
    bad = subprocess.run([sys.executable, "-m", "ticklake.sql", "SELECT * FROM no_such_table"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 1
    assert "no_such_table" in bad.stderr
    nowhere = subprocess.run([sys.executable, "-m", "ticklake.sql", "SELECT 1"], capture_output=True, text=True,
                             env={**env, "TICKLAKE_HOME": str(tmp_path / "empty")}, timeout=120)
    assert nowhere.returncode == 2
    assert "no lake at" in nowhere.stderr
