"""Vendor file drops: a vendor delivers files (CSV, gzipped or not) to a directory or an S3 prefix; each file's
format reads it into bars and quarantined rows, or refuses it whole.

- `contract`: `FileFormat`, `Delivery`, `FileRefused` and the rule names.
- `formats/`: one module per vendor layout, each exposing `FORMAT` (a `FileFormat`); another layout is one more
  module there, found by `formats()`.
- `screen`: the row checks that need the lake's knowledge (the security master, the calendar).
- `drop`: listing and reading a drop (a local directory or s3://bucket/prefix).
"""

from __future__ import annotations

import functools
import importlib
import pkgutil

# The subpackage first, then the function of the same name: importing a subpackage sets it as an attribute of its
# parent, so `formats` below must be defined after it to stay the function (import the modules by their full name,
# `from ticklake.sources.files.formats import quandl_eod`, which reads sys.modules, not this attribute).
from ticklake.sources.files import formats as _formats_package
from ticklake.sources.files.contract import (
    BAD_CODE,
    BARS_COLUMNS,
    DUPLICATE_KEY,
    NOT_A_DATE,
    NOT_A_NUMBER,
    OFF_CALENDAR,
    REJECTED_COLUMNS,
    UNIT_JUMP,
    UNKNOWN_CODE,
    Delivery,
    FileFormat,
    FileRefused,
)

__all__ = [
    "BAD_CODE",
    "BARS_COLUMNS",
    "DUPLICATE_KEY",
    "NOT_A_DATE",
    "NOT_A_NUMBER",
    "OFF_CALENDAR",
    "REJECTED_COLUMNS",
    "UNIT_JUMP",
    "UNKNOWN_CODE",
    "Delivery",
    "FileFormat",
    "FileRefused",
    "format_named",
    "formats",
]


@functools.cache
def _discovered() -> dict[str, FileFormat]:
    package = _formats_package
    found: dict[str, FileFormat] = {}
    for module in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if module.name.startswith("_"):
            continue
        fmt = getattr(importlib.import_module(f"{package.__name__}.{module.name}"), "FORMAT", None)
        if not isinstance(fmt, FileFormat):
            raise TypeError(f"ticklake/sources/files/formats/{module.name}.py must expose FORMAT = FileFormat(...)")
        if fmt.name != module.name:
            raise ValueError(f"ticklake/sources/files/formats/{module.name}.py names its format {fmt.name!r}: a "
                             f"format is named after its module ({module.name!r})")
        found[fmt.name] = fmt
    return found


def formats() -> dict[str, FileFormat]:
    """Every file format, by name: the modules of ticklake/sources/files/formats/ (each exposes `FORMAT`)."""
    return dict(_discovered())


def format_named(name: str) -> FileFormat:
    """The format `name`; a KeyError naming the known ones otherwise (for the sources file's `format`)."""
    known = _discovered()
    if name not in known:
        raise KeyError(f"no file format {name!r}: the known ones are {', '.join(sorted(known)) or '(none)'} "
                       f"(one module each in ticklake/sources/files/formats/)")
    return known[name]
