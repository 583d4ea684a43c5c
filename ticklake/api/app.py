"""The read API: `GET /v1/<dataset>` answers a tenant's request within its grant, from one lake snapshot.

Per request, in this order: a trace id (a safe incoming `X-Trace-Id`, else a new one); the bearer key (401 when
missing or unknown, never saying whether a tenant exists); the tenant's rate limit (429 with Retry-After); the
request's parameters (400); the statement, built only by `ticklake.products.query.plan` (400/403 naming the rule,
before any SQL exists); the lake's current snapshot (503 when the lake cannot be read); the hot-data cache; the
query, in a worker thread on its own cursor; the answer, encoded from the requested fields only. Every request,
refused ones included, is audited to `api_audit` with the key's id, never the key; the presented key is scrubbed
from every value audited, logged or answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import logging
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.to_thread
import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request as HttpRequest
from starlette.responses import Response
from starlette.routing import Route

from ticklake import settings
from ticklake.api import openapi
from ticklake.api.audit import AuditLog
from ticklake.api.cache import LocalCache, RedisCache, cache_key, pack, unpack
from ticklake.api.lake import FORMATS, LakeReader, LakeUnavailableError
from ticklake.api.limits import LocalBuckets, RedisBuckets
from ticklake.dictionary.fundamentals import FUNDAMENTALS_DAILY, FX_DAILY
from ticklake.dictionary.reference_data import SECURITY_MASTER
from ticklake.products.query import Query, Request, RequestError, plan
from ticklake.products.tenants import Tenant, Tenants

log = logging.getLogger("ticklake.api")

PARAMS = ("symbols", "fields", "start", "end", "regions", "format")
DEFAULT_FORMAT = "json"
TRACE_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
_BEARER = re.compile(r"^Bearer[ \t]+(\S+)[ \t]*$", re.IGNORECASE)
AUDITED_CHARS = 500  # a refused request's raw values are audited up to this long
REDACTED = "<key>"


@dataclass(frozen=True)
class ApiConfig:
    tenants: Tenants
    redis_url: str | None = None
    cache_seconds: int = 300
    cache_entries: int = 2048
    snapshot_ms: int = 1000
    audit_flush_ms: int = 5000
    threads: int = 8
    redis_prefix: str = "ticklake:api:"
    audit: bool = True

    @classmethod
    def from_env(cls, **overrides: Any) -> ApiConfig:
        values = {"tenants": Tenants.from_env(), "redis_url": settings.redis_url(),
                  "cache_seconds": settings.api_cache_seconds(), "cache_entries": settings.api_cache_entries(),
                  "snapshot_ms": settings.api_snapshot_ms(), "audit_flush_ms": settings.api_audit_flush_ms(),
                  "threads": settings.api_threads()}
        return cls(**{**values, **overrides})


def served_tables(tenants: Tenants) -> set[str]:
    """Every table an answer to some tenant may read: its products' tables, and the currency tables for USD."""
    tables = {p.table.name for t in tenants for p in t.products.values()}
    if any(t.currency == "USD" for t in tenants):
        tables |= {SECURITY_MASTER.name, FUNDAMENTALS_DAILY.name, FX_DAILY.name}
    return tables


