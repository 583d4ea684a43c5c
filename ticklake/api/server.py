"""`ticklake serve`: the read API under uvicorn, in one process or `workers` processes sharing the port."""

from __future__ import annotations

import logging

from ticklake import settings
from ticklake.products.tenants import Tenants, TenantsFileError

APP = "ticklake.api.app:create_app"


def check() -> Tenants:
    """The tenants file loads and grants API access to someone, and the API's settings are valid: refused here,
    before a port is opened (a TenantsFileError or ConfigError names the key or the variable)."""
    tenants = Tenants.from_env()
    if not len(tenants):
        raise TenantsFileError("no tenants: set TICKLAKE_TENANTS to the tenants file (docs/data-products.md)")
    if not any(t.api is not None for t in tenants):
        raise TenantsFileError(f"tenants file {tenants.path}: no tenant has API access: give one an "
                               "[tenants.<name>.api] table with its key")
    settings.redis_url(), settings.api_cache_seconds(), settings.api_cache_entries()
    settings.api_snapshot_ms(), settings.api_audit_flush_ms(), settings.api_threads()
    return tenants


def serve(host: str, port: int, workers: int = 1) -> int:
    """No access log: it would print query strings, and a key pasted into one would reach a log line. The audit
    (`api_audit`) records every request, scrubbed of the key."""
    import uvicorn

    tenants = check()
    if workers > 1 and settings.redis_url() is None:
        logging.getLogger("ticklake.api").warning(
            "%d workers without TICKLAKE_REDIS_URL: each worker keeps its own rate-limit buckets and cache, so a "
            "tenant may get up to %d times its rate; set TICKLAKE_REDIS_URL to share them", workers, workers)
    print(f"ticklake serve: {len(tenants)} tenant(s) from {tenants.path}, http://{host}:{port}/v1/<dataset> "
          f"(OpenAPI at /openapi.json), {workers} worker(s)", flush=True)
    uvicorn.run(APP, factory=True, host=host, port=port, workers=workers, access_log=False, log_level="warning",
                server_header=False, date_header=False)
    return 0
