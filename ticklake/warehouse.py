"""The pipeline's own DuckDB file, and the immutable snapshot of it that analysts open.

DuckDB lets one process write a file or many processes read it, never both at once: an analyst's read-only
session on the file the pipeline writes made the nightly writer wait, and the writer's lock made analysts'
connects fail. So the two never share a file:

- The pipeline reads and writes only `pipeline_path` (`state/pipeline.duckdb`), through `writer()` and
  `reader()`. A file lock serialises them across threads and processes, so parallel runs queue instead of
  failing with "Could not set lock". Loads are delete-then-insert of exactly the partitions being written, in
  one transaction, so a re-run replaces and a failed load leaves the previous rows.
- `publish()` turns the pipeline's state into `snapshot_path` (`warehouse.duckdb`), the file analysts open:
  checkpointed and closed, the pipeline file is copied (a reflink where the filesystem can share blocks) to a
  temporary name next to the snapshot, marked, made read-only, fsynced and renamed over the snapshot.
  A rename swaps the name to a new inode; an analyst's open connection keeps the inode it opened, so it goes
  on seeing one consistent older state, and a reconnect sees the new one; never half a run. The writer never
  opens the snapshot, so nothing an analyst does with it can make the pipeline wait.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import glob
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
from filelock import FileLock, Timeout

from ticklake.dictionary import DATASETS, LAKE_PARTITIONS, MACROS, Dataset
from ticklake.mutex import MutexTimeoutError, PostgresMutex
from ticklake.object_store import ObjectStoreError
from ticklake.remote_warehouse import RemoteDatabase

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no reflinks (nor the rename-over-open-file this design needs)
    fcntl = None

SNAPSHOT_TABLE = "ticklake_snapshot"  # present in every published snapshot, never in the pipeline's file
_FICLONE = 0x40049409  # linux/fs.h: share the source's blocks (btrfs, XFS, bcachefs, ...), no data copied
# errno values meaning "this filesystem or kernel cannot do that kind of copy": try the next, slower kind.
_UNSUPPORTED = {errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EINVAL, errno.ENOTTY, errno.ENOSYS,
                errno.EBADF}


class WarehouseBusyError(RuntimeError):
    """The pipeline's file stayed locked by another process for longer than the configured timeout."""


class WarehousePublishError(RuntimeError):
    """The snapshot could not be replaced; the previous snapshot and everything the pipeline stored are intact."""


class WarehouseLayoutError(RuntimeError):
    """The files on disk are in a state that ticklake cannot use without risking data; the message says why."""


@dataclass(frozen=True)
class Publication:
    """What one `publish()` did, for run metadata and the benchmark."""

    path: Path
    size_bytes: int
    seconds: float
    method: str  # "reflink" (blocks shared), "copy_file_range" (in-kernel copy) or "copy" (read and write)

    @property
    def megabytes(self) -> float:
        return self.size_bytes / 1e6


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def create_table_sql(dataset: Dataset) -> str:
    columns = ",\n  ".join(
        f"{_quote(f.name)} {f.duckdb_type}{'' if f.nullable else ' NOT NULL'}" for f in dataset.fields
    )
    return f"CREATE TABLE IF NOT EXISTS {_quote(dataset.name)} (\n  {columns}\n)"


def comment_sql(dataset: Dataset) -> list[str]:
    statements = [f"COMMENT ON TABLE {_quote(dataset.name)} IS {_literal(dataset.description)}"]
    statements += [
        f"COMMENT ON COLUMN {_quote(dataset.name)}.{_quote(f.name)} IS {_literal(f.doc)}" for f in dataset.fields
    ]
    return statements


def cluster_order(dataset: Dataset) -> str:
    """Physical row order of a load. Date-keyed tables are clustered by (region, year, symbol, date): DuckDB's
    zone maps then prune row groups for both analyst shapes, a symbol's history (a few row groups per year)
    and a date's cross-section (only that year's row groups), instead of favouring one of them."""
    columns = [_quote(c) for c in dataset.sort_by]
    if "trade_date" in dataset.sort_by:
        columns.insert(dataset.sort_by.index("trade_date") - 1, "date_trunc('year', \"trade_date\")")
    return ", ".join(columns) or "ALL"


