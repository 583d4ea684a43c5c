"""A vendor's drop: the files it delivered, in a local directory or under `s3://bucket/prefix`.

`list_drop` names the complete files (recursively, names relative to the drop, `/`-separated, sorted), leaving
out dotfiles (and anything under a dot-directory) and partial uploads (`*.tmp`, `*.part`, `*.partial`,
`*.filepart`): a vendor that uploads under a temporary name and renames when done is never read half-written.
On S3 an object appears whole, so what is listed is complete.

S3 goes through pyarrow's own S3 filesystem (no S3 library at run time), configured from the standard AWS
variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION / AWS_DEFAULT_REGION,
AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL) or the instance's role; messages name the bucket and key only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import posixpath
from dataclasses import dataclass
from urllib.parse import urlparse

import pyarrow.fs as pafs

PARTIAL_SUFFIXES = (".tmp", ".part", ".partial", ".filepart")


@dataclass(frozen=True)
class DropFile:
    """One delivered file: its name relative to the drop (`US/quandl_eod_20240628.csv.gz`), its size in bytes and
    when it was last modified (UTC)."""

    name: str
    size: int
    mtime: dt.datetime


def sha256_of(data: bytes) -> str:
    """The SHA-256 of `data`, hex: a delivery's identity (the same bytes again are a duplicate)."""
    return hashlib.sha256(data).hexdigest()


def is_listed(name: str) -> bool:
    """Whether a relative name is a complete delivery: no part starting with a dot, no partial-upload suffix."""
    parts = name.split("/")
    return bool(name) and not any(p.startswith(".") for p in parts) and not parts[-1].lower().endswith(
        PARTIAL_SUFFIXES)


def list_drop(location: str, *, filesystem: pafs.FileSystem | None = None) -> list[DropFile]:
    """The complete files under `location` (a local directory, `file://...` or `s3://bucket/prefix`), sorted by
    name. A drop that does not exist yet holds nothing. `filesystem` overrides the one the location implies."""
    fs, base = _resolve(location, filesystem)
    selector = pafs.FileSelector(base, recursive=True, allow_not_found=True)
    try:
        infos = fs.get_file_info(selector)
    except NotADirectoryError:
        raise ValueError(f"the drop {location} is a file, not a directory") from None
    except OSError as exc:
        raise OSError(f"could not list the drop {_describe(location)}: {exc}") from exc
    files = []
    prefix = base.rstrip("/") + "/"
    for info in infos:
        if info.type != pafs.FileType.File:
            continue
        name = info.path[len(prefix):] if info.path.startswith(prefix) else posixpath.basename(info.path)
        name = name.replace(os.sep, "/")
        if not is_listed(name):
            continue
        mtime = info.mtime
        if mtime is None:
            mtime = dt.datetime.fromtimestamp(0, dt.UTC)
        elif mtime.tzinfo is None:
            mtime = mtime.replace(tzinfo=dt.UTC)
        files.append(DropFile(name=name, size=int(info.size or 0), mtime=mtime.astimezone(dt.UTC)))
    return sorted(files, key=lambda f: f.name)


def read_drop(location: str, name: str, *, filesystem: pafs.FileSystem | None = None) -> bytes:
    """The bytes of the delivered file `name` (as `list_drop` names it) under `location`, exactly as delivered
    (never decompressed on the way: the hash is of the delivery, and the format reads the gzip itself)."""
    parts = name.replace("\\", "/").split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"{name!r} is not a file name inside the drop (a relative name, as list_drop gives it)")
    fs, base = _resolve(location, filesystem)
    path = "/".join([base.rstrip("/"), *parts])
    try:
        with fs.open_input_stream(path, compression=None) as stream:
            return stream.readall()
    except FileNotFoundError:
        raise FileNotFoundError(f"the drop {_describe(location)} has no file {name!r}") from None
    except OSError as exc:
        raise OSError(f"could not read {name!r} from the drop {_describe(location)}: {exc}") from exc


def _resolve(location: str, filesystem: pafs.FileSystem | None) -> tuple[pafs.FileSystem, str]:
    parsed = urlparse(location)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ValueError(f"the drop {location!r} names no bucket: use s3://bucket/prefix")
        base = "/".join(p for p in (parsed.netloc, parsed.path.strip("/")) if p)
        return filesystem or s3_filesystem(), base
    if parsed.scheme not in ("", "file"):
        raise ValueError(f"the drop {location!r} is not supported: use a local directory or s3://bucket/prefix")
    path = os.path.abspath(parsed.path if parsed.scheme == "file" else location)
    return filesystem or pafs.LocalFileSystem(), path


def s3_filesystem() -> pafs.S3FileSystem:
    """pyarrow's S3 filesystem from the standard AWS variables (the endpoint of an S3-compatible server included)."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    options: dict = {"region": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
                     "connect_timeout": 5.0, "request_timeout": 60.0}
    if endpoint:
        parsed = urlparse(endpoint)
        options["endpoint_override"] = parsed.netloc or parsed.path
        options["scheme"] = parsed.scheme or "https"
    return pafs.S3FileSystem(**options)


def _describe(location: str) -> str:
    """The location as a message names it: no user or password of a URL."""
    parsed = urlparse(location)
    if parsed.scheme == "s3":
        return f"s3://{parsed.hostname or ''}{parsed.path}"
    return location
