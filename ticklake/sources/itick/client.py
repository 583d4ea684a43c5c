"""HTTP client for the iTick REST API (and the simulator that speaks the same protocol).

Responsibilities, in order: respect the plan's quota (client-side limiter), send `GET path?params` with the
`token` header, retry 429s until a deadline while the limiter slows down to what the server grants, retry
5xx/timeouts/connection errors with exponential backoff and jitter, unwrap
the `{code, msg, data}` envelope into data or a typed error, and audit every call (endpoint, params,
status, latency, retries, rows) without ever recording the token.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from ticklake.dictionary.symbols import SYMBOL_RULE, invalid_symbols, shown
from ticklake.settings import ConfigError
from ticklake.sources.contract import FetchReport
from ticklake.sources.itick.errors import (
    InvalidSymbolError,
    ITickAuthError,
    ITickError,
    ITickLocalError,
    ITickProtocolError,
    ITickQuotaError,
    ITickRequestError,
    ITickServerError,
    ITickUnknownSymbolError,
)
from ticklake.sources.quota import QuotaWaitError, SlidingWindowLimiter

RATE_LIMIT_MESSAGE = "your request is too much"
_LISTED_BAD_CODES = 3
_AUTH_MARKERS = ("E002", "auth failed")
_UNKNOWN_MARKERS = ("E001", "not found this produce")
# An HTTP header value ticklake will send: visible ASCII only. A token with a space, a line break (a trailing
# newline from `echo` or a secrets file) or a control character is refused before any request is made: httpx
# would only fail while sending, with the value in its message ("Illegal header value b'...'").
_TOKEN_RULE = re.compile(r"[\x21-\x7e]{1,512}")


def check_token(token: str, variable: str = "ITICK_TOKEN") -> None:
    """Refuse a token that cannot travel as the `token` header. The message never contains the token."""
    if _TOKEN_RULE.fullmatch(token):
        return
    if any(c in token for c in "\r\n"):
        why = "it contains a line break (often a trailing newline from a file or `echo`)"
    elif any(c.isspace() for c in token):
        why = "it contains whitespace"
    elif len(token) > 512:
        why = f"it is {len(token)} characters long (at most 512)"
    else:
        why = "it contains characters other than visible ASCII"
    raise ConfigError(f"{variable} is not a valid iTick token: {why}. Tokens are 1-512 visible ASCII characters "
                      "without spaces; the value is not shown here.")


@dataclass
class CallRecord:
    """One audited API call (one logical call, however many attempts it took)."""

    at: str
    endpoint: str
    params: dict[str, Any]
    status: int | None
    latency_ms: float
    attempts: int
    retries: int
    rate_limited: int
    rows: int
    error: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


def latency_summary(records: list[CallRecord]) -> dict[str, dict[str, float]]:
    """Per endpoint: calls and the p50 / p95 / max latency in ms (nearest rank), from the client's call records."""
    by_endpoint: dict[str, list[float]] = {}
    for record in records:
        by_endpoint.setdefault(record.endpoint, []).append(record.latency_ms)

    def rank(values: list[float], q: float) -> float:
        return values[max(0, min(len(values) - 1, math.ceil(q * len(values)) - 1))]

    out = {}
    for endpoint, values in sorted(by_endpoint.items()):
        values.sort()
        out[endpoint] = {"calls": len(values), "p50_ms": round(rank(values, 0.50), 1),
                         "p95_ms": round(rank(values, 0.95), 1), "max_ms": round(values[-1], 1)}
    return out


class AuditLog:
    """Appends one JSON line per call; a single write() per line keeps concurrent appenders intact."""

    def __init__(self, path: Path | None):
        self.path = path
        self._lock = threading.Lock()
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: CallRecord) -> None:
        if not self.path:
            return
        line = orjson.dumps(asdict(record)) + b"\n"
        with self._lock, open(self.path, "ab") as fh:
            fh.write(line)


