"""What a partition file holds after a write, for each write mode the dictionary declares. Pure functions.

`contents(dataset, stored, incoming, as_of=..)` is the only entry point the write path calls: it dispatches on
`dataset.write_mode`, never on a dataset's name, and returns the complete new contents of one partition file of
one source plus a diff summary for metadata.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ticklake.dictionary import Dataset

INTERVAL_COLUMNS = ("valid_from", "valid_to")
# An arbitrated row's lineage that says how it was decided: an unchanged value keeps when it was first stored,
# but a second source agreeing (or an override) changes its rule, sources and winner.
ARBITRATION_COLUMNS = ("source", "rule", "sources", "max_rel_diff")


def contents(dataset: Dataset, stored: pd.DataFrame | None, incoming: pd.DataFrame, *, as_of: dt.date | None = None,
             complete: bool = True) -> tuple[pd.DataFrame, dict[str, int]]:
    """The partition's new contents under `dataset.write_mode`.

    - replace: `incoming` is the whole partition; stored lineage is carried over for unchanged rows.
    - snapshot: `incoming` rows replace stored rows with the same key; every other stored row stays.
    - intervals: `incoming` is an observation on `as_of` (one row per entity); see `merge_intervals`.
    """
    if dataset.write_mode == "replace":
        return carry_forward_lineage(incoming, stored, dataset)
    if dataset.write_mode == "snapshot":
        return upsert(stored, incoming, dataset)
    if as_of is None:
        raise ValueError(f"{dataset.name}: an intervals write needs the observation's as_of date")
    return merge_intervals(stored, incoming, as_of, dataset, complete=complete)


def upsert(stored: pd.DataFrame | None, incoming: pd.DataFrame, dataset: Dataset) -> tuple[pd.DataFrame, dict]:
    """Stored rows with the incoming rows' keys replaced by them (lineage kept where values did not change)."""
    if stored is None or stored.empty:
        return incoming, {"added": len(incoming), "changed": 0, "removed": 0, "unchanged": 0, "kept": 0}
    key = list(dataset.key)
    touched = stored.merge(incoming[key].drop_duplicates(), on=key, how="left", indicator=True)["_merge"].eq("both")
    replaced, kept = stored[touched.to_numpy()], stored[~touched.to_numpy()]
    out, diff = carry_forward_lineage(incoming, replaced, dataset)
    diff["kept"] = len(kept)
    merged = pd.concat([kept[out.columns], out], ignore_index=True) if len(kept) else out
    return merged, diff


def _same_values(a: pd.DataFrame, b: pd.DataFrame, columns: list[str]) -> np.ndarray:
    same = np.ones(len(a), dtype=bool)
    for column in columns:
        x, y = a[column].reset_index(drop=True), b[column].reset_index(drop=True)
        same &= ((x == y) | (x.isna() & y.isna())).fillna(False).to_numpy(dtype=bool)
    return same


def merge_intervals(stored: pd.DataFrame | None, observation: pd.DataFrame, as_of: dt.date, dataset: Dataset, *,
                    complete: bool = True) -> tuple[pd.DataFrame, dict[str, int]]:
    """Fold an observation on `as_of` into a history of validity intervals [valid_from, valid_to).

    Per entity (the dataset key without valid_from): an open interval whose values the observation repeats stays
    as it is; one whose values changed is closed on `as_of` and a new one opens there; an entity the observation
    lacks is closed on `as_of` only when the observation is `complete` (absence in a partial answer is not data);
    a new entity, or one seen again after its interval closed, opens a new interval. Closed intervals are never
    touched, so the history answers "what was known on D". Re-running the same observation changes nothing.
    """
    day = pd.Timestamp(as_of).as_unit("ms")
    entity = list(dataset.entity)
    values = [c for c in dataset.value_columns if c not in INTERVAL_COLUMNS]
    if observation[entity].duplicated().any():
        dupes = observation.loc[observation[entity].duplicated(keep=False), entity].astype(str).agg("/".join, axis=1)
        raise ValueError(f"{dataset.name}: the observation of {as_of} lists some entities twice: "
                         f"{sorted(set(dupes))[:10]}")
    fresh = observation.assign(valid_from=day, valid_to=pd.NaT).astype({"valid_to": "datetime64[ms]"})
    fresh["valid_from"] = fresh["valid_from"].astype("datetime64[ms]")
    zero = {"opened": 0, "closed": 0, "unchanged": 0, "kept": 0}
    if stored is None or stored.empty:
        return fresh[dataset.columns], {**zero, "opened": len(fresh)}
    is_open = stored["valid_to"].isna().to_numpy()
    open_rows, closed_rows = stored[is_open], stored[~is_open]
    latest = open_rows["valid_from"].max() if len(open_rows) else None
    if latest is not None and day < latest:
        raise ValueError(f"{dataset.name}: an observation as of {as_of} is older than the stored history "
                         f"(latest change {latest.date()}); observations must be folded in date order")
    joined = open_rows.merge(fresh[entity + values], on=entity, how="left", suffixes=("", "__new"), indicator=True)
    seen = joined["_merge"].eq("both").to_numpy()
    same = seen & _same_values(joined[values], joined[[f"{c}__new" for c in values]].set_axis(values, axis=1), values)
    changed = seen & ~same
    vanished = ~seen & complete
    still_open = open_rows[~(changed | vanished)]
    # A change seen on the day its interval opened replaces that interval instead of leaving an empty one.
    closing = open_rows[changed | vanished]
    closing = closing[closing["valid_from"] < day].assign(valid_to=day)
    closing["valid_to"] = closing["valid_to"].astype("datetime64[ms]")
    unchanged_entities = open_rows.loc[same, entity]
    opened = fresh.merge(unchanged_entities, on=entity, how="left", indicator=True)
    opened = opened[opened["_merge"].eq("left_only")].drop(columns="_merge")
    merged = pd.concat([closed_rows, closing, still_open, opened[dataset.columns]], ignore_index=True)
    return merged[dataset.columns], {"opened": len(opened), "closed": int(vanished.sum() + changed.sum()),
                                     "unchanged": int(same.sum()), "kept": len(closed_rows)}


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
        if dataset.arbitrated and column in ARBITRATION_COLUMNS:  # how a bar was decided is decided anew
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
