"""The iTick resource: Dagster run configuration for `ticklake.sources.itick` (client, quota, source).

Its fields mirror `ticklake.sources.itick.config.ITickConfig` one for one (a unit test keeps them in step), so the
launchpad can override any of them; `from_env` fills them from ITICK_* / TICKLAKE_* variables and keeps the
token and base URL as `EnvVar`s, so the UI and the run storage show the variables' names, never the values. The
knobs' defaults are the environment's values too (`env_default`), because a run config naming only some fields
gets the class defaults of the others.
"""

from __future__ import annotations

from typing import Literal

import dagster as dg
from pydantic import Field, PrivateAttr

from ticklake.settings import env_secret, env_url
from ticklake.sources.itick.client import ITickClient
from ticklake.sources.itick.config import ITickConfig, build_client, check_config, env_default, env_values
from ticklake.sources.itick.source import ITickSource, open_source


class ITickResource(dg.ConfigurableResource):
    """iTick REST access within the plan's quota. The token is read from ITICK_TOKEN, never logged."""

    base_url: str | None = Field(default=None, description="ITICK_BASE_URL; unset -> api.itick.org with a token, "
                                 "else the embedded simulator")
    token: str | None = Field(default=None, description="ITICK_TOKEN (pass dg.EnvVar so the UI never shows it)")
    plan: str = Field(default_factory=env_default("plan"),
                      description="ITICK_PLAN: free|base|pro|premium or calls per minute")
    window_seconds: float = Field(default=60.0, gt=0, description="Quota window; the plan's figure is per minute")
    quota_margin_s: float | None = Field(
        default=None, ge=0,
        description="Extra seconds added to the quota window to absorb network jitter (default 2% of the window)",
    )
    max_codes_per_call: int = Field(default_factory=env_default("max_codes_per_call"), ge=1, le=1000,
                                    description="Codes per batch call (ITICK_MAX_CODES)")
    max_bars_per_call: int = Field(default=1000, ge=1, le=1000, description="Bars per code per kline call")
    max_concurrency: int = Field(default=4, ge=1, le=32, description="Parallel requests (the limiter still rules)")
    fetch_processes: int = Field(
        default_factory=env_default("fetch_processes"), ge=0, le=16,
        description="Processes that fetch and parse kline pages in parallel for big backfills (parsing JSON is "
                    "CPU-bound); 0 = one per CPU when a fetch covers at least `parallel_fetch_min_bars` bars "
                    "(TICKLAKE_FETCH_PROCESSES)",
    )
    parallel_fetch_min_bars: int = Field(default=2_000_000, ge=0)
    timeout_s: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=5, ge=0, description="Retries of a 5xx, timeout, connection error or error "
                             "code iTick does not document (a 429 is retried until quota_deadline_s)")
    quota_deadline_s: float = Field(
        default=600.0, gt=0,
        description="Seconds one call may keep being answered 429 (while the client slows down to what the server "
                    "grants) before it fails naming ITICK_PLAN and the rate the server granted",
    )
    backoff_base_s: float = Field(default=0.5, ge=0)
    bar_time_convention: Literal["exchange_local", "utc"] = Field(
        default_factory=env_default("bar_time_convention"),
        description="How kline `t` maps to a trading date: instant in the exchange's zone, or 00:00 UTC "
                    "(ITICK_BAR_TIME)",
    )
    sim_symbols_per_region: int = Field(default_factory=env_default("sim_symbols_per_region"), ge=1,
                                        description="Embedded simulator: symbols per region (TICKLAKE_SIM_SYMBOLS)")
    sim_seed: int = Field(default_factory=env_default("sim_seed"),
                          description="Embedded simulator: seed (TICKLAKE_SIM_SEED)")
    home: str | None = Field(default=None, description="TICKLAKE_HOME for the audit log and shared quota state")

    _client: ITickClient | None = PrivateAttr(default=None)

    @classmethod
    def from_env(cls, **overrides) -> ITickResource:
        """Build from ITICK_* variables (bad values name their variable); the token stays an EnvVar."""
        values: dict = env_values()
        if env_url("ITICK_BASE_URL"):  # a bad URL is refused here, at definitions load, with its value
            values["base_url"] = dg.EnvVar("ITICK_BASE_URL")
        if env_secret("ITICK_TOKEN"):  # checked when a run builds the resource (setup_for_execution)
            values["token"] = dg.EnvVar("ITICK_TOKEN")
        return cls(**{**values, **overrides})

    @property
    def config(self) -> ITickConfig:
        """The fields, with the server and token read from the environment when they are unset. A run whose run
        config gives only some of the resource's fields (a launchpad override of `window_seconds`, say) gets the
        others' defaults from Dagster, not the values `from_env` gave; without this it would talk to the embedded
        simulator although ITICK_BASE_URL and ITICK_TOKEN name a real server."""
        values = {name: getattr(self, name) for name in ITickConfig.field_names()}
        if values["base_url"] is None:
            values["base_url"] = env_url("ITICK_BASE_URL")
        if values["token"] is None:
            values["token"] = env_secret("ITICK_TOKEN")
        return ITickConfig(**values)

    @property
    def endpoint(self) -> str:
        return self.config.endpoint

    @property
    def source_name(self) -> str:
        return self.config.source_name

    def client(self) -> ITickClient:
        if self._client is None:
            self._client = build_client(self.config)
        return self._client

    def source(self, tags: dict[str, str] | None = None) -> ITickSource:
        return open_source(self.config, tags, client=self.client())

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Refuse a bad token, plan or URL while Dagster initialises the resource for a run, with the environment's
        values resolved: the run fails before any step starts, so nothing is requested, retried or audited, and
        the message names ITICK_TOKEN and the rule, never the value."""
        check_config(self.config)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
