"""How to reach iTick: endpoint, token, plan and client tuning, read from the environment with clear errors.

No ITICK_TOKEN and no ITICK_BASE_URL: the embedded, deterministic simulator answers in-process (no port).
ITICK_BASE_URL + ITICK_TOKEN: that server (the real api.itick.org, or a simulator on loopback).
ITICK_TOKEN alone: https://api.itick.org.

The Dagster resource (resources/itick.py) exposes the same fields as run configuration; this module is what
the library, the fetch worker processes and the benchmarks build clients from.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Literal

import httpx

from ticklake import settings
from ticklake.settings import ConfigError, env_choice, env_int, env_parsed, env_secret, env_url
from ticklake.sources.itick.client import AuditLog, ITickClient, check_token
from ticklake.sources.quota import SlidingWindowLimiter, calls_per_minute
from ticklake.sources.quota_state import FileStateStore, PostgresStateStore, StateStore

ITICK_URL = "https://api.itick.org"
EMBEDDED = "embedded://itick-sim"
SIM_TOKEN = "embedded-simulator"
@dataclass(frozen=True)
class ITickConfig:
    base_url: str | None = None
    token: str | None = field(default=None, repr=False)
    plan: str = "base"  # free|base|pro|premium or calls per minute
    window_seconds: float = 60.0
    quota_margin_s: float | None = None
    max_codes_per_call: int = 50
    max_bars_per_call: int = 1000
    max_concurrency: int = 4
    fetch_processes: int = 0  # 0 = one per CPU
    parallel_fetch_min_bars: int = 2_000_000
    timeout_s: float = 30.0
    max_retries: int = 5
    quota_deadline_s: float = 600.0  # how long one call may keep being answered 429 before it fails
    backoff_base_s: float = 0.5
    bar_time_convention: Literal["exchange_local", "utc"] = "exchange_local"
    sim_symbols_per_region: int = 20
    sim_seed: int = 20240101
    home: str | None = None

    @classmethod
    def from_env(cls, **overrides) -> ITickConfig:
        """The ITICK_* and TICKLAKE_* variables; each bad value is a ConfigError naming its variable."""
        values = {"base_url": env_url("ITICK_BASE_URL"), "token": env_secret("ITICK_TOKEN"), **env_values()}
        return cls(**{**values, **overrides})

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @property
    def endpoint(self) -> str:
        if self.base_url:
            return self.base_url
        return ITICK_URL if self.token else EMBEDDED

    @property
    def source_name(self) -> str:
        return "itick-sim" if self.endpoint == EMBEDDED else "itick"

    @property
    def paths(self) -> settings.Paths:
        return settings.Paths(Path(self.home) if self.home else settings.home())


# The ITickConfig / ITickResource field each tuning variable sets. Kept apart from the readers below so that a
# traceback of a bad value shows the variable users set, never a field name they never wrote.
ENV_FIELDS = {
    "ITICK_PLAN": "plan",
    "ITICK_MAX_CODES": "max_codes_per_call",
    "ITICK_BAR_TIME": "bar_time_convention",
    "TICKLAKE_FETCH_PROCESSES": "fetch_processes",
    "TICKLAKE_SIM_SYMBOLS": "sim_symbols_per_region",
    "TICKLAKE_SIM_SEED": "sim_seed",
}
PLAN_RULE = "must be free, base, pro, premium or a positive whole number of calls per minute"


def env_values() -> dict:
    """The tuning knobs users set through the environment (docs/configuration.md), validated, by field name."""
    return {ENV_FIELDS[variable]: value for variable, value in _env_knobs().items()}


def env_default(field: str) -> Callable[[], object]:
    """A default factory for one knob's field: the environment's value, read when the resource is built. Dagster
    builds a resource whose run config names only some fields (a launchpad override) with the *class* defaults
    of the others, not what `from_env` set, so a fixed default would quietly turn ITICK_PLAN=free into `base`."""
    if field not in ENV_FIELDS.values():
        raise KeyError(f"{field!r} is not set by any environment variable")
    return lambda: env_values()[field]


def _env_knobs() -> dict[str, object]:
    # Ranges match the resource's pydantic bounds (or lie within them): a value accepted here is never refused
    # later under a field name.
    return {
        "ITICK_PLAN": env_parsed("ITICK_PLAN", "base", _plan, PLAN_RULE),
        "ITICK_MAX_CODES": env_int("ITICK_MAX_CODES", 50, minimum=1, maximum=1000),
        "ITICK_BAR_TIME": env_choice("ITICK_BAR_TIME", "exchange_local", ("exchange_local", "utc")),
        "TICKLAKE_FETCH_PROCESSES": env_int("TICKLAKE_FETCH_PROCESSES", 0, minimum=0, maximum=16),
        "TICKLAKE_SIM_SYMBOLS": env_int("TICKLAKE_SIM_SYMBOLS", 20, minimum=1, maximum=100_000),
        "TICKLAKE_SIM_SEED": env_int("TICKLAKE_SIM_SEED", 20240101, minimum=0),
    }


def _plan(text: str) -> str:
    calls_per_minute(text)  # raises ValueError for anything but a plan name or a positive number
    return text


def _rate(plan: str) -> int:
    try:
        return calls_per_minute(plan)
    except ValueError:
        raise ConfigError(f"ITICK_PLAN={plan!r} is invalid: {PLAN_RULE}") from None


def check_config(config: ITickConfig) -> None:
    """Refuse what can be refused without a file or a request: the plan, a server without a token, a token that
    cannot travel as a header, a TICKLAKE_COORDINATION_URL that is not PostgreSQL's. Run before anything else, so a
    bad value costs no request, retry or audit line, and the token never reaches an error message."""
    _rate(config.plan)
    settings.coordination_url()
    if config.endpoint == EMBEDDED:
        return
    if not settings.is_http_url(config.endpoint):
        raise ConfigError(f"ITICK_BASE_URL={config.endpoint!r} is invalid: {settings.URL_RULE}")
    if not config.token:
        raise ConfigError("ITICK_BASE_URL is set but ITICK_TOKEN is not: the iTick API needs a token "
                          "(unset ITICK_BASE_URL to use the embedded simulator)")
    check_token(config.token)


@lru_cache(maxsize=4)
def embedded_simulator(symbols_per_region: int, seed: int, calls_per_minute: int, regions: tuple[str, ...]):
    """One in-process simulator per configuration and process (its calendars and series are cached)."""
    from itick_sim import SimSettings, Simulator

    return Simulator(SimSettings(seed=seed, symbols_per_region=symbols_per_region, regions=regions,
                                 calls_per_window=calls_per_minute, window_seconds=60.0))


def quota_key(token: str) -> str:
    """The name of an account's shared quota state. iTick counts calls per token, whatever address reaches it (a
    proxy, a relay, another host name for the same service), so workers that reach it by different URLs still
    share one window; the key is a hash, never the token itself."""
    return f"quota-{hashlib.sha256(token.encode()).hexdigest()[:16]}"


def quota_store(paths: settings.Paths, key: str) -> StateStore:
    """Where the account's quota is shared: PostgreSQL when TICKLAKE_COORDINATION_URL is set (every worker on every
    machine), else a file under the home's state/ directory (every process of this machine)."""
    url = settings.coordination_url()
    if url:
        return PostgresStateStore(url, key)
    return FileStateStore(paths.state / f"{key}.txt")


