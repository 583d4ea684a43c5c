"""The golden copy: one authoritative bar per symbol and session, arbitrated from every source's raw bars.

`arbitrate` is pure and vectorised (one pass of numpy per field and source, no Python loop per bar). Per field, the
sources' values are compared with the value of the source that comes first in that field's priority (the sources
file: per region, per field); within the tolerance (basis points for prices, percent for volume) they agree, and
beyond it the golden bar keeps the priority source's value and an exception is opened for a person to decide. A
split that one source reports and the reference data (`corporate_actions`) lacks, or the reverse, is an exception
too, and the golden bar stays raw: nothing is ever silently adjusted. An active override wins over everything.

Each golden bar says how it was decided: `rule` is `single_source`, `agreed`, `priority` or `override`;
`sources` lists who had it; `source` is the winner (the source of its close); `max_rel_diff` is the largest
disagreement it carries. Alignment rules (docs/golden-copy.md) are applied before: every source's bars are already
keyed by exchange-local session date in `klines_daily_by_source`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd

from ticklake.dictionary.market_data import COMPARED_FIELDS, KLINES_DAILY, PRICE_FIELDS

SINGLE, AGREED, PRIORITY, OVERRIDE = "single_source", "agreed", "priority", "override"
RULES = (AGREED, SINGLE, PRIORITY, OVERRIDE)
OVERRIDE_SOURCE = "override"  # the winner named on a bar whose value a person gave
SPLIT_FIELD = "split_ratio"
REFERENCE = "corporate_actions"  # how the reference data's side of a split exception is named
EXCEPTION_COLUMNS = ["region", "symbol", "trade_date", "field", "source_values", "rel_diff", "tolerance",
                     "chosen_source", "rule", "status", "override_id"]


class Policy(Protocol):
    """What arbitration needs from the sources file (ticklake.sources.declared.Policy)."""

    def order(self, region: str, field: str) -> tuple[str, ...]: ...

    def tolerance(self, field: str) -> float: ...


@dataclass
class Arbitration:
    golden: pd.DataFrame  # KLINES_DAILY value columns plus source, rule, sources, max_rel_diff (no run lineage)
    exceptions: pd.DataFrame  # EXCEPTION_COLUMNS, one row per disputed (bar, field)
    counts: dict[str, int] = field(default_factory=dict)  # bars per rule

    @property
    def summary(self) -> str:
        return ", ".join(f"{self.counts.get(r, 0)} {r}" for r in RULES) + f"; {len(self.exceptions)} exception(s)"


def _ranked(order: Sequence[str], present: Sequence[str]) -> list[str]:
    """The sources present, in the policy's order; sources the policy does not name come last, by name."""
    declared = [s for s in order if s in present]
    return declared + sorted(s for s in present if s not in declared)