class Warehouse:
    """The pipeline's DuckDB file (`pipeline_path`) and the snapshot analysts open (`snapshot_path`)."""

    def __init__(self, pipeline_path: Path, snapshot_path: Path, *, lock_timeout_s: float = 900.0,
                 remote: RemoteDatabase | None = None, mutex: PostgresMutex | None = None):
        """`remote` and `mutex` make it the production profile's warehouse: the files here are local copies of
        objects every worker shares, and `mutex` (a cross-machine lock) replaces the local file lock."""
        self.pipeline_path = Path(pipeline_path)
        self.snapshot_path = Path(snapshot_path)
        self.lock_timeout_s = lock_timeout_s
        if (remote is None) != (mutex is None):
            raise ValueError("a shared warehouse needs both its object-storage copy and a cross-machine lock")
        self.remote = remote
        self._lock = mutex or FileLock(str(self.pipeline_path) + ".writer.lock")

    @contextlib.contextmanager
    def writer(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The single read-write connection to the pipeline's file, with the schema ensured. Blocks while another
        writer works. Analysts see its changes only after the next `publish()`."""
        with self._locked() as deadline:
            con = self._connect(self.pipeline_path, deadline)
            try:
                self._ensure_schema(con)
                yield con
            except BaseException:
                con.close()
                if self.remote is not None:
                    self.remote.forget(self.pipeline_path)
                raise
            con.close()
            if self.remote is not None:
                self._push(deadline)

    @contextlib.contextmanager
    def reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection to the pipeline's file, for checks of what the pipeline stored (which may be ahead
        of the snapshot). DuckDB would refuse it while a writer works, so it queues on the writer lock: keep it
        short."""
        with self._locked() as deadline:
            if not self.pipeline_path.exists():
                with contextlib.closing(self._connect(self.pipeline_path, deadline)) as con:
                    self._ensure_schema(con)
            con = self._connect(self.pipeline_path, deadline, read_only=True)
            try:
                yield con
            finally:
                con.close()

    def publish(self) -> Publication:
        """Replace the analysts' snapshot with the pipeline's current state, atomically; return what it cost.

        Call it after a write step succeeds, outside `writer()`/`reader()` (it closes the pipeline's file to copy
        it). A failure raises WarehousePublishError and leaves the previous snapshot in place.
        """
        if self._lock.is_locked:
            raise RuntimeError("publish() was called inside writer() or reader(); call it after the block ends")
        with self._locked() as deadline:
            publication = self._publish(deadline)
            if self.remote is not None:
                try:
                    self.remote.publish(publication.path)
                except ObjectStoreError as exc:
                    raise WarehousePublishError(f"the snapshot was not published: {exc}") from exc
            return publication

    def _push(self, deadline: float) -> None:
        """Upload the pipeline's file whole (checkpointed first, so the file alone is the committed state)."""
        try:
            self._checkpoint_pipeline(deadline)
            self.remote.push(self.pipeline_path)
        except BaseException:
            self.remote.forget(self.pipeline_path)
            raise

    @contextlib.contextmanager
    def _locked(self) -> Iterator[float]:
        """Hold the writer lock and yield the deadline for anything else to wait on. A home still in the layout of
        older versions is migrated first, so every entry point sees the current one."""
        deadline = time.monotonic() + self.lock_timeout_s
        self.pipeline_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(timeout=self.lock_timeout_s)
        except (Timeout, MutexTimeoutError):
            raise WarehouseBusyError(
                f"another ticklake writer held {self.pipeline_path} for {self.lock_timeout_s:.0f}s; "
                f"is a stuck run holding {self._lock.lock_file}?"
            ) from None
        try:
            if self.remote is not None:
                self.remote.pull(self.pipeline_path)
            else:
                self._adopt_legacy_layout(deadline)
            yield deadline
        finally:
            self._lock.release()

    def _connect(self, path: Path, deadline: float, *, read_only: bool = False,
                 advice: str | None = None) -> duckdb.DuckDBPyConnection:
        """Connect, waiting out a foreign process that holds DuckDB's own lock on `path` until `deadline`."""
        delay = 0.05
        while True:
            try:
                return duckdb.connect(str(path), read_only=read_only)
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    raise
                if time.monotonic() + delay > deadline:
                    raise WarehouseBusyError(f"{path} stayed locked by another process: {exc}. " + (
                        advice or f"Only ticklake opens it (analysts open {self.snapshot_path}, which never blocks "
                                  "the pipeline): close the session holding it, then re-run."
                    )) from exc
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _publish(self, deadline: float) -> Publication:
        started = time.perf_counter()
        self._checkpoint_pipeline(deadline)
        self._refuse_foreign_snapshot()
        target = self.snapshot_path
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_leftovers(target)
        size = self.pipeline_path.stat().st_size
        staged = target.with_name(f"{target.name}{_STAGED}{uuid.uuid4().hex}")
        try:
            method = _copy(self.pipeline_path, staged)
            _mark_snapshot(staged)
            os.chmod(staged, 0o444)  # a signal: analysts open it read-only (DuckDB refuses read-write, except root)
            _fsync(staged)
            os.replace(staged, target)
        except (OSError, duckdb.Error) as exc:
            raise WarehousePublishError(
                f"could not publish {target}: {exc}. The previous snapshot is unchanged and every write is safe in "
                f"{self.pipeline_path}. Fix the cause (a copy needs up to {size / 1e6:,.0f} MB free next to the "
                "snapshot), then re-run the step or call Warehouse.publish()."
            ) from exc
        finally:
            _remove(staged)
            _remove(_wal(staged))
        _fsync(target.parent)
        # A snapshot never has a WAL. One left next to it was written by someone who opened the *previous*
        # snapshot read-write: DuckDB finds a WAL by name and would replay it onto this snapshot (or, when the
        # checkpoint iterations differ, refuse every read-only connect). Their changes were never the pipeline's.
        # (A read-write session still open on the old file that writes again re-creates it by name; DuckDB deletes
        # it when that session closes, the next publish at the latest. 0444 keeps anyone but root from doing so.)
        _remove(_wal(target))
        return Publication(target, target.stat().st_size, time.perf_counter() - started, method)

    def _checkpoint_pipeline(self, deadline: float) -> None:
        """Fold the WAL into the pipeline's file and close it, so the file alone is the whole committed state."""
        with contextlib.closing(self._connect(self.pipeline_path, deadline)) as con:
            self._ensure_schema(con)  # a first publish on a new home already gives analysts the (empty) tables
            con.execute("CHECKPOINT")
        if _wal(self.pipeline_path).exists():
            raise WarehousePublishError(
                f"{_wal(self.pipeline_path)} remains after a checkpoint: another connection in this process still "
                f"has {self.pipeline_path} open, so its file alone is not the committed state. Close it and re-run."
            )

    def _refuse_foreign_snapshot(self) -> None:
        """Never overwrite a `snapshot_path` that ticklake did not publish: without the marker it may be an older
        version's pipeline file written after the migration, or someone's own database."""
        if not self.snapshot_path.exists():
            return
        try:
            with contextlib.closing(duckdb.connect(str(self.snapshot_path), read_only=True)) as con:
                if _is_snapshot(con):
                    return
                reason = f"it has no {SNAPSHOT_TABLE} table"
        except duckdb.Error as exc:
            if _HELD_OPEN.search(str(exc)):  # a session holds our snapshot read-write, or left a WAL: replace it
                return
            reason = f"DuckDB cannot open it: {exc}"
        raise WarehouseLayoutError(
            f"{self.snapshot_path} is not a snapshot ticklake published ({reason}), so it may hold data that exists "
            f"nowhere else; ticklake left it untouched. Move it aside (e.g. `mv {self.snapshot_path} "
            f"{self.snapshot_path}.bak`), then re-run: the pipeline's data is in {self.pipeline_path}."
        )

    def _adopt_legacy_layout(self, deadline: float) -> None:
        """Older versions wrote `warehouse.duckdb` itself. The first time this version runs on such a home, that
        file is the pipeline's data: move it (a rename, nothing copied or rewritten) to `pipeline_path`, then
        publish a snapshot in its place. Older writers are kept out by their own lock meanwhile."""
        if self.pipeline_path.exists() or not self.snapshot_path.exists():
            return
        legacy_lock = FileLock(str(self.snapshot_path) + ".writer.lock")
        try:
            legacy_lock.acquire(timeout=max(0.0, deadline - time.monotonic()))
        except Timeout:
            raise WarehouseBusyError(
                f"an older ticklake writer holds {legacy_lock.lock_file}: let its run finish, then re-run"
            ) from None
        try:
            self._make_legacy_file_self_contained(deadline)
            try:
                os.rename(self.snapshot_path, self.pipeline_path)
            except OSError as exc:
                raise WarehouseLayoutError(
                    f"could not move {self.snapshot_path} to {self.pipeline_path} ({exc}); move it yourself "
                    f"(`mv {self.snapshot_path} {self.pipeline_path}`), then re-run"
                ) from exc
            _fsync(self.pipeline_path.parent)
            _fsync(self.snapshot_path.parent)
        finally:
            legacy_lock.release()
        self._publish(deadline)

    def _make_legacy_file_self_contained(self, deadline: float) -> None:
        """Committed transactions may still sit in `warehouse.duckdb.wal`, which DuckDB finds by name and a rename
        of the main file would leave behind: checkpoint it first. Without a WAL a read-only look suffices, which
        analysts' read-only sessions do not block."""
        wal = _wal(self.snapshot_path)
        has_wal = wal.exists()
        advice = (f"This version moves {self.snapshot_path} (the file older versions wrote) to {self.pipeline_path} "
                  "once, which needs it free of read-write sessions: close them, then re-run. From then on "
                  "analysts' sessions never block the pipeline.")
        with contextlib.closing(self._connect(self.snapshot_path, deadline, read_only=not has_wal,
                                              advice=advice)) as con:
            if _is_snapshot(con):
                raise WarehouseLayoutError(
                    f"{self.pipeline_path} is missing but {self.snapshot_path} is a published snapshot: the pipeline's "
                    f"own file was deleted or moved. Nothing was changed. To continue from the snapshot, restore it: "
                    f"`cp {self.snapshot_path} {self.pipeline_path} && chmod u+w {self.pipeline_path}`, then re-run "
                    "(rows written after that snapshot was published are still in the lake: re-materialize them)."
                )
            if has_wal:
                con.execute("CHECKPOINT")
        if wal.exists():
            raise WarehouseLayoutError(
                f"{wal} remains after a checkpoint, so moving {self.snapshot_path} would leave committed rows "
                "behind; close every session on it, then re-run"
            )

    @staticmethod
    def _ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
        for dataset in DATASETS.values():
            existing = {r[0] for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [dataset.name]
            ).fetchall()}
            if not existing:
                con.execute(create_table_sql(dataset))
                for statement in comment_sql(dataset):
                    con.execute(statement)
                continue
            for f in dataset.fields:  # additive evolution: new dictionary fields become nullable columns
                if f.name not in existing:
                    con.execute(f"ALTER TABLE {_quote(dataset.name)} ADD COLUMN {_quote(f.name)} {f.duckdb_type}")
                    con.execute(f"COMMENT ON COLUMN {_quote(dataset.name)}.{_quote(f.name)} IS {_literal(f.doc)}")
        # A status row without a source predates per-source lake files: dropping it makes the next writer of that
        # dataset re-verify the partition from the lake (store.repair), which is the truth either way.
        con.execute("DELETE FROM lake_partitions WHERE source IS NULL")
        for macro in MACROS.values():  # after every table exists: macros may read any of them
            con.execute(macro.create_sql)

    def replace_partitions(self, dataset: Dataset, table: pa.Table, partitions: Sequence[Mapping[str, str]],
                           status: pa.Table | None = None) -> int:
        """Replace the rows of the given lake partitions with `table` (and, given `status`, their rows in
        `lake_partitions`) in one transaction, so a failure leaves both as they were; return rows inserted."""
        return self.replace_many([(dataset, table, partitions, status)])

    def replace_many(self, batches: Sequence[tuple[Dataset, pa.Table, Sequence[Mapping[str, str]], pa.Table | None]]
                     ) -> int:
        """Several `replace_partitions` in ONE transaction (a dataset's rows and the history of the versions they
        supersede commit together or not at all); return rows inserted."""
        batches = [b for b in batches if b[2]]
        if not batches:
            return 0
        with self.writer() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                for dataset, table, partitions, status in batches:
                    con.register("incoming_rows", table)
                    _delete_insert(con, dataset, "incoming_rows", *partition_filter(dataset, partitions))
                    con.unregister("incoming_rows")
                    if status is not None:
                        con.register("incoming_status", status)
                        _delete_insert(con, LAKE_PARTITIONS, "incoming_status", *status_filter(dataset, partitions))
                        con.unregister("incoming_status")
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return sum(b[1].num_rows for b in batches)

    def partition_status(self, dataset: Dataset, region: str) -> dict[tuple[str, str], tuple[int, int]]:
        """(partition, source) -> (file_bytes, file_mtime_ns) as committed, for drift detection."""
        with self.writer() as con:
            rows = con.execute("SELECT partition, source, file_bytes, file_mtime_ns FROM lake_partitions "
                               "WHERE dataset = ? AND region = ?", [dataset.name, region]).fetchall()
        return {(partition, source): (size, mtime) for partition, source, size, mtime in rows}

    def read_partitions(self, dataset: Dataset, partitions: Sequence[Mapping[str, str]]) -> pa.Table:
        """The stored rows of the given lake partitions, in the dataset's Arrow schema."""
        where, params = partition_filter(dataset, partitions)
        columns = ", ".join(_quote(c) for c in dataset.columns)
        with self.writer() as con:
            sql = f"SELECT {columns} FROM {_quote(dataset.name)} WHERE {where} ORDER BY {cluster_order(dataset)}"
            table = con.sql(sql, params=params).to_arrow_table()
        return table.cast(dataset.arrow_schema)


