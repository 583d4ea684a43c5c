"""The tenants file (`TICKLAKE_TENANTS`, docs/data-products.md): which business lines receive what, how, and how
often they may ask.

`Tenants.load(path)` reads and checks the TOML file against the data dictionary and the markets. Every fault is a
`TenantsFileError` naming the file, the key (`tenants.risk.datasets.klines_daily`) and the rule it breaks; an unknown
key is a fault too, so a typo never widens or narrows a grant silently. An API key is never in the file: the file
names the environment variable or secrets file holding it, or gives its sha256, and only the hash is kept.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import itertools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlsplit

from ticklake import settings
from ticklake.dictionary import DATASETS, Dataset
from ticklake.dictionary.analytics import KLINES_DAILY_ADJUSTED
from ticklake.dictionary.market_data import KLINES_DAILY
from ticklake.markets import MARKETS

PRICES = ("raw", "adjusted")
CURRENCIES = ("local", "USD")
FORMATS = ("parquet", "csv", "jsonl")
ALL_FIELDS = "all"  # `klines_daily = "all"`: every field the dataset has when the file is loaded, listed explicitly
DEFAULT_REQUESTS_PER_SECOND = 20.0
MAX_REQUESTS_PER_SECOND = 100_000.0

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")  # a tenant's name is an asset key part and a folder name
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

_TENANT_KEYS = frozenset({"description", "datasets", "regions", "window", "prices", "currency", "format", "target",
                          "api"})
_WINDOW_KEYS = frozenset({"start", "end", "last_years", "last_days"})
_API_KEYS = frozenset({"key_env", "key_file", "key_sha256", "requests_per_second", "burst"})


class TenantsFileError(ValueError):
    """The tenants file breaks a rule; the message names the file, the key and the rule."""


def grantable() -> dict[str, Dataset]:
    """The datasets a tenant may be granted: the lake's market, reference, fundamental and analytics tables (not the
    pipeline's operations tables, nor the `_history` tables behind the as-of macros)."""
    return {name: d for name, d in DATASETS.items()
            if d.in_lake and d.domain != "operations" and not d.history_for}


def key_sha256(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Window:
    """The dates a tenant may see: fixed `start`/`end` (either open), or the last N years or days up to today."""

    start: dt.date | None = None
    end: dt.date | None = None
    last_years: int | None = None
    last_days: int | None = None

    def bounds(self, today: dt.date) -> tuple[dt.date | None, dt.date | None]:
        """The [first, last] dates allowed on `today` (None: unbounded on that side)."""
        if self.last_years is not None:
            try:
                first = today.replace(year=today.year - self.last_years)
            except ValueError:  # 29 February
                first = today.replace(year=today.year - self.last_years, day=28)
            return first, today
        if self.last_days is not None:
            return today - dt.timedelta(days=self.last_days), today
        return self.start, self.end

    def describe(self) -> str:
        if self.last_years is not None:
            return f"the last {self.last_years} years"
        if self.last_days is not None:
            return f"the last {self.last_days} days"
        if self.start is None and self.end is None:
            return "every date"
        return f"{self.start or 'the beginning'} to {self.end or 'today'}"


@dataclass(frozen=True)
class Product:
    """One dataset a tenant receives: the dictionary dataset it is read from and the fields it may see, in the
    dictionary's order. `name` is the dataset the tenant asks for (`klines_daily`); `table` is where its rows come
    from (`klines_daily_adjusted` for a tenant on adjusted prices)."""

    name: str
    table: Dataset
    fields: tuple[str, ...]


@dataclass(frozen=True)
class ApiAccess:
    """How a tenant calls the read API: its key's sha256 (the key itself is never kept) and its rate limit."""

    key_hash: str
    requests_per_second: float = DEFAULT_REQUESTS_PER_SECOND
    burst: int = 0  # 0: one second's worth

    @property
    def key_id(self) -> str:
        """What logs and the audit name the key by: a prefix of its hash, never the key."""
        return self.key_hash[:12]

    @property
    def capacity(self) -> int:
        return self.burst or max(1, int(self.requests_per_second))

    def matches(self, presented: str) -> bool:
        return hmac.compare_digest(key_sha256(presented), self.key_hash)


@dataclass(frozen=True)
class Tenant:
    name: str
    products: Mapping[str, Product]
    regions: tuple[str, ...]
    window: Window = field(default_factory=Window)
    prices: Literal["raw", "adjusted"] = "raw"
    currency: Literal["local", "USD"] = "local"
    format: Literal["parquet", "csv", "jsonl"] = "parquet"
    target: str = ""  # a directory or s3://bucket/prefix; deliveries go to <target>/<dataset>/region=<R>/
    description: str = ""
    api: ApiAccess | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "products", MappingProxyType(dict(self.products)))
        object.__setattr__(self, "regions", tuple(self.regions))

    def __repr__(self) -> str:  # never the key hash in a log line either
        return f"Tenant({self.name!r}, products={list(self.products)}, regions={list(self.regions)})"


