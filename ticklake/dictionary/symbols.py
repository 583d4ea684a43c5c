"""Instrument codes: the data dictionary's symbol rule, applied before a code reaches a URL, a query, a path or a
log line. Pure functions, so the rule is unit- and property-testable in one place.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ticklake.dictionary import SYMBOL_MAX_LENGTH, SYMBOL_PATTERN, SYMBOL_RULE

__all__ = ["SYMBOL_RULE", "invalid_symbols", "is_symbol", "shown", "symbol_problem"]

# fullmatch, never match: Python's `$` also matches before a trailing newline, so "AAPL\n" would pass re.match.
_RULE = re.compile(SYMBOL_PATTERN)
_ALLOWED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
SHOWN_CHARS = 24


def is_symbol(code: object) -> bool:
    """Whether `code` is a string that fully matches the symbol rule."""
    return isinstance(code, str) and _RULE.fullmatch(code) is not None


def shown(code: object, limit: int = SHOWN_CHARS) -> str:
    """`code` made safe for a message: control and non-ASCII characters escaped, cut to `limit` characters (the
    full length is said), so a hostile 1,500-character code or a line break cannot flood or forge a log line."""
    if not isinstance(code, str):
        return f"<{type(code).__name__}>"
    head = ascii(code[:limit])[1:-1]
    if len(code) <= limit and len(head) <= limit:
        return f"'{head}'"
    return f"'{head[:limit]}'... ({len(code)} chars)"


def symbol_problem(code: object) -> str | None:
    """Why `code` cannot be used as an instrument code (a short, printable reason), or None when it can."""
    if code is None:
        return "no code"
    if not isinstance(code, str):
        return f"the code is a {type(code).__name__}, not a string"
    if _RULE.fullmatch(code):
        return None
    if not code:
        return "empty code"
    if len(code) > SYMBOL_MAX_LENGTH:
        return f"the code is {len(code)} characters long (at most {SYMBOL_MAX_LENGTH})"
    if any(c.isspace() for c in code):
        return "the code contains whitespace"
    bad = sorted({c for c in code if c not in _ALLOWED})
    if bad:
        return f"the code contains {', '.join(ascii(c) for c in bad[:3])}"
    return "the code must start with a letter or a digit"


def invalid_symbols(codes: Iterable[object]) -> list[tuple[object, str]]:
    """(code, reason) for every code that breaks the rule, in order."""
    return [(code, problem) for code in codes if (problem := symbol_problem(code)) is not None]
