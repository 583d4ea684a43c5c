"""Pure transformations shared by every dataset: lineage carry-forward, partition merges, the master merge.

No I/O here, so every function is unit- and property-testable. What is specific to one source's wire format
(iTick's field names, its batch and paging rules) lives with that source's fetchers (ticklake/itick/).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ticklake.dictionary import Dataset


def string_array(values: Sequence[str], counts: Sequence[int] | None = None) -> pd.arrays.ArrowStringArray:
    """A pandas "string" column holding values[i] repeated counts[i] times, built in Arrow (no Python loop)."""
    counts = [1] * len(values) if counts is None else counts
    indices = pa.array(np.repeat(np.arange(len(values), dtype=np.int32), counts))
    dictionary = pa.array(list(values), type=pa.large_string())
    return pd.arrays.ArrowStringArray(pa.DictionaryArray.from_arrays(indices, dictionary).cast(pa.large_string()))


def sort_table(table: pa.Table, dataset: Dataset) -> pa.Table:
    """Rows in the dataset's sort order, so the same data always gives the same Parquet bytes."""
    if not dataset.sort_by or table.num_rows < 2:
        return table
    return table.take(pc.sort_indices(table, sort_keys=[(c, "ascending") for c in dataset.sort_by]))


def carry_forward_lineage(new: pd.DataFrame, old: pd.DataFrame | None, dataset: Dataset) -> tuple[pd.DataFrame, dict]:
    """Keep the stored lineage of rows whose values did not change, so re-runs are byte-for-byte idempotent.

    Returns the frame to store and a diff summary {added, changed, removed, unchanged}; a changed row is a
    restatement and gets the new lineage.
    """
    if old is None or old.empty:
        return new, {"added": len(new), "changed": 0, "removed": 0, "unchanged": 0}
    key, values, lineage = list(dataset.key), dataset.value_columns, dataset.lineage_columns
    merged = new.merge(old[key + values + lineage], on=key, how="left", suffixes=("", "__old"), indicator=True)
    existed = merged["_merge"].eq("both").to_numpy()
    same = existed.copy()
    for column in values:
        a, b = merged[column], merged[f"{column}__old"]
        same &= ((a == b) | (a.isna() & b.isna())).fillna(False).to_numpy(dtype=bool)
    out = new.copy()
    for column in lineage:
        if column == "bar_ts":  # source timestamp is data we received, not ours to carry over
            continue
        out[column] = out[column].where(~same, merged[f"{column}__old"].to_numpy())
    removed = len(old) - int(existed.sum())
    return out, {
        "added": int((~existed).sum()),
        "changed": int((existed & ~same).sum()),
        "removed": removed,
        "unchanged": int(same.sum()),
    }


def merge_answered(new: pd.DataFrame, old: pd.DataFrame | None, answered: Sequence[tuple[frozenset[str],
                   Sequence[dt.date]]], dataset: Dataset, date_column: str = "trade_date"
                   ) -> tuple[pd.DataFrame, dict[str, int]]:
    """The partition to store after a fetch: absence is not data.

    `new` replaces stored rows only inside what the source answered, each (codes, sessions) pair of
    `answered` (an answered code with no bars there really had none); every other stored row is kept as it
    is (a code left out of the answer, a session outside the fetch). Returns the frame and a diff
    {added, changed, removed, unchanged, kept}.
    """
    if old is None or old.empty:
        return new, {"added": len(new), "changed": 0, "removed": 0, "unchanged": 0, "kept": 0}
    in_scope = np.zeros(len(old), dtype=bool)
    dates = old[date_column]
    for codes, sessions in answered:
        in_scope |= (old["symbol"].isin(list(codes)) & dates.isin(pd.DatetimeIndex(sessions).as_unit("ms"))
                     ).to_numpy(dtype=bool)
    out, diff = carry_forward_lineage(new, old[in_scope], dataset)
    kept = old[~in_scope]
    diff["kept"] = len(kept)
    merged = pd.concat([out, kept[out.columns]], ignore_index=True) if len(kept) else out
    return merged, diff


def merge_security_master(old: pd.DataFrame | None, listing: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """Fold today's symbol list into the master: new codes get first_seen, listed codes get last_seen=as_of.

    Codes missing from the list stay in the master (history needs them) with in_latest_list=False.
    """
    as_of_ts = pd.Timestamp(as_of).as_unit("ms")
    fresh = listing.assign(first_seen=as_of_ts, last_seen=as_of_ts, in_latest_list=True)
    if old is None or old.empty:
        return fresh.sort_values(["region", "symbol"]).reset_index(drop=True)
    carried = old[~old["symbol"].isin(listing["symbol"])].assign(in_latest_list=False)
    first = old.set_index("symbol")["first_seen"]
    fresh["first_seen"] = fresh["symbol"].map(first).fillna(as_of_ts).astype("datetime64[ms]")
    previous = old.set_index("symbol")["last_seen"]
    fresh["last_seen"] = np.maximum(fresh["symbol"].map(previous).fillna(as_of_ts).astype("datetime64[ms]"),
                                    as_of_ts)
    columns = list(fresh.columns)
    return pd.concat([fresh, carried[columns]], ignore_index=True).sort_values(["region", "symbol"]).reset_index(
        drop=True
    )


def with_lineage(frame: pd.DataFrame, source: str, run_id: str, now: dt.datetime) -> pd.DataFrame:
    n = len(frame)
    stamp = np.full(n, pd.Timestamp(now).tz_convert("UTC").value // 1_000_000, dtype=np.int64)
    return frame.assign(
        source=string_array([source], [n]),
        ingested_at=pd.to_datetime(stamp, unit="ms", utc=True).astype("datetime64[ms, UTC]"),
        run_id=string_array([run_id], [n]),
    )
