"""The Parquet lake: one file per partition and source in hive layout, replaced atomically.

    <home>/lake/klines_daily/region=US/month=2024-01/itick.parquet
    <home>/lake/securities/region=US/itick.parquet
    s3://bucket/prefix/lake/klines_daily/region=US/month=2024-01/itick.parquet

The folder levels come from each dataset's `lake_keys` in the data dictionary; the file is named after the source
that wrote it, so a second source of the same market has its own file and one source's run never replaces
another's rows (`read_parquet('.../*/*/*.parquet')` reads every source). Rows are sorted by the dataset's sort key
and written with fixed settings, so the same data always gives the same bytes, on either backend.

The lake's root chooses the backend; the layout and the keys relative to the root (`Lake.relative`, the
`lake_partitions.path` column) are the same on both:

- A local directory (`Lake(path)`): a partition is written to a temporary name in its own folder, fsynced, then
  `os.replace`d over its file, so readers see either the old or the new file, never a torn one, and a run that dies
  leaves the previous version in place (its temporary files are removed by the next writer:
  `remove_stale_temp_files`). Paths are `pathlib.Path`s.
- S3-compatible object storage (`Lake.at("s3://bucket/prefix/lake")`, through pyarrow's S3 filesystem configured by
  `ticklake.object_store`): each object is encoded whole in memory, then stored by one upload that the store makes
  visible only when it completes, so readers see the old or the new object, never a torn one, and a failed upload
  leaves the previous version; there are no temporary objects and no renames. Paths are `ObjectPath`s
  (`bucket/key`; `str()` gives the `s3://` URL). A request the store does not answer or refuses (after the SDK's
  retries) raises `ticklake.object_store.ObjectStoreError` naming the object and what to check.

Everything that touches a file goes through the lake (`stat`, `read_file`, `row_counts`, `exists`), never through the
path itself, so callers work on both.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import datetime as dt
import errno
import os
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ticklake.dictionary import SOURCE_PATTERN, Dataset
from ticklake.object_store import Location, is_remote_url, location, request_failed

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


@dataclass(frozen=True, order=True)
class ObjectPath:
    """An object of an S3 lake: `bucket/key`, the name pyarrow's S3 filesystem takes; `str()` is its `s3://` URL.

    The object-storage counterpart of `pathlib.Path` in the lake's API: it joins and names (`/`, `name`, `parent`)
    but does no I/O; sizes, times and contents come from the lake (`Lake.stat`, `Lake.read_file`)."""

    path: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", self.path.strip("/"))

    def __truediv__(self, part: str) -> ObjectPath:
        return ObjectPath(f"{self.path}/{str(part).strip('/')}")

    @property
    def name(self) -> str:
        return self.path.rpartition("/")[2]

    @property
    def parent(self) -> ObjectPath:
        return ObjectPath(self.path.rpartition("/")[0])

    def __str__(self) -> str:
        return f"s3://{self.path}"

    def __repr__(self) -> str:
        return f"ObjectPath({str(self)!r})"


LakePath = Path | ObjectPath  # a file of a local lake, an object of an S3 lake


@dataclass(frozen=True)
class LakeFile:
    """A partition file as a listing found it."""

    path: LakePath
    size: int  # bytes
    mtime_ns: int  # as `Lake.stat` gives it (whole seconds on object storage)


class Lake:
    def __init__(self, root: Path | str | Location):
        """`root` is a local directory (a Path or a plain path string), an `s3://bucket/prefix` URL, or a parsed
        `ticklake.object_store.Location`."""
        if isinstance(root, str) and is_remote_url(root):
            root = location(root)
        if isinstance(root, Location):
            self.root: LakePath = ObjectPath(root.base) if root.is_remote else Path(root.base)
            self.filesystem: pafs.FileSystem = root.filesystem if root.is_remote else _LOCAL
        else:
            self.root, self.filesystem = Path(root), _LOCAL

    @classmethod
    def at(cls, url: str | Path | Location) -> Lake:
        """The lake at a storage URL: `s3://bucket/prefix/lake`, or a local directory (a path or a `file://` URL)."""
        return cls(url if isinstance(url, Location) else location(str(url)))

    @property
    def is_remote(self) -> bool:
        return isinstance(self.root, ObjectPath)

    def __repr__(self) -> str:
        return f"Lake({str(self.root)!r})"

    def dataset_dir(self, dataset: Dataset) -> LakePath:
        return self.root / dataset.name

    def partition_path(self, dataset: Dataset, **values: object) -> LakePath:
        """The file of one partition of one source; `values` name every lake key and the source
        (region="US", month="2024-06", source="itick")."""
        names = [k.name for k in dataset.lake_keys]
        if not dataset.in_lake or set(values) != {*names, "source"}:
            raise ValueError(f"{dataset.name} partitions the lake by {(*names, 'source')}, got {tuple(values)}")
        return self.partition_dir(dataset, **{n: values[n] for n in names}) / file_name(str(values["source"]))

    def partition_dir(self, dataset: Dataset, **values: object) -> LakePath:
        path = self.dataset_dir(dataset)
        for key in dataset.lake_keys:
            path /= f"{key.name}={_format(key.value(values[key.name]))}"
        return path

    def glob(self, dataset: Dataset) -> str:
        """A DuckDB/Arrow glob over every partition file of `dataset`, every source (an `s3://` URL on S3)."""
        depth = "/".join("*" for _ in dataset.lake_keys)
        return str(self.dataset_dir(dataset) / depth / f"*{SUFFIX}")

    def partitions(self, dataset: Dataset, **fixed: str) -> dict[tuple[str, ...], LakePath]:
        """Existing partition files, keyed by their lake-key values in `lake_keys` order then the source
        (optionally only those whose keys equal `fixed`, e.g. region="US" or source="itick")."""
        return {key: found.path for key, found in self.partition_files(dataset, **fixed).items()}

    def partition_files(self, dataset: Dataset, **fixed: str) -> dict[tuple[str, ...], LakeFile]:
        """`partitions` with each file's size and modification time, from one listing (one LIST request per
        thousand objects on S3, rather than a HEAD per object): what `store.repair` compares with the warehouse."""
        names = [k.name for k in dataset.lake_keys]
        folder, levels = self.dataset_dir(dataset), list(names)
        while levels and levels[0] in fixed:  # list only the subtree the leading fixed keys name
            folder = folder / f"{levels[0]}={fixed[levels[0]]}"
            levels.pop(0)
        leading = [fixed[n] for n in names[: len(names) - len(levels)]]
        found = {}
        for relative, info in self._list(folder):
            *folders, name = relative.split("/")
            if len(folders) != len(levels) or not name.endswith(SUFFIX) or name == LEGACY_FILE_NAME \
                    or name.startswith(_TMP_PREFIX):
                continue
            values = [_level_value(level, part, fixed.get(level)) for level, part in zip(levels, folders, strict=True)]
            source = name[: -len(SUFFIX)]
            if None in values or fixed.get("source", source) != source:
                continue
            found[(*leading, *values, source)] = LakeFile(folder / relative, info.size, self._mtime_ns(info))
        return dict(sorted(found.items()))

    def legacy_files(self, dataset: Dataset, region: str) -> list[LakePath]:
        """`data.parquet` files of the former single-source layouts under one region (`store.repair` migrates them
        on a local lake)."""
        folder = self.dataset_dir(dataset) / f"region={region}"
        return sorted((folder / relative for relative, _ in self._list(folder)
                       if relative.rpartition("/")[2] == LEGACY_FILE_NAME), key=str)

    def relative(self, path: LakePath) -> str:
        """`path` relative to the lake's root, `/`-separated: the same key on every backend (`lake_partitions.path`)."""
        if isinstance(self.root, ObjectPath):
            if not isinstance(path, ObjectPath) or not path.path.startswith(self.root.path + "/"):
                raise ValueError(f"{path} is not in the lake at {self.root}")
            return path.path[len(self.root.path) + 1:]
        return Path(path).relative_to(self.root).as_posix()

    def exists(self, path: LakePath) -> bool:
        if not isinstance(path, ObjectPath):
            return Path(path).exists()
        with self._requests("look up", path):
            return self.filesystem.get_file_info(path.path).type == pafs.FileType.File

    def stat(self, path: LakePath) -> tuple[int, int]:
        """(size in bytes, modification time in ns) of a lake file: what `lake_partitions` records, so `repair` can
        tell whether a file is still the one the warehouse loaded. FileNotFoundError when there is none.

        On object storage the time is the object's Last-Modified, which S3 keeps to the second (and HEAD reports
        to the second), so it is truncated to whole seconds for listings and HEADs to agree. Drift detection there
        is therefore weaker than on a local disk: an object rewritten with the same size within the same second as
        the version the warehouse recorded, whose warehouse load then failed, would go unnoticed. The object's ETag
        would close that gap, but pyarrow's listings do not carry it (checking it would cost a HEAD per object on
        every repair, where one LIST covers a thousand) and `lake_partitions` has no column for it; the row-count
        check (`klines_daily_lake_matches_warehouse`) still catches a mismatch that changes the rows.
        """
        if not isinstance(path, ObjectPath):
            st = os.stat(path)
            return st.st_size, st.st_mtime_ns
        with self._requests("look up", path):
            info = self.filesystem.get_file_info(path.path)
        if info.type != pafs.FileType.File:
            raise FileNotFoundError(errno.ENOENT, "no such object", str(path))
        return info.size, self._mtime_ns(info)

    def read_file(self, path: LakePath, *, schema: pa.Schema | None = None,
                  columns: Sequence[str] | None = None) -> pa.Table:
        """One lake file (optionally in `schema`, optionally only `columns`)."""
        columns = None if columns is None else list(columns)
        if not isinstance(path, ObjectPath):
            return pq.read_table(path, schema=schema, columns=columns)
        with self._requests("read", path):
            return pq.read_table(path.path, schema=schema, columns=columns, filesystem=self.filesystem)

    def row_counts(self, paths: Iterable[LakePath]) -> list[int]:
        """Rows in each file, from its Parquet footer (no data is read), several files at a time."""
        def count(path: LakePath) -> int:
            with self._requests("read the Parquet footer of", path):
                return pq.read_metadata(self._fs_path(path), filesystem=self.filesystem).num_rows

        return _all(_io_pool(), count, list(paths))

    def remove_stale_temp_files(self, dataset: Dataset, *, now: float | None = None) -> list[Path]:
        """Delete temporary files left by writers that died (a killed run, a full disk).

        A temp file is stale when it was written on this host by a process that no longer exists, or when it is
        older than a day (another host's dead writer); a live writer's temp files are never touched. Object storage
        has none: an upload that never completed is invisible (the store keeps its parts until the bucket's
        lifecycle rule for incomplete multipart uploads removes them).
        """
        if self.is_remote:
            return []
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

    def write(self, dataset: Dataset, table: pa.Table, **values: object) -> LakePath:
        """Atomically replace one partition with `table` (already in the dataset's Arrow schema)."""
        return self.write_many(dataset, [(values, table)])[0]

    def write_many(self, dataset: Dataset, parts: Sequence[tuple[Mapping[str, object], pa.Table]]) -> list[LakePath]:
        """Atomically replace several partitions.

        Locally, all files are staged under temporary names (in parallel: Parquet encoding releases the GIL), made
        durable, and only then renamed over their targets, so every partition is either its old or its new
        version, never torn, whatever happens in between.

        On object storage every object is encoded first (a failure there replaces none), then each is uploaded
        whole: each object is its old or its new version, never torn, but an upload failure can leave some objects
        new and others old (S3 has no multi-object transaction). The caller's warehouse load does not run then, so
        the status rows still describe the old versions and the next `store.repair` reloads whichever changed.
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
        if self.is_remote:
            encoded = _all(_pool(), _encode_parquet, [table for _, table in parts])
            _all(_io_pool(), self._put, targets, encoded)
            return targets
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
        if not self.exists(path):
            return None
        return self.read_file(path, schema=dataset.arrow_schema)

    @staticmethod
    def from_arrow(dataset: Dataset, table: pa.Table) -> pd.DataFrame:
        frame = table.to_pandas(types_mapper={pa.string(): pd.StringDtype()}.get, date_as_object=False)
        for f in dataset.fields:
            if f.type == "date":
                frame[f.name] = frame[f.name].astype("datetime64[ms]")
            elif f.type == "bool" and f.nullable:
                frame[f.name] = frame[f.name].astype("boolean")
        return frame

    # ------------------------------------------------------------------ backend plumbing
    def _put(self, target: ObjectPath, data: pa.Buffer) -> None:
        """Store one object whole. pyarrow opens a multipart upload, which the store makes visible only when
        `close()` completes it: until then readers see the previous version, and a failure leaves it in place."""
        with self._requests("write", target):
            stream = self.filesystem.open_output_stream(target.path)
            # Not a `with` block: leaving one on an error closes the stream, which would complete the upload with
            # whatever it holds so far. A stream whose close failed is marked closed, so nothing completes it later.
            stream.write(data)
            stream.close()

    def _list(self, folder: LakePath) -> list[tuple[str, pafs.FileInfo]]:
        """Every file under `folder` at any depth, with its path relative to `folder` (none if it does not exist)."""
        base = self._fs_path(folder)
        with self._requests("list", folder):
            infos = self.filesystem.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
        return [(info.path[len(base) + 1:], info) for info in infos if info.type == pafs.FileType.File]

    def _fs_path(self, path: LakePath) -> str:
        return path.path if isinstance(path, ObjectPath) else str(path)

    def _mtime_ns(self, info: pafs.FileInfo) -> int:
        mtime = info.mtime_ns or 0
        return mtime - mtime % 1_000_000_000 if self.is_remote else mtime

    @contextlib.contextmanager
    def _requests(self, action: str, path: LakePath) -> Iterator[None]:
        """Object-store failures as ObjectStoreError naming the object and what to check; a missing object stays a
        FileNotFoundError, and a local lake's errors pass through unchanged."""
        try:
            yield
        except FileNotFoundError:
            raise
        except OSError as exc:
            if not self.is_remote:
                raise
            raise request_failed(exc, str(path), action) from exc


