"""Where ticklake keeps its data, and the knobs read from the environment (documented in README).

Every environment variable is read through the `env_*` helpers below, so a bad value is refused with a
`ConfigError` that names the variable, the value and the rule it breaks, never a parser's traceback.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ticklake.markets import DEFAULT_REGIONS, MARKETS

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value breaks its rule; the message names the environment variable to fix."""


@dataclass(frozen=True)
class Paths:
    home: Path

    @property
    def lake(self) -> Path:
        return self.home / "lake"

    @property
    def warehouse(self) -> Path:
        """The analysts' DuckDB file: an immutable snapshot, replaced atomically after each run."""
        return self.home / "warehouse.duckdb"

    @property
    def pipeline_db(self) -> Path:
        """ticklake's own DuckDB file, written by the pipeline only (analysts open `warehouse`)."""
        return self.state / "pipeline.duckdb"

    @property
    def audit(self) -> Path:
        return self.home / "audit"

    @property
    def state(self) -> Path:
        return self.home / "state"


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    return None if value is None or value.strip() == "" else value


def env_parsed(name: str, default: T, parse: Callable[[str], T], rule: str) -> T:
    """`parse(os.environ[name])`, or `default` when unset or blank; a value that fails is a ConfigError."""
    raw = _raw(name)
    if raw is None:
        return default
    try:
        return parse(raw.strip())
    except (ValueError, TypeError):
        raise ConfigError(f"{name}={raw!r} is invalid: {rule}") from None


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    rule = "must be a whole number" + _bounds(minimum, maximum)

    def parse(text: str) -> int:
        value = int(text)
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise ValueError
        return value

    return env_parsed(name, default, parse, rule)


def env_choice(name: str, default: str, choices: Sequence[str]) -> str:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError
        return text

    return env_parsed(name, default, parse, f"must be one of {', '.join(choices)}")


def env_date(name: str, default: dt.date) -> dt.date:
    return env_parsed(name, default, dt.date.fromisoformat, "must be a date written YYYY-MM-DD")


def _bounds(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f" from {minimum} to {maximum}"
    if minimum is not None:
        return f" >= {minimum}"
    return f" <= {maximum}" if maximum is not None else ""


def home() -> Path:
    """TICKLAKE_HOME, default ./data (relative to the working directory)."""
    return Path(os.environ.get("TICKLAKE_HOME") or "data").resolve()


def regions() -> tuple[str, ...]:
    """TICKLAKE_REGIONS (comma-separated), default US,HK,SH,JP; each must be a known market."""
    raw = _raw("TICKLAKE_REGIONS")
    if raw is None:
        return DEFAULT_REGIONS
    chosen = tuple(dict.fromkeys(r.strip().upper() for r in raw.split(",") if r.strip()))
    unknown = [r for r in chosen if r not in MARKETS]
    if unknown or not chosen:
        raise ConfigError(f"TICKLAKE_REGIONS={raw!r} is invalid: must be a comma-separated list of "
                          f"{', '.join(sorted(MARKETS))}" + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
    return chosen


def start_date() -> dt.date:
    """TICKLAKE_START_DATE: the first month partition is the month holding this date (default 2016-01-01)."""
    return env_date("TICKLAKE_START_DATE", dt.date(2016, 1, 1))
