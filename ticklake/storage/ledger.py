"""The restatement ledger (`reconciliation_log`): one row per field a source changed after it was stored.

Two writers, one identity. The reconciliation sensors record what they find before it is applied; the write path
records what any run applies to a versioned dataset (a correction, a backfill over stored months, a manual
re-materialization), from the versions it supersedes. A correction's identity is the ledger's key (dataset, region,
symbol, date, field, source value), so one found by the sensor and then applied is recorded once, and nothing is
ever changed silently.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa

from ticklake.dictionary import Dataset
from ticklake.dictionary.frames import with_lineage
from ticklake.dictionary.operations import RECONCILIATION_LOG

ADDED, WITHDRAWN = "added", "withdrawn"  # a row the source has and nothing stored (a late bar); the reverse
RELATIVE_TOLERANCE = 1e-12  # float noise only: any real restatement differs by far more
CHANGE_COLUMNS = ["symbol", "date", "field", "stored_value", "source_value"]


def recorded(dataset: Dataset) -> bool:
    """Whether the write path records `dataset`'s changes: versioned, keyed by (region, symbol, its date)."""
    return (dataset.versioned and dataset.restatements_recorded
            and tuple(dataset.key) == ("region", "symbol", dataset.date_column))


def numeric_fields(dataset: Dataset) -> list[str]:
    return [c for c in dataset.value_columns if dataset.field(c).type in ("float64", "int64")]


def compare(stored: pd.DataFrame, current: pd.DataFrame, fields: list[str], date_column: str, *,
            added: bool) -> pd.DataFrame:
    """Pure: one row per (symbol, date, field) where `current` differs from `stored`: a changed value, a stored row
    `current` lacks (`withdrawn`), and with `added` a row only `current` has."""
    merged = stored.merge(current, on=["symbol", date_column], how="outer", suffixes=("_stored", "_current"),
                          indicator=True)
    out = []
    gone = merged[merged["_merge"] == "left_only"]
    out.append(pd.DataFrame({"symbol": gone["symbol"], "date": gone[date_column], "field": WITHDRAWN}))
    if added:
        new = merged[merged["_merge"] == "right_only"]
        out.append(pd.DataFrame({"symbol": new["symbol"], "date": new[date_column], "field": ADDED}))
    both = merged[merged["_merge"] == "both"]
    for name in fields:
        a = both[f"{name}_stored"].to_numpy(dtype="float64", na_value=np.nan)
        b = both[f"{name}_current"].to_numpy(dtype="float64", na_value=np.nan)
        differ = ~np.isclose(a, b, rtol=RELATIVE_TOLERANCE, atol=0.0, equal_nan=True)
        out.append(pd.DataFrame({"symbol": both["symbol"][differ], "date": both[date_column][differ], "field": name,
                                 "stored_value": a[differ], "source_value": b[differ]}))
    frame = pd.concat([f for f in out if len(f)], ignore_index=True) if any(len(f) for f in out) else \
        pd.DataFrame({c: pd.Series(dtype="object") for c in CHANGE_COLUMNS})
    for column in ("stored_value", "source_value"):
        frame[column] = frame[column].astype("float64") if column in frame else np.nan
    return frame.sort_values(["date", "symbol", "field"], ignore_index=True)[CHANGE_COLUMNS]


def applied_changes(dataset: Dataset, superseded: pa.Table, current: pa.Table) -> pd.DataFrame:
    """What a write applies: the superseded versions compared with the rows replacing them (per numeric field), and
    those no row replaces (withdrawn)."""
    key = list(dataset.key)
    fields = numeric_fields(dataset)
    replacing = current.join(superseded.select(key), keys=key, join_type="inner")
    columns = ["symbol", dataset.date_column, *fields]
    return compare(superseded.select(columns).to_pandas(), replacing.select(columns).to_pandas(), fields,
                   dataset.date_column, added=False)


def ledger_rows(dataset: Dataset, changes: pd.DataFrame, *, region: str, source: str, run_id: str,
                now: dt.datetime) -> pd.DataFrame:
    """`changes` (symbol, date, field, stored_value, source_value) as reconciliation_log rows, with lineage."""
    month = pd.to_datetime(changes["date"]).dt.strftime("%Y-%m")
    rows = pd.DataFrame({
        "dataset": pd.array([dataset.name] * len(changes), dtype="string"),
        "region": pd.array([region] * len(changes), dtype="string"),
        "symbol": pd.array(changes["symbol"].astype(str), dtype="string"),
        "date": pd.to_datetime(changes["date"]).astype("datetime64[ms]"),
        "field": pd.array(changes["field"], dtype="string"),
        "stored_value": changes["stored_value"].astype("float64").to_numpy(),
        "source_value": changes["source_value"].astype("float64").to_numpy(),
        "partition": pd.array(month + "|" + region, dtype="string"),
    })
    stamped = with_lineage(rows, source, run_id, now)
    stamped["detected_at"] = stamped["ingested_at"]
    return stamped[RECONCILIATION_LOG.columns]