class ITickClient:
    """A quota-aware, retrying, auditing iTick client. Thread-safe: share one per process."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        limiter: SlidingWindowLimiter,
        timeout_s: float = 30.0,
        max_retries: int = 5,
        quota_deadline_s: float = 600.0,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        audit: AuditLog | None = None,
        tags: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        if not token:
            raise ITickAuthError("no iTick token: set ITICK_TOKEN (or unset ITICK_BASE_URL to use the simulator)")
        check_token(token)
        self.base_url = base_url.rstrip("/")
        self._token = token  # only to mask it in quoted bodies; never shown
        self.limiter = limiter
        self.max_retries, self.backoff_base_s, self.backoff_max_s = max_retries, backoff_base_s, backoff_max_s
        self.quota_deadline_s = quota_deadline_s
        self.audit = audit or AuditLog(None)
        self.tags = dict(tags or {})
        self._sleep, self._clock = sleep, clock
        self._rng = random.Random()
        self._stats = FetchReport()
        self._stats_lock = threading.Lock()
        self._records: list[CallRecord] = []
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"token": token, "accept": "application/json", "user-agent": "ticklake"},
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
        )

    # -- lifecycle ----------------------------------------------------------------------------------
    def close(self) -> None:
        self._http.close()
        self.limiter.close()  # a PostgreSQL quota store's connection (reopened if the limiter is used again)

    def __enter__(self) -> ITickClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:  # never show the token
        return f"ITickClient(base_url={self.base_url!r})"

    @property
    def stats(self) -> FetchReport:
        with self._stats_lock:
            return FetchReport(**asdict(self._stats))

    @property
    def records(self) -> list[CallRecord]:
        with self._stats_lock:
            return list(self._records)

    # -- the one request path -------------------------------------------------------------------------
    def get(self, path: str, params: Mapping[str, Any], *, count_rows: Callable[[Any], int] = len,
            expect: type | None = None) -> Any:
        """GET `path` and return the envelope's `data`, or raise a typed ITickError.

        `expect` (dict or list): the JSON type `data` must have when it is not null; another answer is retried like
        a garbled body, then fails quoting it.

        A 429 is not a lost call: the limiter slows down to what the server grants and the call is retried until
        it has been rate limited for `quota_deadline_s`. Other transient failures get `max_retries` retries."""
        clean = {k: v for k, v in params.items() if v is not None}
        attempts = rate_limited = failures = 0
        first_429: float | None = None
        status: int | None = None
        started = time.perf_counter()
        error: ITickError | None = None
        data: Any = None
        while True:
            try:
                waited = self.limiter.acquire(max_wait_s=self._remaining(first_429))
            except QuotaWaitError:  # only after a 429: the limiter now admits the call past the deadline
                assert error is not None
                assert first_429 is not None
                self._past_deadline(error, first_429, rate_limited)
                break
            with self._stats_lock:
                self._stats.waited_s += waited
            attempts += 1
            try:
                response = self._http.get(path, params=clean)
                status = response.status_code
                data = self._unwrap(path, response, expect)
                self.limiter.record_success()
                error = None
                break
            except _Retryable as exc:
                error = exc.error
                if isinstance(error, ITickQuotaError):
                    rate_limited += 1
                    first_429 = self._clock() if first_429 is None else first_429
                    if self._rate_limited_too_long(error, first_429, rate_limited, exc.retry_after):
                        break
                    continue
                failures += 1
                if failures > self.max_retries:
                    error.args = (f"{error.args[0]} (gave up after {attempts} attempts)",)
                    break
                self._sleep(self._backoff(failures, exc.retry_after))
            except httpx.LocalProtocolError:
                # Raised before anything is sent (h11 refuses a header value): retrying cannot help, and the
                # exception's text quotes the value, which may be the token, so it is neither kept nor chained.
                status, error = None, ITickLocalError(
                    f"{path}: the request was not sent: HTTP does not allow one of its header values (the value "
                    "is not shown; check ITICK_TOKEN)", endpoint=path)
                break
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                status = None
                error = ITickServerError(
                    f"{path}: {type(exc).__name__} talking to {self.base_url} ({exc})", endpoint=path
                )
                failures += 1
                if failures > self.max_retries:
                    error.args = (f"{error.args[0]} (gave up after {attempts} attempts)",)
                    break
                self._sleep(self._backoff(failures, None))
            except ITickError as exc:
                if not isinstance(exc, ITickAuthError):
                    self.limiter.record_success()  # the server answered, so it granted the call
                error = exc
                break
        self.limiter.done()  # this thread's call is over, however it ended
        rows = 0
        if error is None:
            try:
                rows = count_rows(data) if data is not None else 0
            except TypeError:
                rows = 1
        self._record(path, clean, status, started, attempts, rate_limited, rows, error)
        if error is not None:
            raise error
        return data

    def _remaining(self, first_429: float | None) -> float | None:
        """Seconds left before a rate-limited call gives up (None: never rate limited, no deadline)."""
        return None if first_429 is None else self.quota_deadline_s - (self._clock() - first_429)

    def _rate_limited_too_long(self, error: ITickError, first_429: float, count: int,
                               retry_after: float | None) -> bool:
        """After a 429: tell the limiter (it slows down, honours Retry-After) and back off; True once the call has
        been rate limited past the deadline."""
        remaining = self._remaining(first_429)
        assert remaining is not None
        if remaining <= 0:
            self._past_deadline(error, first_429, count)
            return True
        self.limiter.record_rate_limited(None if retry_after is None else min(retry_after, remaining))
        if retry_after is None:  # the limiter alone may admit the retry at once: back off, at most a window
            self._sleep(min(self._backoff(count, None), self.limiter.nominal_window_s, remaining))
        return False

    def _past_deadline(self, error: ITickError, first_429: float, count: int) -> None:
        """Name ITICK_PLAN, the observed rate and the deadline in the error that ends a rate-limited call."""
        elapsed = self._clock() - first_429
        error.args = (f"{error.args[0]}: still rate limited {elapsed:.1f} s after the first 429 ({count} answered 429, "
                      f"quota_deadline_s={self.quota_deadline_s:g}): {self.limiter.describe()}; set ITICK_PLAN to "
                      "what the account grants",)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.backoff_max_s)
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1))
        return self._rng.uniform(ceiling / 2, ceiling)  # "equal jitter": never zero, never in lockstep

    def _quoted(self, response: httpx.Response, limit: int = 200) -> str:
        """The start of an answer's body for a message: cut to `limit` characters, the token masked (a hostile or
        debugging server may echo the request's headers)."""
        text = response.content[: limit * 4].decode("utf-8", "replace")[:limit]
        if self._token:
            text = text.replace(self._token, "***")
        more = f" ({len(response.content)} bytes)" if len(response.content) > limit else ""
        return f"{text!r}{more}"

    def _unwrap(self, path: str, response: httpx.Response, expect: type | None = None) -> Any:
        status = response.status_code
        if status == 429:
            raise _Retryable(ITickQuotaError(f"{path}: HTTP 429 rate limited by the source", endpoint=path,
                                             status=status), _retry_after(response))
        if status >= 500:
            raise _Retryable(ITickServerError(f"{path}: HTTP {status} from the source", endpoint=path,
                                              status=status), None)
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            if status in (401, 403):
                raise self._auth_error(path, status, "HTTP auth failure") from None
            # A garbled body (a proxy's error page, a truncated answer) says nothing about the request itself:
            # worth asking again, within max_retries; a body that stays garbled fails naming it.
            raise _Retryable(ITickProtocolError(
                f"{path}: HTTP {status} with a body that is not JSON: {self._quoted(response)}",
                endpoint=path, status=status,
            ), None) from None
        if not isinstance(body, dict) or "code" not in body:
            if status in (401, 403):
                raise self._auth_error(path, status, "HTTP auth failure")
            # Valid JSON that is not the envelope (`[1,2,3]`, a proxy's own JSON) is as garbled as HTML: asked again.
            raise _Retryable(ITickProtocolError(
                f"{path}: HTTP {status} with an answer that is not the {{code, msg, data}} envelope: "
                f"{self._quoted(response)}", endpoint=path, status=status), None)
        code, msg = body.get("code"), body.get("msg")
        if (code == 0 or code == "0") and status < 400:
            data = body.get("data")
            if expect is not None and data is not None and not isinstance(data, expect):
                raise _Retryable(ITickProtocolError(
                    f"{path}: `data` is {_json_type(data)} where {_json_type(expect)} was expected: "
                    f"{self._quoted(response)}", endpoint=path, status=status), None)
            return data
        text = f"{code} {msg or ''}"
        if code == 429 or RATE_LIMIT_MESSAGE in text:
            raise _Retryable(ITickQuotaError(f"{path}: rate limited by the source ({msg})", endpoint=path,
                                             status=status, code=code), _retry_after(response))
        if status in (401, 403) or any(m in text for m in _AUTH_MARKERS):
            raise self._auth_error(path, status, msg)
        if any(m in text for m in _UNKNOWN_MARKERS):
            raise ITickUnknownSymbolError(f"{path}: unknown instrument ({msg})", endpoint=path, status=status,
                                          code=code)
        if status >= 500:
            raise _Retryable(ITickServerError(f"{path}: HTTP {status}: {msg}", endpoint=path, status=status), None)
        error = ITickRequestError(f"{path}: the source rejected the request: code={code!r} msg={msg!r}",
                                  endpoint=path, status=status, code=code)
        if status >= 400 or _refuses_the_request(code):
            raise error
        # Another code iTick does not document, in a 200 answer (an upstream service briefly down, say), is asked
        # again within max_retries, like a 5xx; if it persists the call fails naming it.
        raise _Retryable(error, None)

    def _auth_error(self, path: str, status: int, msg: object) -> ITickAuthError:
        return ITickAuthError(
            f"{path}: the iTick token was rejected by {self.base_url} ({msg}). Check ITICK_TOKEN and that your "
            "plan covers this market.",
            endpoint=path, status=status,
        )

    def _record(self, path: str, params: dict[str, Any], status: int | None, started: float, attempts: int,
                rate_limited: int, rows: int, error: ITickError | None) -> None:
        record = CallRecord(
            at=dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
            endpoint=path,
            params=params,
            status=status,
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
            attempts=attempts,
            retries=attempts - 1,
            rate_limited=rate_limited,
            rows=rows,
            error=None if error is None else f"{type(error).__name__}: {error}",
            tags=self.tags,
        )
        with self._stats_lock:
            s = self._stats
            s.calls += 1
            s.attempts += attempts
            s.retries += attempts - 1
            s.rate_limited += rate_limited
            s.errors += error is not None
            s.rows += rows
            self._records.append(record)
            del self._records[:-10_000]  # bounded; the audit file keeps everything
        self.audit.write(record)

    # -- endpoints -----------------------------------------------------------------------------------
    def symbol_list(self, region: str, security_type: str = "stock") -> list[dict[str, Any]]:
        return self.get("/symbol/list", {"type": security_type, "region": region}, expect=list) or []

    def holidays(self, code: str | None = None) -> list[dict[str, Any]]:
        return self.get("/symbol/v2/holidays", {"code": code}) or []

    def stock_info(self, region: str, code: str) -> dict[str, Any]:
        check_codes([code], "/stock/info")
        return self.get("/stock/info", {"type": "stock", "region": region, "code": code}, count_rows=lambda d: 1)

    def splits(self, region: str, page_size: int = 100) -> Iterator[dict[str, Any]]:
        """Every split the source reports for `region`, walking the Spring-style pages."""
        page = 0
        while True:
            data = self.get("/stock/split", {"region": region, "page": page, "size": page_size},
                            count_rows=lambda d: len(d.get("content") or []))
            yield from (data or {}).get("content") or []
            if not data or data.get("last", True) or page + 1 >= int(data.get("totalPages") or 0):
                return
            page += 1

    def ipo(self, kind: str, region: str, page_size: int = 100) -> Iterator[dict[str, Any]]:
        """Every IPO of `kind` ("recent" or "upcoming") the source reports for `region`, walking the pages."""
        page = 0
        while True:
            data = self.get("/stock/ipo", {"type": kind, "region": region, "page": page, "size": page_size},
                            count_rows=lambda d: len(d.get("content") or []))
            yield from (data or {}).get("content") or []
            if not data or data.get("last", True) or page + 1 >= int(data.get("totalPages") or 0):
                return
            page += 1

    def kline(self, asset: str, region: str, code: str, *, ktype: int, limit: int,
              et_ms: int | None = None) -> list[dict[str, Any]]:
        check_codes([code], f"/{asset}/kline")
        return self.get(f"/{asset}/kline", {"region": region, "code": code, "kType": ktype, "limit": limit,
                                             "et": et_ms}, expect=list) or []

    def klines(self, asset: str, region: str, codes: Sequence[str], *, ktype: int, limit: int,
               et_ms: int | None = None) -> dict[str, list[dict[str, Any]] | None]:
        """Batch klines: code -> bars (None/missing where the source does not know the code)."""
        check_codes(codes, f"/{asset}/klines")
        data = self.get(
            f"/{asset}/klines",
            {"region": region, "codes": ",".join(codes), "kType": ktype, "limit": limit, "et": et_ms},
            count_rows=lambda d: sum(len(v) if isinstance(v, list) else 0 for v in d.values()),
            expect=dict,  # an object keyed by code
        )
        return data or {}


