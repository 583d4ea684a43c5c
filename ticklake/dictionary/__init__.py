"""The data dictionary: every stored field described once, every dataset declared once.

Each domain module declares its datasets; `DATASETS` is the registry the generic write path, the lake DDL,
the Dagster metadata and the table reference iterate over. Adding a dataset is adding it here.
"""

from __future__ import annotations

from ticklake.dictionary import analytics, fundamentals, market_data, operations, reference_data
from ticklake.dictionary.core import (
    DOMAINS,
    WRITE_MODES,
    Dataset,
    Domain,
    Field,
    LakeKey,
    LogicalType,
    Macro,
    RowRule,
    WriteMode,
    as_of_macro,
    history_of,
    month_bounds,
)
from ticklake.dictionary.fields import (
    SOURCE_PATTERN,
    SYMBOL_MAX_LENGTH,
    SYMBOL_PATTERN,
    SYMBOL_RULE,
)
from ticklake.dictionary.market_data import KLINES_DAILY
from ticklake.dictionary.operations import LAKE_PARTITIONS
from ticklake.dictionary.reference_data import SECURITIES

_MODULES = (market_data, reference_data, fundamentals, analytics, operations)


def _registry(kind: type) -> dict:
    found = [value for module in _MODULES for value in vars(module).values() if isinstance(value, kind)]
    return {item.name: item for item in found}


def _with_history(declared: dict[str, Dataset]) -> dict[str, Dataset]:
    """Every declared dataset, each versioned one followed by its history dataset."""
    out: dict[str, Dataset] = {}
    for name, dataset in declared.items():
        out[name] = dataset
        if dataset.versioned:
            history = history_of(dataset)
            out[history.name] = history
    return out


DATASETS: dict[str, Dataset] = _with_history(_registry(Dataset))
# The as-of macros first: declared macros may read them (DuckDB binds a table macro's body when it is created).
MACROS: dict[str, Macro] = {**{m.name: m for m in (as_of_macro(d) for d in DATASETS.values() if d.versioned)},
                            **_registry(Macro)}
HISTORY: dict[str, Dataset] = {d.history_for: d for d in DATASETS.values() if d.history_for}  # by versioned name

__all__ = [
    "DATASETS",
    "DOMAINS",
    "KLINES_DAILY",
    "LAKE_PARTITIONS",
    "MACROS",
    "SECURITIES",
    "SOURCE_PATTERN",
    "SYMBOL_MAX_LENGTH",
    "SYMBOL_PATTERN",
    "SYMBOL_RULE",
    "WRITE_MODES",
    "Dataset",
    "Domain",
    "Field",
    "LakeKey",
    "LogicalType",
    "Macro",
    "RowRule",
    "WriteMode",
    "month_bounds",
]
