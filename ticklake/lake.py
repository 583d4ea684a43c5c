"""The Parquet lake: one file per partition and source in hive layout, replaced atomically.

    <home>/lake/klines_daily/region=US/month=2024-01/itick.parquet
    <home>/lake/securities/region=US/itick.parquet

The folder levels come from each dataset's `lake_keys` in the data dictionary; the file is named after the source
that wrote it, so a second source of the same market has its own file and one source's run never replaces
another's rows (`read_parquet('.../*/*/*.parquet')` reads every source). A partition is written to a
temporary name in its own folder, fsynced, then `os.replace`d over its file, so readers see either the
old or the new file, never a torn one, and a run that dies leaves the previous version in place (its
temporary files are removed by the next writer: `remove_stale_temp_files`). Rows are sorted by the dataset's
sort key and written with fixed settings, so the same data always gives the same bytes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime as dt
import os
import re
import socket
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ticklake.dictionary import SOURCE_PATTERN, Dataset

SUFFIX = ".parquet"
LEGACY_FILE_NAME = "data.parquet"  # the single-source layout before per-source files (migrated by store.repair)
_TMP_PREFIX = ".tmp-"
_HOST = socket.gethostname().replace("-", "_")
STALE_TEMP_AGE_S = 24 * 3600  # a temp file this old is garbage whoever wrote it


def _format(value: object) -> str:
    if isinstance(value, pd.Timestamp):
        value = value.date()
    text = value.isoformat() if isinstance(value, dt.date) else str(value)
    if not text or "/" in text or text in {".", ".."} or "\x00" in text:
        raise ValueError(f"invalid partition value {value!r}")
    return text


class Lake:
    def __init__(self, root: Path):
        self.root = Path(root)

    def dataset_dir(self, dataset: Dataset) -> Path:
        return self.root / dataset.name

    def partition_path(self, dataset: Dataset, **values: object) -> Path:
        """The file of one partition of one source; `values` name every lake key and the source
        (region="US", month="2024-06", source="itick")."""
        names = [k.name for k in dataset.lake_keys]
        if not dataset.in_lake or set(values) != {*names, "source"}:
            raise ValueError(f"{dataset.name} partitions the lake by {(*names, 'source')}, got {tuple(values)}")
        return self.partition_dir(dataset, **{n: values[n] for n in names}) / file_name(str(values["source"]))

    def partition_dir(self, dataset: Dataset, **values: object) -> Path:
        path = self.dataset_dir(dataset)
        for key in dataset.lake_keys:
            path /= f"{key.name}={_format(key.value(values[key.name]))}"
        return path

    def glob(self, dataset: Dataset) -> str:
        """A DuckDB/Arrow glob over every partition file of `dataset`, every source."""
        depth = "/".join("*" for _ in dataset.lake_keys)
        return str(self.dataset_dir(dataset) / depth / f"*{SUFFIX}")

    def partitions(self, dataset: Dataset, **fixed: str) -> dict[tuple[str, ...], Path]:
        """Existing partition files, keyed by their lake-key values in `lake_keys` order then the source
        (optionally only those whose keys equal `fixed`, e.g. region="US" or source="itick")."""
        pattern = "/".join(f"{k.name}={fixed.get(k.name, '*')}" for k in dataset.lake_keys)
        found = {}
        for path in self.dataset_dir(dataset).glob(f"{pattern}/{fixed.get('source', '*')}{SUFFIX}"):
            if path.name == LEGACY_FILE_NAME or path.name.startswith(_TMP_PREFIX):
                continue
            parts = path.relative_to(self.dataset_dir(dataset)).parts[:-1]
            found[(*(part.split("=", 1)[1] for part in parts), path.name[: -len(SUFFIX)])] = path
        return dict(sorted(found.items()))

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def remove_stale_temp_files(self, dataset: Dataset, *, now: float | None = None) -> list[Path]:
        """Delete temporary files left by writers that died (a killed run, a full disk).

        A temp file is stale when it was written on this host by a process that no longer exists, or when it is
        older than a day (another host's dead writer); a live writer's temp files are never touched.
        """
        now = time.time() if now is None else now
        removed = []
        for path in self.dataset_dir(dataset).rglob(f"{_TMP_PREFIX}*"):
            if _is_stale(path.name, path, now):
                path.unlink(missing_ok=True)
                removed.append(path)
        return removed

    @staticmethod
    def to_arrow(dataset: Dataset, frame: pd.DataFrame) -> pa.Table:
        ordered = frame.sort_values(list(dataset.sort_by), kind="stable") if dataset.sort_by else frame
        return pa.Table.from_pandas(ordered[dataset.columns], schema=dataset.arrow_schema, preserve_index=False)

    def write(self, dataset: Dataset, table: pa.Table, **values: object) -> Path:
        """Atomically replace one partition with `table` (already in the dataset's Arrow schema)."""
        return self.write_many(dataset, [(values, table)])[0]

    def write_many(self, dataset: Dataset, parts: Sequence[tuple[Mapping[str, object], pa.Table]]) -> list[Path]:
        """Atomically replace several partitions.

        All files are staged under temporary names (in parallel: Parquet encoding releases the GIL), made
        durable, and only then renamed over their targets, so every partition is either its old or its new
        version, never torn, whatever happens in between.
        """
        expected = dataset.arrow_schema.remove_metadata()
        targets = []
        for values, table in parts:
            if table.schema.remove_metadata() != expected:
                raise TypeError(f"{dataset.name}: table schema does not match the data dictionary")
            foreign = set(pc.unique(table.column("source")).to_pylist()) - {values.get("source")}
            if foreign:
                raise ValueError(f"{dataset.name}: rows of source(s) {sorted(map(str, foreign))} cannot be written to "
                                 f"the file of source {values.get('source')!r}")
            targets.append(self.partition_path(dataset, **values))
        for folder in {t.parent for t in targets}:
            folder.mkdir(parents=True, exist_ok=True)
        staged = [t.with_name(_temp_name()) for t in targets]
        try:
            list(_pool().map(_write_parquet, [table for _, table in parts], staged))
            _make_durable(staged)
            for tmp, target in zip(staged, targets, strict=True):
                os.replace(tmp, target)
        finally:
            for tmp in staged:
                tmp.unlink(missing_ok=True)
        _make_durable(sorted({t.parent for t in targets}))
        return targets

    def read(self, dataset: Dataset, **values: object) -> pd.DataFrame | None:
        table = self.read_table(dataset, **values)
        return None if table is None else self.from_arrow(dataset, table)

    def read_table(self, dataset: Dataset, **values: object) -> pa.Table | None:
        """One partition file of one source in the dataset's Arrow schema; None when there is none."""
        path = self.partition_path(dataset, **values)
        if not path.exists():
            return None
        return pq.read_table(path, schema=dataset.arrow_schema)

    @staticmethod
    def from_arrow(dataset: Dataset, table: pa.Table) -> pd.DataFrame:
        frame = table.to_pandas(types_mapper={pa.string(): pd.StringDtype()}.get, date_as_object=False)
        for f in dataset.fields:
            if f.type == "date":
                frame[f.name] = frame[f.name].astype("datetime64[ms]")
            elif f.type == "bool" and f.nullable:
                frame[f.name] = frame[f.name].astype("boolean")
        return frame


_LOCAL = pafs.LocalFileSystem()


def file_name(source: str) -> str:
    """`<source>.parquet`: a source name is a file name, so only a safe shape is accepted."""
    if not re.fullmatch(SOURCE_PATTERN, source) or source == LEGACY_FILE_NAME[: -len(SUFFIX)]:
        raise ValueError(f"invalid source name {source!r} (expected {SOURCE_PATTERN}, not 'data')")
    return source + SUFFIX


def _temp_name() -> str:
    """`.tmp-<host>-<pid>-<random>`: who wrote it, so the next writer knows whether its owner is alive."""
    return f"{_TMP_PREFIX}{_HOST}-{os.getpid()}-{uuid.uuid4().hex}"


def _is_stale(name: str, path: Path, now: float) -> bool:
    try:
        age = now - path.stat().st_mtime
    except FileNotFoundError:
        return False
    if age > STALE_TEMP_AGE_S:
        return True
    host, _, rest = name[len(_TMP_PREFIX):].partition("-")
    pid_text = rest.partition("-")[0]
    if host != _HOST or not pid_text.isdigit():
        return False  # another host's writer (or an old-style name): only the age rule applies
    return not _alive(int(pid_text))


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write_parquet(table: pa.Table, path: Path) -> None:
    pq.write_table(table, str(path), compression="zstd", row_group_size=1_000_000, write_statistics=True,
                   use_dictionary=True, filesystem=_LOCAL)


@lru_cache(maxsize=1)
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="lake-write")


_SYNCFS_THRESHOLD = 8  # beyond this many paths one filesystem-wide sync is far cheaper than fsync each


def _make_durable(paths: Sequence[Path]) -> None:
    """fsync files (or directories, to persist renames); one syncfs() when there are many."""
    if len(paths) > _SYNCFS_THRESHOLD and _syncfs(paths[0]):
        return
    for path in paths:
        _fsync(path)


def _fsync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # directories cannot be opened on some platforms; nothing more to do there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@lru_cache(maxsize=1)
def _libc():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


def _syncfs(path: Path) -> bool:
    """Linux syncfs(2) on the filesystem holding `path`; False where unavailable (caller fsyncs each)."""
    libc = _libc()
    if libc is None or not hasattr(libc, "syncfs"):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        return libc.syncfs(fd) == 0
    finally:
        os.close(fd)