def _rel_diff(value: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """|value - reference| relative to the reference (0 for equal values, 1 where only the reference is 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.abs(value - reference) / np.abs(reference)
    out[(reference == 0) & (value != 0)] = 1.0
    out[value == reference] = 0.0
    return out


def arbitrate(bars: pd.DataFrame, policy: Policy, region: str, *, overrides: pd.DataFrame | None = None,
              splits: pd.DataFrame | None = None) -> Arbitration:
    """The golden bars of `bars` (klines_daily_by_source rows of one region, every source), and the exceptions.

    `overrides`: active golden_overrides rows of the region. `splits`: (symbol, ex_date, split_ratio) from the
    reference data, for the sources that report splits (a file source's `split_ratio`).

    Per-bar strings are never built one Python object at a time: sources are small integer codes, who had a bar
    is a bitmask, the rule an int8, and each becomes a string column once, by a take on a small table."""
    if bars.empty:
        return Arbitration(_empty_golden(), _empty_exceptions(), dict.fromkeys(RULES, 0))
    symbol_ids, symbols = _sorted_codes(bars["symbol"])
    day_ids, days = pd.factorize(pd.to_datetime(bars["trade_date"]).to_numpy("datetime64[ms]"), sort=True)
    ids, pairs = _sorted_keys(symbol_ids.astype("int64") * len(days) + day_ids, len(symbols) * len(days))
    pair_symbol, pair_day = pairs // len(days), pairs % len(days)  # keys in (symbol, trade_date) order: no sort
    uniques = pd.MultiIndex(levels=[pd.Index(symbols), pd.DatetimeIndex(days)], codes=[pair_symbol, pair_day],
                            verify_integrity=False)
    n = len(uniques)
    source_ids, present = _sorted_codes(bars["source"])
    present = list(present)
    rows = [np.flatnonzero(source_ids == k) for k in range(len(present))]
    has = {s: np.zeros(n, dtype=bool) for s in present}
    for s, r in zip(present, rows, strict=True):
        has[s][ids[r]] = True
    values: dict[str, dict[str, np.ndarray]] = {s: {} for s in present}
    carried = {name: bars[name].to_numpy(dtype="float64", na_value=np.nan) for name in (*COMPARED_FIELDS, "turnover")}
    carried["bar_ts_ms"] = _epoch_ms(bars["bar_ts"])  # each input column converted once, not once per source
    for name, data in carried.items():
        for s, r in zip(present, rows, strict=True):
            column = np.full(n, np.nan)
            column[ids[r]] = data[r]
            values[s][name] = column
    close_order = _ranked(policy.order(region, "close"), present)
    who = np.zeros(n, dtype="int64")  # bit k: close_order[k] has the bar
    for k, s in enumerate(close_order):
        who |= has[s].astype("int64") << k
    several = (who & (who - 1)) != 0  # more than one bit
    golden: dict[str, np.ndarray] = {}
    winner = np.full(n, -1, dtype="int16")  # index into close_order of the close's source
    disputed: list[tuple[str, np.ndarray, np.ndarray, list[str]]] = []  # (field, beyond tolerance, rel diff, order)
    max_diff = np.zeros(n)
    for name in COMPARED_FIELDS:
        order = _ranked(policy.order(region, name), present)
        chosen = np.full(n, np.nan)
        for s in order:
            take = np.isnan(chosen) & has[s]
            chosen[take] = values[s][name][take]
            if name == "close":
                winner[take] = close_order.index(s)
        diff = np.zeros(n)
        for s in order:  # a source's column is NaN where it lacks the bar: no boolean gather per source
            value = values[s][name]
            diff = np.where(np.isnan(value), diff, np.maximum(diff, _rel_diff(value, chosen)))
        beyond = several & (diff > policy.tolerance(name) + 1e-12)
        if beyond.any():
            disputed.append((name, beyond, diff, order))
        max_diff = np.maximum(max_diff, diff)
        golden[name] = chosen
    _keep_bars_whole(golden, values, has, close_order)
    for name in ("turnover", "bar_ts_ms"):  # not compared: the first source in close's priority that has one
        chosen = np.full(n, np.nan)
        for s in close_order:
            take = np.isnan(chosen) & has[s]
            chosen[take] = values[s][name][take]
        golden[name] = chosen
    rule = np.where(several, RULES.index(AGREED), RULES.index(SINGLE)).astype("int8")
    for _, beyond, _, _ in disputed:
        rule[beyond] = RULES.index(PRIORITY)
    exceptions = [_exceptions(region, uniques, name, beyond, diff, order, values, policy.tolerance(name))
                  for name, beyond, diff, order in disputed]
    split_exceptions = _split_exceptions(region, bars, splits)
    if len(split_exceptions):
        exceptions.append(split_exceptions)
        flagged = pd.MultiIndex.from_arrays([split_exceptions["symbol"].to_numpy(),
                                             split_exceptions["trade_date"].to_numpy("datetime64[ms]")])
        rule[uniques.get_indexer(flagged)] = RULES.index(PRIORITY)
    out = pd.DataFrame({
        "region": _strings([region], np.zeros(n, dtype="intp")),
        "symbol": _strings(symbols, pair_symbol),
        "trade_date": days[pair_day],
        **{name: golden[name] for name in (*COMPARED_FIELDS, "turnover")},
        "bar_ts": pd.to_datetime(golden["bar_ts_ms"], unit="ms", utc=True).astype("datetime64[ms, UTC]"),
        "rule": _strings(RULES, rule),
        "sources": _joined(close_order, who),
        "max_rel_diff": np.where(several, max_diff, np.nan),
        "source": _strings(["", *close_order], winner + 1),
    })
    table = pd.concat([e for e in exceptions if len(e)], ignore_index=True) if any(len(e) for e in exceptions) \
        else _empty_exceptions()
    if overrides is not None and len(overrides):
        labels = ("rule", "sources", "source")  # object while a person's decisions are set bar by bar
        out = out.assign(**{c: out[c].to_numpy(dtype=object) for c in labels})
        out, table = apply_overrides(out, table, overrides, values, has, uniques)
        out = out.assign(**{c: pd.array(out[c].astype(str), dtype="string") for c in labels})
    counts = {r: int((out["rule"] == r).sum()) for r in RULES}
    return Arbitration(out, table.sort_values(["trade_date", "symbol", "field"], ignore_index=True), counts)


def _sorted_codes(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Each row's index into the column's distinct values as strings, sorted: factorized as stored (no str per
    row), then only the distinct values are converted, merged where equal as strings, and ordered."""
    codes, distinct = pd.factorize(column)
    names = np.asarray(pd.Index(distinct).astype(str), dtype=object)
    rank, labels = pd.factorize(names, sort=True)
    return rank[codes], np.asarray(labels, dtype=object)


def _sorted_keys(keys: np.ndarray, space: int) -> tuple[np.ndarray, np.ndarray]:
    """`pd.factorize(keys, sort=True)` of non-negative int64 keys below `space`; by a dense table (no hashing,
    no sort) when the key space is not much larger than the keys."""
    if space > 4 * len(keys) + 1024:
        return pd.factorize(keys, sort=True)
    seen = np.zeros(space, dtype=bool)
    seen[keys] = True
    return (np.cumsum(seen) - 1)[keys], np.flatnonzero(seen)


def _strings(table: Sequence[str], codes: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """A "string" column of table[codes]: one take on a small arrow array instead of a str object per bar."""
    return pd.array(np.asarray(table, dtype=object), dtype="string").take(np.asarray(codes, dtype="intp"))


def _joined(order: list[str], who: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """The `sources` column from each bar's bitmask over `order`: each mask that occurs is joined once."""
    masks, inverse = (np.arange(1 << len(order)), who) if len(order) <= 8 else np.unique(who, return_inverse=True)
    names = [",".join(s for k, s in enumerate(order) if int(m) >> k & 1) for m in masks]
    return _strings(names, inverse)


def _keep_bars_whole(golden: dict[str, np.ndarray], values: dict, has: dict, order: list[str]) -> None:
    """Fields taken from different sources (per-field priority) must still make one possible bar; where they do
    not (a high from one source below a low from another), every price comes from the bar's priority source."""
    o, h, lo, c = (golden[f] for f in PRICE_FIELDS)
    broken = (lo > np.minimum(o, c)) | (h < np.maximum(o, c)) | (lo > h)
    if not broken.any():
        return
    whole = {f: np.full(len(o), np.nan) for f in PRICE_FIELDS}
    for s in order:
        take = broken & np.isnan(whole["close"]) & has[s]
        for f in PRICE_FIELDS:
            whole[f][take] = values[s][f][take]
    for f in PRICE_FIELDS:
        golden[f][broken] = whole[f][broken]


def _epoch_ms(column: pd.Series) -> np.ndarray:
    """UTC instants as float milliseconds (NaN for none), so they travel through the same arrays as the values."""
    stamps = pd.Series(pd.to_datetime(column, utc=True)).dt.tz_convert(None)
    out = stamps.to_numpy("datetime64[ms]").astype("int64").astype("float64")
    out[stamps.isna().to_numpy()] = np.nan
    return out


def _exceptions(region: str, uniques: pd.MultiIndex, name: str, beyond: np.ndarray, diff: np.ndarray,
                order: list[str], values: dict, tolerance: float) -> pd.DataFrame:
    at = np.flatnonzero(beyond)
    listed = [{s: (None if np.isnan(values[s][name][i]) else float(values[s][name][i])) for s in order} for i in at]
    chosen = [next(s for s in order if v[s] is not None) for v in listed]
    return pd.DataFrame({
        "region": region,
        "symbol": uniques.get_level_values(0)[at].astype(str),
        "trade_date": pd.DatetimeIndex(uniques.get_level_values(1)[at]).as_unit("ms"),
        "field": name,
        "source_values": [json.dumps({k: v for k, v in d.items() if v is not None}, sort_keys=True) for d in listed],
        "rel_diff": diff[at],
        "tolerance": tolerance,
        "chosen_source": chosen,
        "rule": PRIORITY,
        "status": "open",
        "override_id": None,
    })


def _split_exceptions(region: str, bars: pd.DataFrame, splits: pd.DataFrame | None) -> pd.DataFrame:
    """A file source's split events against the reference data's, over the sessions that source delivered: a split
    one side has and the other lacks (or with another ratio) is an exception, never a silent adjustment."""
    reporting = bars["file"].notna().to_numpy() if "file" in bars else np.zeros(len(bars), dtype=bool)
    if not reporting.any():
        return _empty_exceptions()
    reference = (splits if splits is not None else pd.DataFrame(columns=["symbol", "ex_date", "split_ratio"]))
    reference = pd.DataFrame({"symbol": reference["symbol"].astype(str),
                              "trade_date": pd.to_datetime(reference["ex_date"]).astype("datetime64[ms]"),
                              "reference_ratio": reference["split_ratio"].astype("float64")})
    # Only rows that can differ are joined: a split the vendor reports, or a bar on a reference split's
    # (symbol, date), where the vendor may have missed it. Every other row is "no split" on both sides.
    ratio = bars["split_ratio"].to_numpy(dtype="float64", na_value=np.nan)
    candidate = reporting & ~np.isnan(ratio) & (ratio != 1.0)
    on_day = reporting & pd.to_datetime(bars["trade_date"]).astype("datetime64[ms]").isin(
        reference["trade_date"]).to_numpy()
    at = np.flatnonzero(on_day)
    candidate[at] |= bars["symbol"].iloc[at].astype(str).isin(reference["symbol"]).to_numpy()
    vendor = bars[["source", "symbol", "trade_date", "split_ratio"]].iloc[np.flatnonzero(candidate)].copy()
    vendor["trade_date"] = pd.to_datetime(vendor["trade_date"]).astype("datetime64[ms]")
    vendor["symbol"] = vendor["symbol"].astype(str)
    joined = vendor.merge(reference, on=["symbol", "trade_date"], how="left")
    a = joined["split_ratio"].fillna(1.0).to_numpy(dtype="float64")
    b = joined["reference_ratio"].fillna(1.0).to_numpy(dtype="float64")
    differ = ~np.isclose(a, b, rtol=1e-9)
    rows = joined[differ]
    if rows.empty:
        return _empty_exceptions()
    return pd.DataFrame({
        "region": region,
        "symbol": rows["symbol"].to_numpy(),
        "trade_date": rows["trade_date"].to_numpy(),
        "field": SPLIT_FIELD,
        "source_values": [json.dumps({s: float(x), REFERENCE: float(y)}, sort_keys=True)
                          for s, x, y in zip(rows["source"], a[differ], b[differ], strict=True)],
        "rel_diff": np.abs(a[differ] - b[differ]) / b[differ],
        "tolerance": 0.0,
        "chosen_source": REFERENCE,  # the golden bar stays raw, as the reference data's splits say
        "rule": PRIORITY,
        "status": "open",
        "override_id": None,
    })


def apply_overrides(golden: pd.DataFrame, exceptions: pd.DataFrame, overrides: pd.DataFrame, values: dict,
                    has: dict, uniques: pd.MultiIndex) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A person's decisions win: a chosen source's value or a given value, per field (or the whole bar)."""
    golden, exceptions = golden.copy(), exceptions.copy()
    keys = pd.MultiIndex.from_arrays([overrides["symbol"].astype(str).to_numpy(),
                                      pd.to_datetime(overrides["trade_date"]).to_numpy("datetime64[ms]")])
    at = uniques.get_indexer(keys)
    for row, i in zip(overrides.itertuples(index=False), at, strict=True):
        if i < 0:
            continue  # a bar no source has (yet): nothing to decide
        fields = list(COMPARED_FIELDS) if row.field == "bar" else [row.field]
        chosen = row.chosen_source if isinstance(row.chosen_source, str) and row.chosen_source else None
        if chosen is not None and not has.get(chosen, np.zeros(len(uniques), bool))[i]:
            continue  # the chosen source has no such bar: the override waits for it
        for name in fields:
            golden.at[i, name] = values[chosen][name][i] if chosen else float(row.value)
        golden.at[i, "rule"] = OVERRIDE
        golden.at[i, "source"] = chosen or OVERRIDE_SOURCE
        hit = ((exceptions["symbol"] == row.symbol) & (pd.to_datetime(exceptions["trade_date"]) ==
               pd.Timestamp(row.trade_date)) & (exceptions["field"].isin(fields) | (row.field == "bar")))
        exceptions.loc[hit, ["status", "rule", "override_id", "chosen_source"]] = [
            "overridden", OVERRIDE, row.override_id, chosen or OVERRIDE_SOURCE]
    return golden, exceptions


def single_source(bars: pd.DataFrame) -> pd.DataFrame:
    """The golden bars of one source alone (the default: iTick only), without the general arbitration."""
    out = bars[[c for c in KLINES_DAILY.columns if c in bars.columns and c not in ("rule", "sources",
                                                                                    "max_rel_diff")]].copy()
    out["rule"] = pd.array([SINGLE] * len(out), dtype="string")
    out["sources"] = pd.array(bars["source"].astype(str), dtype="string")
    out["max_rel_diff"] = np.nan
    return out


def _empty_golden() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in KLINES_DAILY.columns})


def _empty_exceptions() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in EXCEPTION_COLUMNS})