@dataclass(frozen=True)
class Tenants:
    path: Path | None
    tenants: Mapping[str, Tenant]

    def __post_init__(self) -> None:
        object.__setattr__(self, "tenants", MappingProxyType(dict(self.tenants)))

    def __iter__(self):
        return iter(self.tenants.values())

    def __len__(self) -> int:
        return len(self.tenants)

    def get(self, name: str) -> Tenant:
        try:
            return self.tenants[name]
        except KeyError:
            raise KeyError(f"no tenant {name!r} in {self.path} (tenants: {', '.join(self.tenants) or 'none'})") \
                from None

    def by_key(self, presented: str) -> Tenant | None:
        """The tenant whose API key this is (compared by hash in constant time), or None."""
        found = None
        for tenant in self.tenants.values():
            if tenant.api is not None and tenant.api.matches(presented):
                found = tenant
        return found

    @classmethod
    def load(cls, path: Path | str | None, *, environ: Mapping[str, str] | None = None) -> Tenants:
        if path is None:
            return cls(None, {})
        return _Reader(Path(path), os.environ if environ is None else environ).load()

    @classmethod
    def from_env(cls) -> Tenants:
        return cls.load(settings.tenants_file())


_key = settings.toml_key


class _Reader:
    def __init__(self, path: Path, environ: Mapping[str, str]) -> None:
        self.path = path
        self.environ = environ

    def fail(self, key: tuple[str, ...], rule: str) -> TenantsFileError:
        return TenantsFileError(f"tenants file {self.path}: {_key(*key)}: {rule}")

    def load(self) -> Tenants:
        doc = settings.read_toml_file(self.path, "tenants file", TenantsFileError)
        self.known(doc, (), frozenset({"tenants"}))
        tenants = doc.get("tenants", {})
        if not isinstance(tenants, dict) or not tenants:
            raise self.fail(("tenants",), "declare at least one tenant as a table: [tenants.<name>]")
        out = {name: self.tenant(name, entry) for name, entry in tenants.items()}
        hashes = [t.api.key_hash for t in out.values() if t.api is not None]
        if len(set(hashes)) != len(hashes):
            shared = sorted(t.name for t in out.values() if t.api and hashes.count(t.api.key_hash) > 1)
            raise self.fail(("tenants",), f"tenants {', '.join(shared)} have the same API key: give each its own")
        targets = sorted((t.target.rstrip("/") + "/", t.name) for t in out.values())
        for (outer, first), (inner, second) in itertools.pairwise(targets):
            if inner.startswith(outer):  # one tenant's files would land in (or be cleaned up from) another's folder
                where = "the same as" if inner == outer else "inside"
                raise self.fail(("tenants", second, "target"), f"{inner.rstrip('/')} is {where} tenant {first}'s "
                                "target: give each tenant a delivery target of its own")
        return Tenants(self.path, out)

    def known(self, table: Mapping[str, Any], key: tuple[str, ...], allowed: frozenset[str]) -> None:
        for name in table:
            if name not in allowed:
                raise self.fail((*key, name), f"unknown key (known: {', '.join(sorted(allowed))})")

    def tenant(self, name: str, entry: Any) -> Tenant:
        key = ("tenants", name)
        if not _NAME.match(name):
            raise self.fail(key, "a tenant's name is 1 to 32 lowercase letters, digits or '_', starting with a letter")
        if not isinstance(entry, dict):
            raise self.fail(key, "must be a table: [tenants.<name>]")
        self.known(entry, key, _TENANT_KEYS)
        prices = self.choice(entry, (*key, "prices"), PRICES, "raw")
        return Tenant(
            name=name,
            products=self.products(entry.get("datasets"), (*key, "datasets"), prices),
            regions=self.regions(entry.get("regions"), (*key, "regions")),
            window=self.window(entry.get("window"), (*key, "window")),
            prices=prices,
            currency=self.choice(entry, (*key, "currency"), CURRENCIES, "local"),
            format=self.choice(entry, (*key, "format"), FORMATS, "parquet"),
            target=self.target(entry.get("target"), (*key, "target"), name),
            description=self.text(entry.get("description", ""), (*key, "description")),
            api=self.api(entry.get("api"), (*key, "api")),
        )

    def text(self, value: Any, key: tuple[str, ...]) -> str:
        if not isinstance(value, str):
            raise self.fail(key, "must be a string")
        return value

    def choice(self, entry: Mapping[str, Any], key: tuple[str, ...], choices: tuple[str, ...], default: str) -> Any:
        value = entry.get(key[-1], default)
        if value not in choices:
            raise self.fail(key, f"{value!r} is not one of {', '.join(choices)}")
        return value

    def products(self, value: Any, key: tuple[str, ...], prices: str) -> dict[str, Product]:
        if not isinstance(value, dict) or not value:
            raise self.fail(key, 'grant at least one dataset and its fields: [tenants.<name>.datasets] with '
                                 'klines_daily = ["trade_date", "close"] (or "all")')
        available = grantable()
        out = {}
        for name, fields in value.items():
            if name not in available:
                raise self.fail((*key, name), f"unknown dataset (grantable: {', '.join(sorted(available))})")
            table = KLINES_DAILY_ADJUSTED if name == KLINES_DAILY.name and prices == "adjusted" else available[name]
            out[name] = Product(name, table, self.fields(fields, (*key, name), table))
        return out

    def fields(self, value: Any, key: tuple[str, ...], table: Dataset) -> tuple[str, ...]:
        if value == ALL_FIELDS:
            return tuple(table.columns)
        if not isinstance(value, list) or not value or not all(isinstance(f, str) for f in value):
            raise self.fail(key, f'list the fields it may see (["trade_date", "close"]) or say "{ALL_FIELDS}"')
        unknown = [f for f in value if f not in table.columns]
        if unknown:
            raise self.fail(key, f"unknown field {unknown[0]!r} of {table.name} (fields: {', '.join(table.columns)})")
        if len(set(value)) != len(value):
            raise self.fail(key, "a field is listed twice")
        return tuple(c for c in table.columns if c in value)  # the dictionary's order

    def regions(self, value: Any, key: tuple[str, ...]) -> tuple[str, ...]:
        if not isinstance(value, list) or not value or not all(isinstance(r, str) for r in value):
            raise self.fail(key, 'list the regions it may see: ["US", "HK"]')
        for region in value:
            if region not in MARKETS:
                raise self.fail(key, f"unknown region {region!r} (known: {', '.join(MARKETS)})")
        if len(set(value)) != len(value):
            raise self.fail(key, "a region is listed twice")
        return tuple(value)

    def window(self, value: Any, key: tuple[str, ...]) -> Window:
        if value is None:
            return Window()
        if not isinstance(value, dict):
            raise self.fail(key, "must be a table: { last_years = 5 }, { last_days = 30 } or "
                                 "{ start = 2015-01-01, end = 2020-12-31 }")
        self.known(value, key, _WINDOW_KEYS)
        rolling = [k for k in ("last_years", "last_days") if k in value]
        fixed = [k for k in ("start", "end") if k in value]
        if (rolling and fixed) or len(rolling) > 1:
            raise self.fail(key, "a window is either rolling (last_years or last_days) or fixed (start, end)")
        for k in rolling:
            if not isinstance(value[k], int) or isinstance(value[k], bool) or value[k] < 1:
                raise self.fail((*key, k), "must be a whole number of at least 1")
        for k in fixed:
            if type(value[k]) is not dt.date:
                raise self.fail((*key, k), "must be a TOML date (2015-01-01, unquoted)")
        if len(fixed) == 2 and value["start"] > value["end"]:
            raise self.fail(key, "start is after end")
        return Window(**value)

    def target(self, value: Any, key: tuple[str, ...], name: str) -> str:
        if value is None:
            return str(settings.home() / "deliveries" / name)
        if not isinstance(value, str) or not value:
            raise self.fail(key, "must be an absolute directory or s3://bucket/prefix")
        if value.startswith("s3://"):
            parts = urlsplit(value)
            if not parts.netloc:
                raise self.fail(key, "an s3 target is s3://bucket/prefix")
            return value.rstrip("/")
        path = Path(value).expanduser()
        if not path.is_absolute():
            raise self.fail(key, "a directory target must be an absolute path")
        if path.exists() and not path.is_dir():
            raise self.fail(key, f"{path} exists and is not a directory")
        return str(path)

    def api(self, value: Any, key: tuple[str, ...]) -> ApiAccess | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.fail(key, "must be a table: [tenants.<name>.api]")
        if "key" in value:
            raise self.fail((*key, "key"), "an API key never goes in the tenants file: name the environment variable "
                                           "holding it (key_env) or its secrets file (key_file), or give its sha256 "
                                           "(key_sha256)")
        self.known(value, key, _API_KEYS)
        given = [k for k in ("key_env", "key_file", "key_sha256") if k in value]
        if len(given) != 1:
            raise self.fail(key, "give exactly one of key_env (an environment variable's name), key_file (a secrets "
                                 "file's path) or key_sha256 (the key's hex sha256)")
        how = given[0]
        raw = value[how]
        if not isinstance(raw, str):
            raise self.fail((*key, how), "must be a string")
        if how == "key_sha256":
            if not _SHA256.match(raw):
                raise self.fail((*key, how), "must be 64 lowercase hex digits (sha256 of the key)")
            key_hash = raw
        elif how == "key_env":
            if not _ENV_NAME.match(raw):
                raise self.fail((*key, how), "must be an environment variable's name (TICKLAKE_KEY_RISK)")
            secret = self.environ.get(raw)
            if not secret:
                raise self.fail((*key, how), f"the environment variable {raw} is not set (it holds the tenant's key)")
            key_hash = key_sha256(secret)
        else:
            try:
                secret = Path(raw).expanduser().read_text().strip()
            except OSError as exc:
                raise self.fail((*key, how), f"cannot read {raw} ({exc.strerror or exc})") from None
            if not secret:
                raise self.fail((*key, how), f"{raw} is empty (it holds the tenant's key)")
            key_hash = key_sha256(secret)
        rate = value.get("requests_per_second", DEFAULT_REQUESTS_PER_SECOND)
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate <= MAX_REQUESTS_PER_SECOND:
            raise self.fail((*key, "requests_per_second"), f"must be a number above 0, at most "
                                                           f"{MAX_REQUESTS_PER_SECOND:g}")
        burst = value.get("burst", 0)
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 0:
            raise self.fail((*key, "burst"), "must be a whole number of requests (0: one second's worth)")
        return ApiAccess(key_hash, float(rate), burst)