def _delete_insert(con: duckdb.DuckDBPyConnection, dataset: Dataset, view: str, where: str, params: list) -> None:
    columns = ", ".join(_quote(c) for c in dataset.columns)
    con.execute(f"DELETE FROM {_quote(dataset.name)} WHERE {where}", params)
    con.execute(f"INSERT INTO {_quote(dataset.name)} ({columns}) SELECT {columns} FROM {view} "
                f"ORDER BY {cluster_order(dataset)}")


def partition_filter(dataset: Dataset, partitions: Sequence[Mapping[str, str]]) -> tuple[str, list]:
    """A WHERE clause selecting exactly the rows of the given lake partitions (by region, month, ...), and only
    the given source's rows where the values name one: a source's write never deletes another source's rows."""
    clauses, params = [], []
    for values in partitions:
        terms = []
        if "source" in values:
            terms.append('"source" = ?')
            params.append(values["source"])
        for key in dataset.lake_keys:
            bounds = key.bounds(values[key.name])
            if bounds is None:
                terms.append(f"{_quote(key.column)} = ?")
                params.append(values[key.name])
            else:
                terms.append(f"{_quote(key.column)} BETWEEN ? AND ?")
                params += list(bounds)
        clauses.append("(" + " AND ".join(terms) + ")")
    return " OR ".join(clauses), params


