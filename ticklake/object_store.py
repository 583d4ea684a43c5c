"""Where TICKLAKE_STORAGE_URL points: a local directory (the embedded default) or S3-compatible object storage.

The production profile keeps the lake, the pipeline's database and the analysts' snapshot under one
`s3://bucket/prefix`, in the same layout as TICKLAKE_HOME. pyarrow's own S3 filesystem does the I/O (no extra
S3 library at run time); credentials, region and endpoint come from the standard AWS variables
(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION / AWS_DEFAULT_REGION,
AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL for an S3-compatible server) or the instance's role, and are never
logged or written anywhere: messages name the bucket and key only.

An object is written whole: S3 makes a PUT (or a completed multipart upload) visible at once, so a reader sees
the previous version or the new one, never a torn file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlparse

import pyarrow.fs as pafs

S3_SCHEME = "s3"


class ObjectStoreError(RuntimeError):
    """The object store could not be reached or refused a request; the message says which URL and what to check."""


@dataclass(frozen=True)
class Location:
    """A parsed storage URL: the filesystem to use and the base path inside it (`bucket/prefix` for S3)."""

    url: str
    filesystem: pafs.FileSystem
    base: str  # "bucket/prefix" on S3 (no trailing slash), an absolute directory locally

    @property
    def is_remote(self) -> bool:
        return self.filesystem.type_name != "local"

    def join(self, *parts: str) -> str:
        return "/".join([self.base.rstrip("/"), *(p.strip("/") for p in parts if p)])

    def describe(self, path: str) -> str:
        """How to name a path in a message: `s3://bucket/key` (never the credentials or the endpoint's secrets)."""
        return f"{S3_SCHEME}://{path}" if self.is_remote else path


def is_remote_url(url: str | None) -> bool:
    return bool(url) and urlparse(url).scheme == S3_SCHEME


def s3_filesystem() -> pafs.S3FileSystem:
    """pyarrow's S3 filesystem configured from the standard AWS variables (the endpoint included)."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    options: dict = {
        "region": region,
        # Transient failures (a store briefly unavailable, throttling) are retried with backoff by the SDK.
        "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=_retry_attempts()),
        "connect_timeout": 5.0,
        "request_timeout": 60.0,
    }
    if endpoint:
        parsed = urlparse(endpoint)
        options["endpoint_override"] = parsed.netloc or parsed.path
        options["scheme"] = parsed.scheme or "https"
    return pafs.S3FileSystem(**options)


def _retry_attempts() -> int:
    raw = os.environ.get("TICKLAKE_S3_MAX_ATTEMPTS", "").strip()
    if not raw:
        return 6
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"TICKLAKE_S3_MAX_ATTEMPTS={raw!r} is invalid: use a whole number of attempts >= 1")
    return int(raw)


def location(url: str) -> Location:
    """Parse `s3://bucket/prefix` or a local directory into a Location."""
    parsed = urlparse(url)
    if parsed.scheme == S3_SCHEME:
        if not parsed.netloc:
            raise ValueError(f"storage URL {url!r} names no bucket: use s3://bucket/prefix")
        base = "/".join(p for p in (parsed.netloc, parsed.path.strip("/")) if p)
        return Location(url, s3_filesystem(), base)
    if parsed.scheme not in ("", "file"):
        raise ValueError(f"storage URL {url!r} is not supported: use a local directory or s3://bucket/prefix")
    path = os.path.abspath(parsed.path if parsed.scheme == "file" else url)
    return Location(url, pafs.LocalFileSystem(), path)