class ApiError(Exception):
    def __init__(self, status: int, rule: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(rule)
        self.status, self.rule, self.headers = status, rule, dict(headers or {})


@dataclass
class Call:
    """One request as it is answered and audited."""

    trace_id: str
    started: float
    token: str | None
    audit: dict = field(default_factory=dict)

    def scrub(self, text: str | None, limit: int | None = None) -> str | None:
        """`text` with the presented key (and the 40-character prefix a refusal quotes) replaced."""
        if text is None:
            return None
        token = self.token
        if token:
            for cut in (token, token[:40]):
                if len(cut) >= 8:
                    text = text.replace(cut, REDACTED)
        return text if limit is None else text[:limit]


def _trace_id(request: HttpRequest) -> str:
    given = request.headers.get("x-trace-id")
    return given if given and TRACE_ID.match(given) else uuid.uuid4().hex


def _token(request: HttpRequest) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    match = _BEARER.match(header)
    return match.group(1) if match else header.strip() or None


class Api:
    def __init__(self, config: ApiConfig) -> None:
        self.config = config
        self.tenants = config.tenants
        self.reader = LakeReader(config.snapshot_ms, served_tables(self.tenants))
        self.threads = anyio.CapacityLimiter(config.threads)
        self.redis = None
        self.local_limits = LocalBuckets()
        self.limits: LocalBuckets | RedisBuckets = self.local_limits
        self.cache: LocalCache | RedisCache | None = None
        self.audit = AuditLog(self._open_lake, config.audit_flush_ms / 1000) if config.audit else None
        self.document = orjson.dumps(openapi.document(self.tenants))
        self._refresh: asyncio.Task | None = None

    @staticmethod
    def _open_lake():
        from ticklake.storage import open_lakehouse

        return open_lakehouse()

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        if self.config.redis_url:
            import redis.asyncio

            self.redis = redis.asyncio.Redis.from_url(self.config.redis_url, socket_timeout=2,
                                                      socket_connect_timeout=2)
            self.limits = RedisBuckets(self.redis, self.config.redis_prefix, self.local_limits)
            if self.config.cache_seconds:
                self.cache = RedisCache(self.redis, self.config.redis_prefix, self.config.cache_seconds)
        elif self.config.cache_seconds and self.config.cache_entries:
            self.cache = LocalCache(self.config.cache_entries, self.config.cache_seconds)
        if self.audit is not None:
            self.audit.start()
        with contextlib.suppress(LakeUnavailableError):  # connect now (150-350 ms) rather than on the first request
            await anyio.to_thread.run_sync(self.reader.snapshot, limiter=self.threads)
        gc.collect()
        gc.freeze()  # what was loaded to serve is never collected again: full collections stay short (tail latency)

    async def stop(self) -> None:
        if self.audit is not None:
            await anyio.to_thread.run_sync(self.audit.close)
        self.reader.close()
        if self.redis is not None:
            with contextlib.suppress(Exception):
                await self.redis.aclose()

    # ------------------------------------------------------------------ answers
    def _call(self, request: HttpRequest) -> Call:
        call = Call(_trace_id(request), time.perf_counter(), _token(request))
        call.audit.update(requested_at=dt.datetime.now(dt.UTC), trace_id=call.trace_id, method=request.method,
                          path=call.scrub(request.url.path, 200))
        return call

    def _respond(self, call: Call, status: int, body: bytes, media_type: str,
                 headers: Mapping[str, str] | None = None) -> Response:
        call.audit.update(status=status, bytes=len(body),
                          latency_ms=round((time.perf_counter() - call.started) * 1000, 3))
        if self.audit is not None:
            self.audit.add(call.audit)
        return Response(body, status_code=status, media_type=media_type,
                        headers={"X-Trace-Id": call.trace_id, **(headers or {})})

    def _error(self, call: Call, status: int, rule: str, headers: Mapping[str, str] | None = None) -> Response:
        rule = call.scrub(rule) or ""
        call.audit["rule"] = rule
        body = orjson.dumps({"error": {"status": status, "rule": rule, "trace_id": call.trace_id}})
        return self._respond(call, status, body, "application/json", headers)

    def _authenticate(self, call: Call) -> Tenant:
        if call.token is None:
            raise ApiError(401, "send your API key as `Authorization: Bearer <key>`",
                           {"WWW-Authenticate": 'Bearer realm="ticklake"'})
        tenant = self.tenants.by_key(call.token)
        if tenant is None or tenant.api is None:
            raise ApiError(401, "the API key is not valid: send `Authorization: Bearer <key>` with the key your "
                                "tenant was given", {"WWW-Authenticate": 'Bearer realm="ticklake", '
                                                                         'error="invalid_token"'})
        call.audit.update(tenant=tenant.name, key_id=tenant.api.key_id)
        return tenant

    async def _limit(self, tenant: Tenant) -> None:
        limits = self.limits
        verdict = await limits.take(tenant) if isinstance(limits, RedisBuckets) else limits.take(tenant)
        if not verdict.allowed:
            api = tenant.api
            raise ApiError(429, f"tenant {tenant.name} is over its rate limit of {api.requests_per_second:g} requests "
                                f"per second (burst {api.capacity}): retry after {verdict.retry_after} s",
                           {"Retry-After": str(verdict.retry_after)})

    def _parse(self, call: Call, dataset: str, request: HttpRequest) -> tuple[Request, str]:
        params: dict[str, str] = {}
        for name, value in request.query_params.multi_items():
            if name not in PARAMS:
                raise RequestError(f"unknown parameter {call.scrub(name, 40)!r} (parameters: {', '.join(PARAMS)})")
            if name in params:
                raise RequestError(f"give {name} once (a comma-separated list)")
            params[name] = value
        for name in ("fields", "symbols", "regions", "format"):  # as asked, until the plan says what is read
            if name in params:
                call.audit[name] = call.scrub(params[name], AUDITED_CHARS if name != "format" else 40)
        fmt = params.pop("format", DEFAULT_FORMAT)
        if fmt not in FORMATS:
            raise RequestError(f"format={call.scrub(fmt, 40)!r} is not one of {', '.join(FORMATS)}")
        return Request.parse(dataset, params), fmt

    async def data(self, request: HttpRequest) -> Response:
        call = self._call(request)
        dataset = request.path_params["dataset"]
        call.audit["dataset"] = call.scrub(dataset, 64)
        try:
            tenant = self._authenticate(call)
            await self._limit(tenant)
            wanted, fmt = self._parse(call, dataset, request)
            call.audit["format"] = fmt
            today = dt.datetime.now(dt.UTC).date()
            snapshot, due = self.reader.cached_snapshot()
            if snapshot is None:
                plan(tenant, wanted, today=today)  # refused (400/403) before the lake is touched
                snapshot = await anyio.to_thread.run_sync(self.reader.snapshot, limiter=self.threads)
            elif due:
                self._refresh_snapshot()  # in the background: this request keeps the last one
            query = plan(tenant, wanted, today=today, snapshot=snapshot)
            self._audit_query(call, query, snapshot)
            return await self._answer(call, tenant, query, fmt, snapshot)
        except RequestError as exc:  # GrantError (403) is one
            return self._error(call, exc.status, exc.rule)
        except ApiError as exc:
            return self._error(call, exc.status, exc.rule, exc.headers)
        except LakeUnavailableError as exc:
            return self._error(call, 503, str(exc))
        except Exception:
            log.exception("request %s failed", call.trace_id)
            return self._error(call, 500, f"internal error: quote trace id {call.trace_id} to the lake's operators")

    def _refresh_snapshot(self) -> None:
        if self._refresh is not None and not self._refresh.done():
            return

        async def refresh() -> None:
            with contextlib.suppress(LakeUnavailableError):  # the next request that needs it says so
                await anyio.to_thread.run_sync(self.reader.snapshot, limiter=self.threads)

        self._refresh = asyncio.get_running_loop().create_task(refresh())

    def _audit_query(self, call: Call, query: Query, snapshot: int) -> None:
        symbols = ",".join(query.symbols) if query.symbols is not None else None
        call.audit.update(fields=",".join(query.names), regions=",".join(query.regions), start=query.start,
                          symbols=call.scrub(symbols), end=query.end, snapshot=snapshot)  # a key sent as a symbol

    async def _answer(self, call: Call, tenant: Tenant, query: Query, fmt: str, snapshot: int) -> Response:
        key = cache_key(tenant.name, snapshot, query.sql, query.params, fmt) if self.cache is not None else None
        cached = await self.cache.get(key) if key is not None else None
        if cached is not None:
            rows, body = unpack(cached)
            state = "hit"
        else:
            meta = {"dataset": query.product.name, "tenant": tenant.name, "snapshot": snapshot,
                    "regions": list(query.regions), "start": query.start, "end": query.end}
            answer = await anyio.to_thread.run_sync(self.reader.answer, query, fmt, meta, limiter=self.threads)
            rows, body = answer.rows, answer.body
            state = "off" if key is None else "miss"
            if key is not None:
                await self.cache.set(key, pack(rows, body))
        call.audit.update(rows=rows, cache=state)
        headers = {"X-Cache": state, "X-Lake-Snapshot": str(snapshot), "X-Rows": str(rows),
                   "Cache-Control": "private, max-age=0"}
        if fmt != "json":
            headers["Content-Disposition"] = f'attachment; filename="{query.product.name}.{fmt}"'
        return self._respond(call, 200, body, FORMATS[fmt], headers)

    # ------------------------------------------------------------------ other routes
    async def health(self, request: HttpRequest) -> Response:
        try:
            snapshot = await anyio.to_thread.run_sync(self.reader.snapshot, limiter=self.threads)
        except LakeUnavailableError as exc:
            return Response(orjson.dumps({"status": "unavailable", "error": {"status": 503, "rule": str(exc)}}),
                            status_code=503, media_type="application/json")
        body = {"status": "ok", "snapshot": snapshot, "cache": self.cache.kind if self.cache else "off",
                "rate_limits": "redis" if isinstance(self.limits, RedisBuckets) else "local",
                "audit_pending": self.audit.pending if self.audit else None}
        return Response(orjson.dumps(body), media_type="application/json")

    async def openapi(self, request: HttpRequest) -> Response:
        return Response(self.document, media_type="application/json")

    async def http_error(self, request: HttpRequest, exc: Exception) -> Response:
        call = self._call(request)
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 404:
            rule = f"no such route: {call.scrub(request.url.path, 80)} (datasets are at /v1/<dataset>; see " \
                   "/openapi.json)"
        elif status == 405:
            rule = f"{request.method} is not allowed here: use GET"
        else:
            rule = f"HTTP {status}"
        return self._error(call, status, rule)

    async def crashed(self, request: HttpRequest, exc: Exception) -> Response:
        call = self._call(request)
        log.error("request %s failed: %s", call.trace_id, type(exc).__name__)
        return self._error(call, 500, f"internal error: quote trace id {call.trace_id} to the lake's operators")


def create_app(config: ApiConfig | None = None) -> Starlette:
    """The ASGI app (`uvicorn --factory ticklake.api.app:create_app`); the tenants and settings come from the
    environment unless `config` gives them."""
    api = Api(config or ApiConfig.from_env())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        await api.start()
        try:
            yield
        finally:
            await api.stop()

    app = Starlette(
        routes=[Route("/v1/{dataset}", api.data, methods=["GET"]), Route("/health", api.health, methods=["GET"]),
                Route("/openapi.json", api.openapi, methods=["GET"])],
        exception_handlers={404: api.http_error, 405: api.http_error, Exception: api.crashed},
        lifespan=lifespan,
    )
    app.state.api = api
    return app