def partition_label(dataset: Dataset, values: Mapping[str, str]) -> str:
    """A partition's name within its region in `lake_partitions`: its month, or "-" when there is none."""
    rest = [values[k.name] for k in dataset.lake_keys if k.name != "region"]
    return "/".join(rest) or "-"


def status_filter(dataset: Dataset, partitions: Sequence[Mapping[str, str]]) -> tuple[str, list]:
    clauses, params = [], []
    for values in partitions:
        clauses.append("(dataset = ? AND region = ? AND partition = ? AND source = ?)")
        params += [dataset.name, values["region"], partition_label(dataset, values), values["source"]]
    return " OR ".join(clauses), params


_STAGED = ".publishing-"  # suffix of a snapshot being staged; never ".tmp", which is DuckDB's own spill folder
_HELD_OPEN = re.compile(r"lock|wal|different configuration", re.IGNORECASE)
_SNAPSHOT_COMMENT = (
    "This database is a read-only snapshot of the ticklake warehouse, replaced as a whole after every successful "
    "pipeline step. Close every connection and reconnect to see the latest; changes made here are discarded."
)


def _wal(path: Path) -> Path:
    return path.with_name(path.name + ".wal")


def _is_snapshot(con: duckdb.DuckDBPyConnection) -> bool:
    return con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'main' AND table_name = ?",
                       [SNAPSHOT_TABLE]).fetchone()[0] > 0


