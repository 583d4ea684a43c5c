"""The sources file (`TICKLAKE_SOURCES`, docs/golden-copy.md): which sources feed the lake and how the golden copy
arbitrates between them.

`Sources.load(path, api_name=...)` reads and checks the TOML file. Every fault is a `SourcesFileError` naming the
file, the key (`sources.quandl.format`, `arbitration.regions.US.fields.close`) and the rule it breaks; an unknown
key is a fault too, so a typo never silently falls back to a default. Without a file iTick is the only source.

The file's API entry (`[sources.itick]`, kind `api`; it may be omitted) stands for the iTick source of the run, whose
name in the lake is `api_name` (`itick`, or `itick-sim` on the simulator): a priority list may name it either way,
and the loaded objects always carry `api_name`.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlsplit

from ticklake import settings
from ticklake.dictionary import SOURCE_PATTERN, SYMBOL_PATTERN
from ticklake.markets import MARKETS

API_FORMAT = "itick"
API_ENTRY = "itick"  # the API source's name in the file (its name in the lake is the run's `api_name`)
FORMATS_PACKAGE = "ticklake.sources.files.formats"
FALLBACK_FILE_FORMATS = frozenset({"quandl_eod"})  # until FORMATS_PACKAGE exists
PRICE_FIELDS = ("open", "high", "low", "close")
FIELDS = (*PRICE_FIELDS, "volume")
MIN_POLL_SECONDS = 10
DEFAULT_POLL_SECONDS = 60
DEFAULT_PRICE_TOLERANCE_BPS = 5.0
DEFAULT_VOLUME_TOLERANCE_PCT = 1.0

_SOURCE_NAME = re.compile(SOURCE_PATTERN)
_SYMBOL = re.compile(SYMBOL_PATTERN)

_API_KEYS = frozenset({"kind", "format"})
_FILE_DROP_KEYS = frozenset({"kind", "format", "regions", "drop", "poll_seconds", "symbols"})
_TOP_KEYS = frozenset({"sources", "arbitration"})
_ARBITRATION_KEYS = frozenset({"priority", "price_tolerance_bps", "volume_tolerance_pct", "regions"})
_REGION_KEYS = frozenset({"priority", "fields"})


class SourcesFileError(ValueError):
    """The sources file breaks a rule; the message names the file, the key and the rule."""


def file_formats() -> frozenset[str]:
    """The formats a file drop may declare: the modules of `ticklake.sources.files.formats` (one per format)."""
    try:
        package = importlib.import_module(FORMATS_PACKAGE)
    except ModuleNotFoundError as exc:
        if exc.name is not None and FORMATS_PACKAGE.startswith(exc.name):
            return FALLBACK_FILE_FORMATS
        raise
    return frozenset(m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_"))


def _frozen(mapping: Mapping) -> Mapping:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class SourceSpec:
    """One source: the API (`kind="api"`, format `itick`) or a vendor's file drop (`kind="file_drop"`).

    `drop`: where a file drop's files arrive, an absolute local directory or `s3://bucket/prefix` (files of a
    source covering several regions sit in `<drop>/<REGION>/`); None for the API. `poll_seconds`: the drop sensor's
    minimum interval (0 for the API, which is not polled). `symbols`: vendor ticker -> symbol (a ticker not listed
    is its own symbol)."""

    name: str
    kind: Literal["api", "file_drop"]
    format: str
    regions: tuple[str, ...]
    drop: str | None = None
    poll_seconds: int = DEFAULT_POLL_SECONDS
    symbols: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        object.__setattr__(self, "regions", tuple(self.regions))
        object.__setattr__(self, "symbols", _frozen(self.symbols))

    def symbol(self, ticker: str) -> str:
        """The symbol a vendor ticker stands for."""
        return self.symbols.get(ticker, ticker)


@dataclass(frozen=True)
class RegionPolicy:
    """A region's own priority (empty: the default's) and per-field priorities (field -> sources)."""

    priority: tuple[str, ...] = ()
    fields: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        object.__setattr__(self, "priority", tuple(self.priority))
        object.__setattr__(self, "fields", _frozen({f: tuple(names) for f, names in self.fields.items()}))


@dataclass(frozen=True)
class Policy:
    """How the golden copy picks a value when sources disagree.

    `priority` ranks every declared source (a file's list is completed with the sources it leaves out, in the
    order they are declared, the API first). Values agree when within `price_tolerance_bps` basis points (open,
    high, low, close) or `volume_tolerance_pct` percent (volume) of the priority source's value."""

    priority: tuple[str, ...]
    price_tolerance_bps: float = DEFAULT_PRICE_TOLERANCE_BPS
    volume_tolerance_pct: float = DEFAULT_VOLUME_TOLERANCE_PCT
    regions: Mapping[str, RegionPolicy] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        object.__setattr__(self, "priority", tuple(self.priority))
        object.__setattr__(self, "regions", _frozen(self.regions))

    def order(self, region: str, field: str) -> tuple[str, ...]:
        """The source priority for `field` in `region`: the region's per-field list, else the region's list, else
        the default; a list that leaves sources out is followed by them in the order of the next level down, so
        every declared source is ranked."""
        if field not in FIELDS:
            raise ValueError(f"unknown field {field!r}: one of {', '.join(FIELDS)}")
        policy = self.regions.get(region, RegionPolicy())
        levels = (policy.fields.get(field, ()), policy.priority, self.priority)
        return tuple(dict.fromkeys(name for level in levels for name in level))

    @property
    def price_tolerance(self) -> float:
        """The price tolerance as a relative fraction (5 bps -> 0.0005)."""
        return self.price_tolerance_bps / 10_000

    @property
    def volume_tolerance(self) -> float:
        """The volume tolerance as a relative fraction (1 % -> 0.01)."""
        return self.volume_tolerance_pct / 100

    def tolerance(self, field: str) -> float:
        """The relative tolerance for `field` (open, high, low, close: the price's; volume: the volume's)."""
        if field in PRICE_FIELDS:
            return self.price_tolerance
        if field == "volume":
            return self.volume_tolerance
        raise ValueError(f"unknown field {field!r}: one of {', '.join(FIELDS)}")


