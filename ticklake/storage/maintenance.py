"""Lake maintenance: compact small files, rewrite files with many deletes, expire old snapshots, delete dead files.

Every nightly commit replaces partitions (DELETE + INSERT), so each adds a small file per partition and leaves the
files it replaced referenced by older snapshots only. Left alone, reads open ever more files and the data path keeps
every version ever written. `maintain` is what the weekly `lake_maintenance` job runs, in DuckLake's own order:

1. per table, under that table's commit lock (a rewrite and a nightly DELETE on one table conflict, not retried):
   flush rows DuckLake inlined in the catalog into Parquet, rewrite files with more than `DELETE_THRESHOLD` of their
   rows deleted, then merge adjacent small files of one partition (SORTED BY keeps the symbol order inside);
2. expire the snapshots superseded before now - TICKLAKE_SNAPSHOT_RETENTION_DAYS. The snapshot that was current at
   that instant is kept, so `AT (TIMESTAMP => t)` answers exactly for every t in the retention window;
3. delete the files only expired snapshots referenced, and orphaned files (written by a transaction that never
   committed, e.g. a killed run) older than `ORPHAN_GRACE`, so an in-flight commit's files are never taken.

Rows and the current snapshot's answers never change; only time travel to instants before the window ends.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb

from ticklake.storage.catalog import ALIAS
from ticklake.storage.ddl import literal
from ticklake.storage.lakehouse import METADATA, SCHEMA_LOCK, SCHEMA_TABLE, Lakehouse

# A file with more than this share of its rows deleted is rewritten: a nightly replace of the current month deletes
# about 1/12 of a compacted year file; past a tenth every read of that year pays for the delete file.
DELETE_THRESHOLD = 0.1
# Orphaned files younger than this are left: they may belong to a commit still running (commits take seconds to
# minutes; the commit lock times out after 15 minutes).
ORPHAN_GRACE = dt.timedelta(days=1)


@dataclass(frozen=True)
class LakeFiles:
    """What the lake's files weigh: `live` is what the latest snapshot reads, `retained` what older snapshots still
    reference (time travel), `scheduled` what expired snapshots left for deletion, `on_disk` everything under a local
    data path (orphans included; None on object storage)."""

    live_files: int
    live_bytes: int
    delete_files: int
    delete_bytes: int
    retained_files: int
    retained_bytes: int
    scheduled_files: int
    snapshots: int
    oldest_snapshot: dt.datetime | None
    disk_files: int | None
    disk_bytes: int | None

    @property
    def tracked_files(self) -> int:
        return self.live_files + self.delete_files + self.retained_files + self.scheduled_files


@dataclass
class MaintenanceReport:
    before: LakeFiles
    after: LakeFiles
    retention_days: int
    cutoff: dt.datetime  # snapshots superseded before this instant were expired
    flushed_rows: dict[str, int] = field(default_factory=dict)  # per table: inlined rows written to Parquet
    rewritten_files: dict[str, int] = field(default_factory=dict)  # per table: files rewritten for their deletes
    merged_files: dict[str, int] = field(default_factory=dict)  # per table: small files merged away
    expired_snapshots: list[int] = field(default_factory=list)
    deleted_old_files: int = 0
    deleted_orphaned_files: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def maintain(lake: Lakehouse, *, retention_days: int, now: dt.datetime | None = None,
             tables: Iterable[str] | None = None) -> MaintenanceReport:
    """Run every maintenance step on `lake` (or only the table-level ones on `tables`); what it did, and the files
    before and after."""
    if retention_days < 1:
        raise ValueError(f"retention_days must be >= 1, not {retention_days} (TICKLAKE_SNAPSHOT_RETENTION_DAYS)")
    started = time.perf_counter()
    now = now or dt.datetime.now(dt.UTC)
    cutoff = now - dt.timedelta(days=retention_days)
    before = lake_files(lake)
    with lake.connection() as con:
        names = sorted(tables) if tables is not None else _tables(con)
    flushed, rewritten, merged = {}, {}, {}
    for table in names:
        with lake.locks.hold([_lock_name(table)]), lake.connection() as con:
            rows = con.execute("SELECT * FROM ducklake_flush_inlined_data(?, schema_name => 'main', table_name => ?)",
                               [ALIAS, table]).fetchall()
            flushed[table] = sum(int(r[2] or 0) for r in rows)
            rows = con.execute("SELECT * FROM ducklake_rewrite_data_files(?, ?, schema => 'main', delete_threshold "
                               f"=> {DELETE_THRESHOLD})", [ALIAS, table]).fetchall()
            rewritten[table] = sum(int(r[2] or 0) for r in rows)
            rows = con.execute("SELECT * FROM ducklake_merge_adjacent_files(?, ?, schema => 'main')",
                               [ALIAS, table]).fetchall()
            merged[table] = sum(int(r[2] or 0) - int(r[3] or 0) for r in rows)  # processed - created
    with lake.connection() as con:
        expired = _expirable(con, cutoff)
    if expired:
        # under every table's lock, so no commit races the catalog change (none is based on an expiring snapshot:
        # each is older than the latest)
        with lake.locks.hold([_lock_name(t) for t in names]), lake.connection() as con:
            versions = ", ".join(str(v) for v in expired)
            con.execute(f"SELECT * FROM ducklake_expire_snapshots(?, versions => [{versions}])", [ALIAS]).fetchall()
    with lake.connection() as con:
        # cleanup_all: what is scheduled is referenced by no remaining snapshot, so no reader can be reading it
        old = con.execute("SELECT * FROM ducklake_cleanup_old_files(?, cleanup_all => true)", [ALIAS]).fetchall()
        orphans = con.execute("SELECT * FROM ducklake_delete_orphaned_files(?, older_than => ?)",
                              [ALIAS, now - ORPHAN_GRACE]).fetchall()
    return MaintenanceReport(before=before, after=lake_files(lake), retention_days=retention_days, cutoff=cutoff,
                             flushed_rows=flushed, rewritten_files=rewritten, merged_files=merged,
                             expired_snapshots=expired, deleted_old_files=len(old), deleted_orphaned_files=len(orphans),
                             seconds=round(time.perf_counter() - started, 3))


def lake_files(lake: Lakehouse) -> LakeFiles:
    """The lake's files and bytes from its catalog (and, on a local data path, from the disk)."""
    with lake.connection() as con:
        live, live_bytes = con.execute(f"SELECT count(*), coalesce(sum(file_size_bytes), 0) FROM "
                                       f"{METADATA}.ducklake_data_file WHERE end_snapshot IS NULL").fetchone()
        old, old_bytes = con.execute(f"SELECT count(*), coalesce(sum(file_size_bytes), 0) FROM "
                                     f"{METADATA}.ducklake_data_file WHERE end_snapshot IS NOT NULL").fetchone()
        deletes, delete_bytes = con.execute(f"SELECT count(*), coalesce(sum(file_size_bytes), 0) FROM "
                                            f"{METADATA}.ducklake_delete_file WHERE end_snapshot IS NULL").fetchone()
        old_deletes, old_delete_bytes = con.execute(
            f"SELECT count(*), coalesce(sum(file_size_bytes), 0) FROM {METADATA}.ducklake_delete_file "
            "WHERE end_snapshot IS NOT NULL").fetchone()
        scheduled = con.execute(f"SELECT count(*) FROM {METADATA}.ducklake_files_scheduled_for_deletion").fetchone()[0]
        snapshots, oldest = con.execute(f"SELECT count(*), min(snapshot_time) FROM ducklake_snapshots({literal(ALIAS)})"
                                        ).fetchone()
    disk_files = disk_bytes = None
    if not lake.catalog.is_remote:
        disk_files, disk_bytes = _disk_usage(Path(lake.catalog.data_path))
    return LakeFiles(live_files=int(live), live_bytes=int(live_bytes), delete_files=int(deletes),
                     delete_bytes=int(delete_bytes), retained_files=int(old + old_deletes),
                     retained_bytes=int(old_bytes + old_delete_bytes), scheduled_files=int(scheduled),
                     snapshots=int(snapshots), oldest_snapshot=oldest, disk_files=disk_files, disk_bytes=disk_bytes)