def _mark_snapshot(path: Path) -> None:
    """Label a staged copy as a snapshot (with its publication time, for analysts), which also proves DuckDB opens
    it before anyone can see it."""
    with contextlib.closing(duckdb.connect(str(path))) as con:
        con.execute(f"CREATE OR REPLACE TABLE {SNAPSHOT_TABLE} AS SELECT ?::TIMESTAMPTZ AS published_at",
                    [dt.datetime.now(dt.UTC)])
        con.execute(f"COMMENT ON TABLE {SNAPSHOT_TABLE} IS {_literal(_SNAPSHOT_COMMENT)}")
        con.execute("CHECKPOINT")
    if _wal(path).exists():
        raise OSError(errno.EIO, f"DuckDB left a WAL next to the staged snapshot {path}")


def _copy(source: Path, target: Path) -> str:
    """Copy `source` to the new file `target`; return how: a reflink where the filesystem can share blocks
    (instant, no extra space until either side changes), else an in-kernel copy, else read and write."""
    with open(source, "rb") as src, open(target, "xb") as dst:
        method = _reflink(src, dst) or _copy_file_range(src, dst) or _copy_stream(src, dst)
        if os.fstat(dst.fileno()).st_size != os.fstat(src.fileno()).st_size:
            raise OSError(errno.EIO, f"short copy of {source} to {target}")
    return method


