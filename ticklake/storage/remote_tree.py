"""A local directory kept in step with a folder in object storage, file by file (the production profile).

The Great Expectations project (its validation results and the Data Docs site rendered from them) is a tree of
small files that each worker writes where its check step runs. To give every worker the whole history, and the
team one Data Docs site, the check step pulls what other workers stored, validates, and pushes what it wrote,
under the cross-machine lock. Each file is one object written whole, so a reader never sees a torn page; nothing
is deleted on either side.

A manifest next to the tree remembers, per file, the local (size, mtime) and the stored (size, mtime) last seen
in step: a pull downloads what changed in the store since, a push uploads what changed here since.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import pyarrow.fs as pafs

from ticklake.storage.object_store import Location, request_failed

_CHUNK = 1 << 20


class RemoteTree:
    """`<location>/<prefix>/...` mirrored by a local directory."""

    def __init__(self, where: Location, prefix: str):
        self.where = where
        self.root = where.join(prefix)

    def url(self, relative: str) -> str:
        """How a stored file is named to a person: `s3://bucket/prefix/<relative>`."""
        return self.where.describe(f"{self.root}/{relative}")

    def pull(self, local: Path) -> int:
        """Download every stored file that changed since this tree was last in step with it; how many."""
        manifest = _Manifest.load(local)
        pulled = 0
        for relative, stored in self.listing().items():
            target = local / relative
            if manifest.stored.get(relative) == stored and target.exists():
                continue
            self._download(relative, target)
            manifest.mark(relative, target, stored)
            pulled += 1
        manifest.save()
        return pulled

    def push(self, local: Path) -> int:
        """Upload every local file written since this tree was last in step with the store; how many."""
        manifest = _Manifest.load(local)
        pushed = 0
        # Index pages last: one stored before the pages it links to would send a reader to a page not there yet.
        files = sorted((p for p in local.rglob("*") if p.is_file() and p.name != _Manifest.NAME),
                       key=lambda p: (p.name == "index.html", p.as_posix()))
        for path in files:
            relative = path.relative_to(local).as_posix()
            if manifest.local.get(relative) == _stat(path):
                continue
            self._upload(path, relative)
            manifest.mark(relative, path, self._stat_stored(relative))
            pushed += 1
        manifest.save()
        return pushed

    def listing(self) -> dict[str, list[int]]:
        """Every stored file, by path relative to the folder: its (size, mtime_ns)."""
        selector = pafs.FileSelector(self.root, recursive=True, allow_not_found=True)
        try:
            infos = self.where.filesystem.get_file_info(selector)
        except OSError as exc:
            raise request_failed(exc, self.url(""), "list") from None
        return {info.path[len(self.root) + 1:]: _stored_stat(info)
                for info in infos if info.type == pafs.FileType.File}

    # -- I/O ----------------------------------------------------------------------------------------
    def _stat_stored(self, relative: str) -> list[int]:
        try:
            return _stored_stat(self.where.filesystem.get_file_info(f"{self.root}/{relative}"))
        except OSError as exc:
            raise request_failed(exc, self.url(relative), "look up") from None

    def _download(self, relative: str, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        staged = target.with_name(f".{target.name}.download-{uuid.uuid4().hex[:8]}")
        try:
            with self.where.filesystem.open_input_stream(f"{self.root}/{relative}") as src, open(staged, "wb") as dst:
                shutil.copyfileobj(src, dst, _CHUNK)
            os.replace(staged, target)
        except OSError as exc:
            raise request_failed(exc, self.url(relative), "download") from None
        finally:
            staged.unlink(missing_ok=True)

    def _upload(self, path: Path, relative: str) -> None:
        try:
            if not self.where.is_remote:  # a directory standing in for the store (tests): folders must exist
                self.where.filesystem.create_dir(f"{self.root}/{relative}".rsplit("/", 1)[0], recursive=True)
            with open(path, "rb") as src, self.where.filesystem.open_output_stream(f"{self.root}/{relative}") as dst:
                shutil.copyfileobj(src, dst, _CHUNK)
        except OSError as exc:
            raise request_failed(exc, self.url(relative), "upload") from None


class _Manifest:
    """What was in step, per relative path: `local` (size, mtime_ns here) and `stored` (size, mtime_ns there)."""

    NAME = ".remote-manifest.json"

    def __init__(self, path: Path, local: dict[str, list[int]], stored: dict[str, list[int]]):
        self.path, self.local, self.stored = path, local, stored

    @classmethod
    def load(cls, root: Path) -> _Manifest:
        path = root / cls.NAME
        try:
            data = json.loads(path.read_text())
            return cls(path, data["local"], data["stored"])
        except (OSError, ValueError, KeyError):  # none yet, or torn by a killed worker: compare everything again
            return cls(path, {}, {})

    def mark(self, relative: str, path: Path, stored: list[int]) -> None:
        self.local[relative], self.stored[relative] = _stat(path), stored

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        staged = self.path.with_name(f"{self.path.name}.{uuid.uuid4().hex[:8]}")
        staged.write_text(json.dumps({"local": self.local, "stored": self.stored}))
        os.replace(staged, self.path)


def _stat(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _stored_stat(info: pafs.FileInfo) -> list[int]:
    return [info.size or 0, info.mtime_ns or 0]
