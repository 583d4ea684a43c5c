"""`lake_maintenance` on a real lake, run by Dagster: after many small commits the file count drops, every row is
unchanged, snapshots past retention are gone and the ones inside it still time-travel."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa
import pytest

from definitions import build_definitions
from resources.itick import ITickResource
from resources.storage import StorageResource
from ticklake import settings
from ticklake.dictionary import KLINES_DAILY
from ticklake.settings import ConfigError
from ticklake.storage import open_lakehouse
from ticklake.storage.maintenance import METADATA
from ticklake.storage.writes import Part, commit

pytestmark = pytest.mark.integration
RUN_AT = dt.datetime(2024, 6, 28, 23, 0, tzinfo=dt.UTC)
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _bars(month: str, days: int, close: float, symbols: int = 30) -> pa.Table:
    first = dt.date.fromisoformat(f"{month}-01")
    rows: dict[str, list] = {c: [] for c in KLINES_DAILY.columns}
    for d in range(days):
        day = first + dt.timedelta(days=d)
        ts = dt.datetime.combine(day, dt.time(20), tzinfo=dt.UTC)
        for s in range(symbols):
            values = {"region": "US", "symbol": f"S{s:03d}", "trade_date": day, "open": close, "high": close + 1,
                      "low": close - 1, "close": close + s, "volume": 1000.0, "turnover": 1000.0 * close,
                      "bar_ts": ts, "rule": "single_source", "sources": "itick", "max_rel_diff": None,
                      "source": "itick", "ingested_at": ts, "run_id": f"run-{month}-{days}"}
            for name, value in values.items():
                rows[name].append(value)
    return pa.Table.from_pydict(rows, schema=KLINES_DAILY.arrow_schema)


def _nights(home: Path) -> list[int]:
    """20 small commits: a month each of 2023-01..2024-04 (16 files in two year partitions), then four nights that
    each replace the last month with one more session (each leaves a file only older snapshots read)."""
    lake = open_lakehouse(home)
    months = [f"{2023 + i // 12}-{i % 12 + 1:02d}" for i in range(16)]
    for i, month in enumerate(months):
        commit(lake, KLINES_DAILY, [Part({"region": "US", "month": month, "source": "itick"},
                                         _bars(month, 3, 10.0 + i))], run_id=f"run-{i}", now=RUN_AT)
    previous = None
    for night in range(4):
        table = _bars("2024-04", 4 + night, 50.0)
        commit(lake, KLINES_DAILY, [Part({"region": "US", "month": "2024-04", "source": "itick"}, table,
                                         previous=previous)], run_id=f"night-{night}", now=RUN_AT)
        previous = table
    with lake.connection() as con:
        snapshots = [r[0] for r in con.execute("SELECT snapshot_id FROM ducklake_snapshots('lake') ORDER BY 1")
                     .fetchall()]
    lake.close()
    return snapshots


def _backdate(home: Path, last: int, days: int) -> None:
    """Make snapshots up to `last` look `days` old (through DuckLake's own attachment of the catalog)."""
    lake = open_lakehouse(home)
    with lake.connection() as con:
        con.execute(f"UPDATE {METADATA}.ducklake_snapshot SET snapshot_time = strftime(snapshot_time::TIMESTAMPTZ "
                    f"- INTERVAL {days} DAY, '%Y-%m-%d %H:%M:%S.%f+00') WHERE snapshot_id <= ?", [last])
    lake.close()


def _rows(home: Path, version: int | None = None) -> list[tuple]:
    lake = open_lakehouse(home)
    at = f" AT (VERSION => {version})" if version is not None else ""
    try:
        with lake.connection() as con:
            return con.execute(f"SELECT * FROM klines_daily{at} ORDER BY region, symbol, trade_date").fetchall()
    finally:
        lake.close()


def _orphan(home: Path, name: str, age: dt.timedelta) -> Path:
    path = home / "lake" / "main" / "klines_daily" / name
    path.write_bytes(b"PAR1 left by a killed commit")
    stamp = time.time() - age.total_seconds()
    os.utime(path, (stamp, stamp))
    return path


@pytest.mark.slow
def test_lake_maintenance_compacts_expires_past_retention_and_keeps_every_row(tmp_path, monkeypatch):
    home = tmp_path / "home"
    snapshots = _nights(home)
    assert len(snapshots) >= 21
    current, versions = _rows(home), {v: _rows(home, v) for v in snapshots[-8:]}
    # the first snapshots were committed 40 days ago, the rest now: retention 30 days expires all but the one
    # that was current 30 days ago
    kept_from = snapshots[-8]
    _backdate(home, kept_from, 40)
    old_orphan = _orphan(home, "ducklake-orphan-old.parquet", dt.timedelta(days=3))
    young_orphan = _orphan(home, "ducklake-orphan-young.parquet", dt.timedelta(minutes=5))
    monkeypatch.setenv("TICKLAKE_SNAPSHOT_RETENTION_DAYS", "30")

    defs = build_definitions(itick=ITickResource(base_url="http://127.0.0.1:9", token="unused", home=str(home)),
                             storage=StorageResource(home=str(home)))
    result = defs.resolve_job_def("lake_maintenance").execute_in_process(instance=dg.DagsterInstance.ephemeral(),
                                                                         run_config=QUIET)
    assert result.success
    [event] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = {k: v.value for k, v in event.step_output_data.metadata.items()}

    assert metadata["live_files_after"] < metadata["live_files_before"]  # 16 month files merged into 2
    assert metadata["live_files_after"] <= 4, metadata
    assert metadata["disk_files_after"] < metadata["disk_files_before"]
    assert metadata["disk_bytes_after"] < metadata["disk_bytes_before"]
    assert metadata["snapshots_expired"] == len([v for v in snapshots if v < kept_from])
    assert metadata["orphaned_files_deleted"] == 1
    assert not old_orphan.exists()
    assert young_orphan.exists()  # it may belong to a commit still running

    assert _rows(home) == current
    for version in snapshots[:5]:
        with pytest.raises(duckdb.InvalidInputException, match="No snapshot found"):
            _rows(home, version)
    for version, rows in versions.items():  # inside retention (and the one current at its start): unchanged
        assert _rows(home, version) == rows


def test_a_second_run_finds_nothing_left_to_do(tmp_path, monkeypatch):
    home = tmp_path / "home"
    _nights(home)
    defs = build_definitions(itick=ITickResource(base_url="http://127.0.0.1:9", token="unused", home=str(home)),
                             storage=StorageResource(home=str(home)))
    job = defs.resolve_job_def("lake_maintenance")
    with dg.DagsterInstance.ephemeral() as instance:
        assert job.execute_in_process(instance=instance, run_config=QUIET).success
        again = job.execute_in_process(instance=instance, run_config=QUIET)
    [event] = [e for e in again.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = {k: v.value for k, v in event.step_output_data.metadata.items()}
    assert metadata["files_merged_away"] == metadata["files_rewritten"] == 0
    assert metadata["live_files_after"] == metadata["live_files_before"]


@pytest.mark.parametrize("value", ["0", "-1", "thirty", "36501"])
def test_retention_refuses_values_that_would_lose_time_travel_or_mean_nothing(monkeypatch, value):
    monkeypatch.setenv("TICKLAKE_SNAPSHOT_RETENTION_DAYS", value)
    with pytest.raises(ConfigError, match="TICKLAKE_SNAPSHOT_RETENTION_DAYS"):
        settings.snapshot_retention_days()


def test_retention_defaults_to_thirty_days(monkeypatch):
    monkeypatch.delenv("TICKLAKE_SNAPSHOT_RETENTION_DAYS", raising=False)
    assert settings.snapshot_retention_days() == 30


def test_the_weekly_schedule_is_stopped_by_default_and_runs_the_job():
    from automation.schedules import lake_maintenance_weekly

    assert lake_maintenance_weekly.job_name == "lake_maintenance"
    assert lake_maintenance_weekly.cron_schedule == "0 10 * * 0"
    assert lake_maintenance_weekly.default_status == dg.DefaultScheduleStatus.STOPPED