def _expirable(con: duckdb.DuckDBPyConnection, cutoff: dt.datetime) -> list[int]:
    """Snapshots older than the one that was current at `cutoff` (that one answers `AT (TIMESTAMP => cutoff)`)."""
    rows = con.execute(f"SELECT snapshot_id, snapshot_time FROM ducklake_snapshots({literal(ALIAS)}) ORDER BY 1"
                       ).fetchall()
    current_at_cutoff = max((sid for sid, at in rows if at <= cutoff), default=None)
    if current_at_cutoff is None:
        return []
    return [sid for sid, _ in rows if sid < current_at_cutoff]


def _tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    return sorted(r[0] for r in con.execute(f"SELECT table_name FROM ducklake_table_info({literal(ALIAS)})"
                                            ).fetchall())


def _lock_name(table: str) -> str:
    """The commit lock a table's writers take (the schema table is written under the schema lock)."""
    return SCHEMA_LOCK if table == SCHEMA_TABLE else table


def _disk_usage(root: Path) -> tuple[int, int]:
    files = size = 0
    for folder, _, names in os.walk(root):
        for name in names:
            try:
                size += (Path(folder) / name).stat().st_size
                files += 1
            except FileNotFoundError:  # deleted by a concurrent cleanup
                continue
    return files, size
