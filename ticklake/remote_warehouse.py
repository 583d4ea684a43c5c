"""The pipeline's DuckDB file and the analysts' snapshot kept whole in object storage (the production profile).

DuckDB has one writer per file and no network protocol, so workers on several machines cannot share one open
database. The production profile keeps the database where every worker reaches it, as an object:

- A writer takes the cross-machine lock (a PostgreSQL advisory lock), downloads the pipeline's file only when
  the stored object changed since its own copy (ETag), works on the local copy, checkpoints, and uploads the
  whole file before releasing the lock. An upload becomes visible at once or not at all, so the stored object is
  always a committed state; a worker killed mid-write leaves the previous one (and the lock is released with
  its connection). A failed write drops the local copy, so the next writer starts from the stored object.
- `publish` uploads the analysts' snapshot next to it (`warehouse.duckdb`): analysts copy it down with
  `python -m ticklake.remote_warehouse pull` (or ATTACH it read-only over DuckDB's httpfs), and nothing they
  do can lock the pipeline.

The cost is one download per writer that did not write last and one upload per write: a few seconds for a
database of hundreds of MB on the same region's S3, which is what a daily-bar warehouse of many years weighs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import uuid
from pathlib import Path

import pyarrow.fs as pafs

from ticklake.object_store import Location, ObjectStoreError, location, request_failed

PIPELINE_KEY = "state/pipeline.duckdb"
SNAPSHOT_KEY = "warehouse.duckdb"
_CHUNK = 8 << 20


class RemoteDatabase:
    """Object-storage copies of the pipeline's file and the analysts' snapshot under one storage location."""

    def __init__(self, where: Location):
        self.where = where
        self.pipeline_key = where.join(PIPELINE_KEY)
        self.snapshot_key = where.join(SNAPSHOT_KEY)

    def pull(self, local: Path) -> bool:
        """Make `local` the stored pipeline file (downloading only when it changed); True when it downloaded.
        With nothing stored yet, a local copy from elsewhere is moved aside and the writer starts empty."""
        marker = _marker(local)
        known = marker.read_text() if marker.exists() and local.exists() else None
        try:
            info = self.where.filesystem.get_file_info(self.pipeline_key)
        except OSError as exc:
            raise self._error("look up", self.pipeline_key, exc) from None
        if info.type == pafs.FileType.NotFound:
            if local.exists():
                os.replace(local, local.with_name(f"{local.name}.orphaned-{uuid.uuid4().hex[:8]}"))
            _remove(_wal(local))
            marker.unlink(missing_ok=True)
            return False
        if known is not None and known == self._etag(self.pipeline_key):
            return False
        local.parent.mkdir(parents=True, exist_ok=True)
        staged = local.with_name(f"{local.name}.download-{uuid.uuid4().hex}")
        try:
            etag = self._download(self.pipeline_key, staged)
            _remove(_wal(local))  # a WAL belongs to the copy it sat next to, never to the downloaded one
            os.replace(staged, local)
        finally:
            _remove(staged)
        marker.write_text(etag)
        return True

    def push(self, local: Path) -> None:
        """Upload the (checkpointed) pipeline file whole and remember which version the local copy is."""
        self._upload(local, self.pipeline_key)
        _marker(local).write_text(self._etag(self.pipeline_key))

    def forget(self, local: Path) -> None:
        """Distrust the local copy (a write failed on it): the next `pull` downloads the stored one."""
        _marker(local).unlink(missing_ok=True)

    def publish(self, snapshot: Path) -> None:
        """Upload the analysts' snapshot whole, replacing the previous one in a single step."""
        self._upload(snapshot, self.snapshot_key)

    def pull_snapshot(self, target: Path) -> Path:
        """Copy the analysts' snapshot down to `target` (replaced atomically, read-only)."""
        target.parent.mkdir(parents=True, exist_ok=True)
        staged = target.with_name(f"{target.name}.download-{uuid.uuid4().hex}")
        try:
            self._download(self.snapshot_key, staged)
            os.chmod(staged, 0o444)
            os.replace(staged, target)
        finally:
            _remove(staged)
        return target

    # -- I/O ----------------------------------------------------------------------------------------
    def _etag(self, key: str) -> str:
        try:
            with self.where.filesystem.open_input_file(key) as stream:
                return _etag_of(stream.metadata())
        except OSError as exc:
            raise self._error("look up", key, exc) from None

    def _download(self, key: str, target: Path) -> str:
        try:
            with self.where.filesystem.open_input_stream(key) as src, open(target, "wb") as dst:
                etag = _etag_of(src.metadata())
                shutil.copyfileobj(src, dst, _CHUNK)
                dst.flush()
                os.fsync(dst.fileno())
        except FileNotFoundError:
            raise ObjectStoreError(f"{self.where.describe(key)} does not exist: has a run published it yet?") from None
        except OSError as exc:
            raise self._error("download", key, exc) from None
        return etag

    def _upload(self, source: Path, key: str) -> None:
        try:
            with open(source, "rb") as src, self.where.filesystem.open_output_stream(key) as dst:
                shutil.copyfileobj(src, dst, _CHUNK)
        except OSError as exc:
            raise self._error("upload", key, exc) from None

    def _error(self, action: str, key: str, exc: OSError) -> ObjectStoreError:
        """The lake's message for a failed request (what to check, the store's words scrubbed of secrets), plus
        what it means here."""
        error = request_failed(exc, self.where.describe(key), action)
        return ObjectStoreError(f"{error} The stored database is unchanged; re-run once the store answers.")


def _etag_of(metadata: dict) -> str:
    value = metadata.get("ETag") or metadata.get(b"ETag") or b""
    text = value.decode() if isinstance(value, bytes) else str(value)
    return text.strip('"') or metadata.get("Last-Modified", "")


def _marker(local: Path) -> Path:
    return local.with_name(local.name + ".remote-etag")


def _wal(path: Path) -> Path:
    return path.with_name(path.name + ".wal")


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    """`python -m ticklake.remote_warehouse pull [--to PATH]`: the analysts' snapshot from TICKLAKE_STORAGE_URL."""
    from ticklake import settings

    parser = argparse.ArgumentParser(prog="python -m ticklake.remote_warehouse",
                                     description="Copy the published DuckDB snapshot down from object storage.")
    parser.add_argument("command", choices=["pull"])
    parser.add_argument("--to", type=Path, default=None,
                        help="where to put it (default $TICKLAKE_HOME/warehouse.duckdb)")
    args = parser.parse_args(argv)
    url = settings.storage_url()
    if url is None:
        print("TICKLAKE_STORAGE_URL is not set: the snapshot is local already, at "
              f"{settings.Paths(settings.home()).warehouse}", file=sys.stderr)
        return 2
    target = args.to or settings.Paths(settings.home()).warehouse
    path = RemoteDatabase(location(url)).pull_snapshot(target)
    print(f"{path}  ({path.stat().st_size / 1e6:,.1f} MB): duckdb.connect({str(path)!r}, read_only=True)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