def _level_value(level: str, folder: str, wanted: str | None) -> str | None:
    """The value of a `<level>=<value>` folder name; None when it is not one, or not the `wanted` value."""
    name, sep, value = folder.partition("=")
    if name != level or not sep or (wanted is not None and value != wanted):
        return None
    return value


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


_PARQUET_OPTIONS = {"compression": "zstd", "row_group_size": 1_000_000, "write_statistics": True,
                    "use_dictionary": True}


def _write_parquet(table: pa.Table, path: Path) -> None:
    pq.write_table(table, str(path), filesystem=_LOCAL, **_PARQUET_OPTIONS)


def _encode_parquet(table: pa.Table) -> pa.Buffer:
    """The Parquet file of `table` in memory (the same bytes `_write_parquet` puts on disk)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **_PARQUET_OPTIONS)
    return sink.getvalue()


@lru_cache(maxsize=1)
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="lake-write")


@lru_cache(maxsize=1)
def _io_pool() -> ThreadPoolExecutor:
    """Object-store requests wait on the network, not the CPU: more of them at once than there are cores."""
    return ThreadPoolExecutor(max_workers=8, thread_name_prefix="lake-io")


def _all(pool: ThreadPoolExecutor, fn: Callable, *args: Sequence) -> list:
    """fn over the argument lists in `pool`; raises the first failure (in order) only once every call has ended, so
    nothing is still writing when the caller hears of it."""
    futures = [pool.submit(fn, *call) for call in zip(*args, strict=True)]
    wait(futures)
    return [future.result() for future in futures]


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