def build_client(config: ITickConfig, tags: dict[str, str] | None = None) -> ITickClient:
    """A quota-aware client for `config`: the embedded simulator, or HTTP with a checked token."""
    check_config(config)
    rate = _rate(config.plan)
    paths = config.paths
    transport: httpx.BaseTransport | None = None
    token = config.token
    if config.endpoint == EMBEDDED:
        sim = embedded_simulator(config.sim_symbols_per_region, config.sim_seed, rate, settings.regions())
        transport, token = httpx.WSGITransport(app=sim), SIM_TOKEN
    assert token is not None  # check_config refused a server without one
    paths.state.mkdir(parents=True, exist_ok=True)
    limiter = SlidingWindowLimiter(rate, config.window_seconds, margin_s=config.quota_margin_s,
                                   store=quota_store(paths, quota_key(token)), plan=config.plan)
    audit = AuditLog(paths.audit / f"api_calls-{dt.datetime.now(dt.UTC):%Y-%m-%d}.jsonl")
    return ITickClient(
        config.endpoint if config.endpoint != EMBEDDED else "http://itick-sim.local",
        token,
        limiter=limiter,
        timeout_s=config.timeout_s,
        max_retries=config.max_retries,
        quota_deadline_s=config.quota_deadline_s,
        backoff_base_s=config.backoff_base_s,
        transport=transport,
        audit=audit,
        tags=tags,
    )