def check_codes(codes: Sequence[str], endpoint: str) -> None:
    """Refuse codes that break the symbol rule before they reach a URL (a comma would split a batch, a huge code
    would make an invalid URL): an InvalidSymbolError naming the codes (cut short) and the rule."""
    if isinstance(codes, str):
        raise InvalidSymbolError(f"{endpoint}: codes must be a list of codes, not one string ({shown(codes)})",
                                 endpoint=endpoint)
    if not codes:
        raise InvalidSymbolError(f"{endpoint}: no instrument codes given", endpoint=endpoint)
    bad = invalid_symbols(codes)
    if not bad:
        return
    listed = "; ".join(f"{shown(code)}: {why}" for code, why in bad[:_LISTED_BAD_CODES])
    more = f" (+{len(bad) - _LISTED_BAD_CODES} more)" if len(bad) > _LISTED_BAD_CODES else ""
    raise InvalidSymbolError(
        f"{endpoint}: {len(bad)} of {len(codes)} instrument code(s) refused before any request: {listed}{more}. "
        f"An instrument code is {SYMBOL_RULE}.",
        endpoint=endpoint,
    )


def _refuses_the_request(code: object) -> bool:
    """An envelope code in HTTP's client-error range (400-499: a bad parameter, a code too many) says the request
    itself is wrong: asking again would be refused the same way."""
    try:
        return 400 <= int(str(code)) < 500
    except ValueError:
        return False


class _Retryable(Exception):  # noqa: N818 - internal control flow, never escapes the client
    def __init__(self, error: ITickError, retry_after: float | None):
        super().__init__(str(error))
        self.error, self.retry_after = error, retry_after


def _json_type(value: object) -> str:
    kind = value if isinstance(value, type) else type(value)
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(kind, f"a {kind.__name__}")


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