def _reflink(src, dst) -> str | None:
    if fcntl is None:
        return None
    try:
        fcntl.ioctl(dst.fileno(), _FICLONE, src.fileno())
    except OSError as exc:
        if exc.errno not in _UNSUPPORTED:
            raise
        return None
    return "reflink"


def _copy_file_range(src, dst) -> str | None:
    copy_file_range = getattr(os, "copy_file_range", None)  # Linux only
    if copy_file_range is None:
        return None
    size, copied = os.fstat(src.fileno()).st_size, 0
    try:
        while copied < size:
            n = copy_file_range(src.fileno(), dst.fileno(), size - copied)
            if n == 0:
                break
            copied += n
    except OSError as exc:
        if copied or exc.errno not in _UNSUPPORTED:
            raise
        return None
    return "copy_file_range"


def _copy_stream(src, dst) -> str:
    shutil.copyfileobj(src, dst, 16 << 20)
    return "copy"


def _fsync(path: Path) -> None:
    """fsync a file, or a directory to make a rename in it durable (where directories can be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except (IsADirectoryError, PermissionError):
        if path.is_dir():
            return
        raise
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _remove_leftovers(target: Path) -> None:
    """Staged files of a publish that died (killed mid-copy); the writer lock guarantees none is in progress."""
    for leftover in target.parent.glob(glob.escape(target.name + _STAGED) + "*"):
        _remove(leftover)