@dataclass(frozen=True)
class Sources:
    """The run's sources: the API, the vendors' file drops (in the file's order) and the arbitration policy."""

    api: SourceSpec
    vendors: tuple[SourceSpec, ...]
    policy: Policy

    @property
    def all(self) -> tuple[SourceSpec, ...]:
        return (self.api, *self.vendors)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.all)

    def source(self, name: str) -> SourceSpec:
        for spec in self.all:
            if spec.name == name:
                return spec
        raise KeyError(f"no source named {name!r}: declared are {', '.join(self.names)}")

    @classmethod
    def load(cls, path: Path | str | None, *, api_name: str) -> Sources:
        """The sources declared in the TOML file at `path`; None: the API source alone (named `api_name`)."""
        if not _SOURCE_NAME.match(api_name):
            raise ValueError(f"api_name={api_name!r} is not a source name ({SOURCE_PATTERN})")
        api = SourceSpec(api_name, "api", API_FORMAT, settings.regions(), None, 0)
        if path is None:
            return cls(api, (), Policy((api_name,)))
        return _Loader(Path(path), api).load()

    @classmethod
    def from_env(cls, *, api_name: str) -> Sources:
        """The sources of `TICKLAKE_SOURCES` (`settings.sources_file()`)."""
        return cls.load(settings.sources_file(), api_name=api_name)


