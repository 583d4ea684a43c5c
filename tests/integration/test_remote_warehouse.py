"""The production profile's warehouse: the pipeline's DuckDB file in object storage (moto's S3 server), written
under a PostgreSQL advisory lock by "machines" that share nothing local (each has its own home directory)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

import duckdb
import pytest

from ticklake.mutex import PostgresMutex
from ticklake.object_store import ObjectStoreError, location
from ticklake.remote_warehouse import RemoteDatabase, main
from ticklake.warehouse import Warehouse, WarehouseBusyError

pytestmark = pytest.mark.integration


def machine(home: Path, storage_url: str, pg_url: str, *, timeout_s: float = 30.0) -> Warehouse:
    home.mkdir(parents=True, exist_ok=True)
    return Warehouse(home / "state" / "pipeline.duckdb", home / "warehouse.duckdb", lock_timeout_s=timeout_s,
                     remote=RemoteDatabase(location(storage_url)),
                     mutex=PostgresMutex(pg_url, f"ticklake-warehouse:{storage_url}"))


def add(warehouse: Warehouse, value: int) -> None:
    with warehouse.writer() as con:
        con.execute("CREATE TABLE IF NOT EXISTS t (v INTEGER)")
        con.execute("INSERT INTO t VALUES (?)", [value])


def values(warehouse: Warehouse) -> list[int]:
    with warehouse.reader() as con:
        if not con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 't'").fetchone()[0]:
            return []
        return [r[0] for r in con.execute("SELECT v FROM t ORDER BY v").fetchall()]


def test_two_machines_see_each_others_writes(tmp_path, s3, postgres_url):
    url = s3.url("prod")
    a, b = (machine(tmp_path / n, url, postgres_url) for n in ("a", "b"))
    add(a, 1)
    add(b, 2)  # b downloads a's state first, so nothing a wrote is lost
    add(a, 3)
    assert values(a) == values(b) == [1, 2, 3]


def test_a_failed_write_leaves_the_stored_state(tmp_path, s3, postgres_url):
    url = s3.url("prod")
    a, b = (machine(tmp_path / n, url, postgres_url) for n in ("a", "b"))
    add(a, 1)
    def fail_midway() -> None:
        with a.writer() as con:
            con.execute("INSERT INTO t VALUES (99)")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail_midway()
    assert values(b) == [1]
    assert values(a) == [1]  # a's own copy is distrusted and downloaded again


def test_publish_uploads_the_snapshot_and_analysts_pull_it(tmp_path, s3, postgres_url, monkeypatch, capsys):
    url = s3.url("prod")
    a = machine(tmp_path / "a", url, postgres_url)
    add(a, 7)
    a.publish()
    monkeypatch.setenv("TICKLAKE_STORAGE_URL", url)
    monkeypatch.setenv("TICKLAKE_HOME", str(tmp_path / "analyst"))
    assert main(["pull"]) == 0
    pulled = tmp_path / "analyst" / "warehouse.duckdb"
    with duckdb.connect(str(pulled), read_only=True) as con:
        assert con.execute("SELECT v FROM t").fetchall() == [(7,)]
    assert "read_only=True" in capsys.readouterr().out


def _hold_the_lock(home: str, url: str, pg_url: str, env: dict, ready) -> None:
    os.environ.update(env)
    warehouse = machine(Path(home), url, pg_url)
    with warehouse.writer() as con:
        con.execute("INSERT INTO t VALUES (666)")  # never uploaded: the process is killed inside the write
        ready.set()
        time.sleep(60)


def test_a_writer_killed_mid_write_releases_the_lock_and_loses_nothing(tmp_path, s3, postgres_url):
    url = s3.url("prod")
    a = machine(tmp_path / "a", url, postgres_url, timeout_s=20)
    add(a, 1)
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=_hold_the_lock, args=(str(tmp_path / "b"), url, postgres_url, s3.env, ready))
    proc.start()
    try:
        assert ready.wait(30), "the writer process never took the lock"
        with pytest.raises(WarehouseBusyError, match="advisory lock"):
            machine(tmp_path / "c", url, postgres_url, timeout_s=0.5).reader().__enter__()
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(10)
        add(a, 2)  # the lock went with the dead process's connection
        assert values(a) == [1, 2]  # its uncommitted 666 never reached the stored object
    finally:
        if proc.is_alive():
            proc.kill()


def test_an_unreachable_store_fails_clearly_and_changes_nothing(tmp_path, s3, postgres_url, monkeypatch):
    url = s3.url("prod")
    a = machine(tmp_path / "a", url, postgres_url)
    add(a, 1)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("TICKLAKE_S3_MAX_ATTEMPTS", "1")
    dead = machine(tmp_path / "b", url, postgres_url)
    with pytest.raises(ObjectStoreError) as raised:
        add(dead, 2)
    message = str(raised.value)
    assert "s3://ticklake/prod/state/pipeline.duckdb" in message
    assert "re-run" in message
    assert s3.env["AWS_SECRET_ACCESS_KEY"] not in message
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    assert values(machine(tmp_path / "c", url, postgres_url)) == [1]


def test_an_unreachable_coordination_database_is_named_without_its_password():
    mutex = PostgresMutex("postgresql://ticklake:hunter2@127.0.0.1:9/coordination", "ticklake-warehouse:test")
    with pytest.raises(ConnectionError) as raised:
        mutex.acquire(timeout=5)
    message = str(raised.value)
    assert "127.0.0.1:9/coordination" in message
    assert "TICKLAKE_COORDINATION_URL" in message
    assert "hunter2" not in message
    assert not mutex.is_locked
