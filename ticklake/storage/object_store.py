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
import re
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
        "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=retry_attempts()),
        "connect_timeout": 5.0,
        "request_timeout": 60.0,
    }
    if endpoint:
        parsed = urlparse(endpoint)
        options["endpoint_override"] = parsed.netloc or parsed.path
        options["scheme"] = parsed.scheme or "https"
    return pafs.S3FileSystem(**options)


def retry_attempts() -> int:
    """TICKLAKE_S3_MAX_ATTEMPTS (default 6): how often a request to the object store is tried before it fails."""
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


# What the store's answer says, in the words pyarrow's AWS SDK errors use (`AWS Error <CODE> during <Operation>
# operation: <message>`), mapped to what the operator should check.
_UNREACHABLE = ("NETWORK_CONNECTION", "curlCode", "Could not connect", "Couldn't resolve", "Timeout", "timed out",
                "SERVICE_UNAVAILABLE", "SLOW_DOWN", "HTTP status 5")
_REFUSED_CREDENTIALS = ("ACCESS_DENIED", "AccessDenied", "INVALID_ACCESS_KEY_ID", "InvalidAccessKeyId",
                        "SIGNATURE_DOES_NOT_MATCH", "SignatureDoesNotMatch", "INVALID_CLIENT_TOKEN_ID", "InvalidToken",
                        "EXPIRED_TOKEN", "ExpiredToken", "MISSING_AUTHENTICATION_TOKEN", "UNRECOGNIZED_CLIENT",
                        "HTTP status 401", "HTTP status 403", "Forbidden", "credentials")
_NO_BUCKET = ("NO_SUCH_BUCKET", "NoSuchBucket", "bucket does not exist")
_SIGNED_FIELD = re.compile(r"(?i)\b(signature|credential|x-amz-security-token|x-amz-signature|x-amz-credential"
                           r"|authorization|aws_secret_access_key|aws_session_token)\s*[=:]\s*[^\s,;&\"']+")


def request_failed(exc: OSError, url: str, action: str) -> ObjectStoreError:
    """An ObjectStoreError for a request on `url` (`s3://bucket/key`) the store did not answer or refused: what
    failed, what to check, and the store's own words with anything secret taken out (the credentials never appear;
    the endpoint is named without any user or password in it). `exc` itself is scrubbed the same way, so it can stay
    chained as the cause."""
    reason = scrub(str(exc))
    exc.args = (reason,)
    bucket = url.removeprefix(f"{S3_SCHEME}://").split("/", 1)[0]
    if any(marker in reason for marker in _NO_BUCKET):
        hint = (f"bucket {bucket!r} does not exist at {endpoint_description()}: create it, or fix the bucket in the "
                f"storage URL (TICKLAKE_STORAGE_URL)")
    elif any(marker in reason for marker in _REFUSED_CREDENTIALS):
        hint = (f"the store refused the credentials: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and "
                f"AWS_SESSION_TOKEN, or the instance role) and that they may read and write bucket {bucket!r} at "
                f"{endpoint_description()}")
    elif any(marker in reason for marker in _UNREACHABLE):
        hint = (f"the store did not answer after {retry_attempts()} attempt(s): check that {endpoint_description()} "
                f"is the right endpoint and that it is up and reachable from this machine")
    else:
        hint = f"check the endpoint ({endpoint_description()}), the credentials and that bucket {bucket!r} exists"
    return ObjectStoreError(f"could not {action} {url}: {hint}. The store said: {reason}")


def endpoint_description() -> str:
    """Which endpoint requests go to, as a message names it: the variable and scheme://host:port (no user info)."""
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        endpoint = os.environ.get(name)
        if endpoint:
            parsed = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
            host = parsed.hostname or "?"
            port = f":{parsed.port}" if parsed.port else ""
            return f"{name}={parsed.scheme}://{host}{port}"
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return f"AWS S3 in {region} (no AWS_ENDPOINT_URL set)"


def scrub(text: str) -> str:
    """`text` without the values of the AWS credential variables or any signed request field."""
    for name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID"):
        value = os.environ.get(name, "")
        if len(value) >= 4:
            text = text.replace(value, "***")
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        password = urlparse(os.environ.get(name, "")).password
        if password:
            text = text.replace(password, "***")
    return _SIGNED_FIELD.sub(lambda m: f"{m.group(1)}=***", text)