_key = settings.toml_key


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class _Loader:
    def __init__(self, path: Path, api: SourceSpec) -> None:
        self.path = path
        self.api = api
        self.api_entry = API_ENTRY  # the API's name in the file
        self.vendors: list[SourceSpec] = []

    def fail(self, key: tuple[str, ...] | str, rule: str) -> SourcesFileError:
        where = _key(*key) if isinstance(key, tuple) else key
        return SourcesFileError(f"sources file {self.path}: {where}: {rule}")

    def load(self) -> Sources:
        document = settings.read_toml_file(self.path, "sources file", SourcesFileError)
        self.known(document, (), _TOP_KEYS)
        self.read_sources(self.table(document, ("sources",)))
        policy = self.read_policy(self.table(document, ("arbitration",)))
        return Sources(self.api, tuple(self.vendors), policy)

    # -- shapes

    def known(self, table: Mapping[str, Any], key: tuple[str, ...], allowed: frozenset[str], what: str = "") -> None:
        for name in table:
            if name not in allowed:
                where = (*key, name)
                raise self.fail(where, f"unknown key{what} (allowed: {', '.join(sorted(allowed))})")

    def table(self, parent: Mapping[str, Any], key: tuple[str, ...]) -> Mapping[str, Any]:
        value = parent.get(key[-1], {})
        if not isinstance(value, dict):
            raise self.fail(key, "must be a table")
        return value

    def names(self, value: Any, key: tuple[str, ...]) -> tuple[str, ...]:
        """A priority list: declared sources (the API by its file name or its run name), each once."""
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise self.fail(key, "must be a non-empty list of source names")
        declared = {self.api_entry: self.api.name, self.api.name: self.api.name, **{v.name: v.name for v in
                                                                                     self.vendors}}
        unknown = [v for v in value if v not in declared]
        if unknown:
            raise self.fail(key, f"names a source that is not declared: {', '.join(unknown)} (declared: "
                                 f"{', '.join(dict.fromkeys(declared.values()))})")
        resolved = [declared[v] for v in value]
        duplicates = sorted({v for v in resolved if resolved.count(v) > 1})
        if duplicates:
            raise self.fail(key, f"names a source more than once: {', '.join(duplicates)}")
        return tuple(resolved)

    # -- [sources]

    def read_sources(self, sources: Mapping[str, Any]) -> None:
        api_entries = [n for n, e in sources.items() if isinstance(e, dict) and e.get("kind") == "api"]
        if len(api_entries) > 1:
            raise self.fail(("sources", api_entries[1]),
                            f"more than one api source ({', '.join(api_entries)}): iTick is the only API source")
        if api_entries:
            self.api_entry = api_entries[0]
        for name, entry in sources.items():
            key = ("sources", name)
            if not _SOURCE_NAME.match(name):
                raise self.fail(key, f"source name {name!r} must match {SOURCE_PATTERN}")
            if not isinstance(entry, dict):
                raise self.fail(key, "must be a table")
            kind = entry.get("kind")
            if kind is None:
                raise self.fail((*key, "kind"), "missing: every source declares kind = \"api\" or \"file_drop\"")
            if kind not in ("api", "file_drop"):
                raise self.fail((*key, "kind"), f"{kind!r} is not a kind: must be \"api\" or \"file_drop\"")
            if kind == "api":
                self.read_api(entry, key)
            else:
                self.vendors.append(self.read_file_drop(name, entry, key))

    def read_format(self, entry: Mapping[str, Any], key: tuple[str, ...], known: frozenset[str]) -> str:
        if "format" not in entry:
            raise self.fail((*key, "format"), f"missing: one of {', '.join(sorted(known))}")
        value = entry["format"]
        if not isinstance(value, str) or value not in known:
            raise self.fail((*key, "format"), f"unknown format {value!r} for a {entry['kind']} source "
                                              f"(known: {', '.join(sorted(known))})")
        return value

    def read_api(self, entry: Mapping[str, Any], key: tuple[str, ...]) -> None:
        self.known(entry, key, _API_KEYS, " for an api source (its regions are TICKLAKE_REGIONS)")
        self.read_format(entry, key, frozenset({API_FORMAT}))

    def read_file_drop(self, name: str, entry: Mapping[str, Any], key: tuple[str, ...]) -> SourceSpec:
        if name in (API_ENTRY, self.api_entry, self.api.name):
            raise self.fail(key, f"the name {name!r} is the API source's: a file drop needs a name of its own")
        self.known(entry, key, _FILE_DROP_KEYS, " for a file_drop source")
        fmt = self.read_format(entry, key, file_formats())
        return SourceSpec(name, "file_drop", fmt, self.read_regions(entry.get("regions"), (*key, "regions")),
                          self.read_drop(name, entry.get("drop"), (*key, "drop")),
                          self.read_poll(entry.get("poll_seconds", DEFAULT_POLL_SECONDS), (*key, "poll_seconds")),
                          self.read_symbols(entry.get("symbols", {}), (*key, "symbols")))

    def read_regions(self, value: Any, key: tuple[str, ...]) -> tuple[str, ...]:
        known = ", ".join(sorted(MARKETS))
        if value is None:
            raise self.fail(key, f"missing: a file drop lists the regions its files cover (of {known})")
        if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
            raise self.fail(key, f"must be a list of regions (of {known})")
        if not value:
            raise self.fail(key, f"empty: a file drop covers at least one region (of {known})")
        unknown = [r for r in value if r not in MARKETS]
        if unknown:
            raise self.fail(key, f"unknown region {', '.join(map(repr, unknown))} (known: {known})")
        if len(set(value)) != len(value):
            raise self.fail(key, "lists a region more than once")
        return tuple(value)

    def read_drop(self, name: str, value: Any, key: tuple[str, ...]) -> str:
        if value is None:
            return str(settings.home() / "drop" / name)
        rule = "must be an absolute local path or s3://bucket/prefix"
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, rule)
        if "://" in value:
            parts = urlsplit(value)
            if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
                raise self.fail(key, f"{value!r}: {rule}")
            return value
        if not Path(value).is_absolute():
            raise self.fail(key, f"{value!r}: {rule} (a relative path would depend on the working directory)")
        return value

    def read_poll(self, value: Any, key: tuple[str, ...]) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < MIN_POLL_SECONDS:
            raise self.fail(key, f"{value!r}: must be a whole number of seconds >= {MIN_POLL_SECONDS}")
        return value

    def read_symbols(self, value: Any, key: tuple[str, ...]) -> Mapping[str, str]:
        if not isinstance(value, dict):
            raise self.fail(key, "must be a table of vendor ticker = symbol")
        for ticker, symbol in value.items():
            if not ticker:
                raise self.fail((*key, ticker), "a vendor ticker must not be empty")
            if not isinstance(symbol, str) or not _SYMBOL.match(symbol):
                raise self.fail((*key, ticker), f"{symbol!r} is not a symbol: must match {SYMBOL_PATTERN}")
        return value

    # -- [arbitration]

    def read_policy(self, table: Mapping[str, Any]) -> Policy:
        key = ("arbitration",)
        self.known(table, key, _ARBITRATION_KEYS)
        everyone = (self.api.name, *(v.name for v in self.vendors))
        declared = self.names(table["priority"], (*key, "priority")) if "priority" in table else ()
        priority = tuple(dict.fromkeys((*declared, *everyone)))
        price = self.tolerance(table, (*key, "price_tolerance_bps"), DEFAULT_PRICE_TOLERANCE_BPS)
        volume = self.tolerance(table, (*key, "volume_tolerance_pct"), DEFAULT_VOLUME_TOLERANCE_PCT)
        regions = {region: self.read_region(region, policy, (*key, "regions", region))
                   for region, policy in self.table(table, (*key, "regions")).items()}
        return Policy(priority, price, volume, regions)

    def tolerance(self, table: Mapping[str, Any], key: tuple[str, ...], default: float) -> float:
        value = table.get(key[-1], default)
        if not _is_number(value) or not math.isfinite(value) or value < 0:
            raise self.fail(key, f"{value!r}: must be a number >= 0")
        return float(value)

    def read_region(self, region: str, table: Any, key: tuple[str, ...]) -> RegionPolicy:
        if region not in MARKETS:
            raise self.fail(key, f"unknown region {region!r} (known: {', '.join(sorted(MARKETS))})")
        covering = [s.name for s in (self.api, *self.vendors) if region in s.regions]
        if not covering:
            raise self.fail(key, f"a policy for region {region}, which no declared source covers (the API covers "
                                 f"TICKLAKE_REGIONS={','.join(self.api.regions)})")
        if not isinstance(table, dict):
            raise self.fail(key, "must be a table")
        self.known(table, key, _REGION_KEYS)
        priority = self.names(table["priority"], (*key, "priority")) if "priority" in table else ()
        fields = self.table(table, (*key, "fields"))
        for name in fields:
            if name not in FIELDS:
                raise self.fail((*key, "fields", name), f"not a field: per-field priority is for "
                                                        f"{', '.join(FIELDS)}")
        return RegionPolicy(priority, {name: self.names(names, (*key, "fields", name))
                                       for name, names in fields.items()})
