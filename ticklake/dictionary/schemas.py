"""Pandera schemas derived from the data dictionary, run on every frame before it is written.

A violation raises `DataValidationError` naming the rule and the offending rows, so a failed step
says exactly what to look at and nothing reaches the lake or lake.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from ticklake.dictionary import Dataset, Field, RowRule


class DataValidationError(ValueError):
    """A frame broke a data-dictionary rule; carries the failure cases for metadata."""

    def __init__(self, dataset: str, failures: pd.DataFrame, message: str):
        super().__init__(message)
        self.dataset = dataset
        self.failures = failures


def _column(field: Field) -> pa.Column:
    checks: list[pa.Check] = []
    if field.strictly_positive:
        checks.append(pa.Check.gt(0, error=f"{field.name} > 0"))
    if field.min_value is not None:
        checks.append(pa.Check.ge(field.min_value, error=f"{field.name} >= {field.min_value:g}"))
    if field.max_value is not None:
        checks.append(pa.Check.le(field.max_value, error=f"{field.name} <= {field.max_value:g}"))
    if field.type == "float64":
        checks.append(pa.Check(lambda s: ~np.isinf(s), error=f"{field.name} is finite"))
    if field.pattern is not None:
        checks.append(matches_pattern(field.name, field.pattern))
    return pa.Column(field.pandas_dtype, nullable=field.nullable, checks=checks, description=field.doc)


def matches_pattern(name: str, pattern: str) -> pa.Check:
    """Every value fully matches `pattern`.

    Not `Check.str_matches`: it uses `str.match`, whose `$` also matches before a trailing newline ("AAPL\\n"
    passes), and it runs the regex on every row (~65 ms per million). A page repeats a few thousand codes, so
    the regex runs on the distinct values only (~20 ms per million rows); rows are located only on failure."""
    rule = re.compile(pattern)

    def check(values: pd.Series) -> pd.Series:
        bad = [v for v in values.unique() if not (isinstance(v, str) and rule.fullmatch(v))]
        return pd.Series(True, index=values.index) if not bad else ~values.isin(bad)

    return pa.Check(check, error=f"{name} matches {pattern}")


def row_rule(rule: RowRule) -> pa.Check:
    """A dictionary row rule as a frame-wide check named after the rule, so the error says which one broke."""
    return pa.Check(rule.holds, error=rule.name)


DUPLICATE_KEY = "duplicate_key"  # the unique-key rule's name: every row sharing a key with another breaks it


def unique_key(dataset: Dataset) -> pa.Check:
    """The dataset's key is unique (rule `duplicate_key`, broken by every row of a repeated key). Keys are packed
    into one integer per row first (dates by their value, strings by factorizing), because pandas' multi-column
    duplicated() is the slowest part of validating a large page; only a frame with duplicates pays for locating
    them."""
    key = list(dataset.key)

    def check(df: pd.DataFrame) -> pd.Series:
        packed = np.zeros(len(df), dtype=np.int64)
        for column in key:
            values = df[column]
            if values.dtype.kind == "M":
                codes = values.to_numpy().view("int64")
                codes, size = codes - codes.min(initial=0), int(np.ptp(codes)) + 1 if len(codes) else 1
            else:
                codes, uniques = pd.factorize(values, use_na_sentinel=False)
                size = len(uniques) + 1
            packed = packed * size + codes
        ordered = np.sort(packed)
        if not (ordered[1:] == ordered[:-1]).any():
            return pd.Series(True, index=df.index)
        return ~pd.Series(packed, index=df.index).duplicated(keep=False)

    return pa.Check(check, error=DUPLICATE_KEY)


def dataframe_schema(dataset: Dataset, extra_checks: Iterable[pa.Check] = ()) -> pa.DataFrameSchema:
    """The Pandera schema for `dataset`: types, nullability, ranges and the unique key."""
    checks = [*(row_rule(r) for r in dataset.rules), unique_key(dataset), *extra_checks]
    return pa.DataFrameSchema(
        {f.name: _column(f) for f in dataset.fields},
        checks=checks,
        strict=True,
        ordered=False,
        coerce=False,
        name=dataset.name,
        description=dataset.description,
    )


WINDOW_RULE = "inside the partition"  # how the window rule reads: `trade_date inside the partition (...)`


def is_window_rule(rule: str) -> bool:
    """Whether `rule` (a quarantine row's) is the run-window rule of `dates_within`: a date off the run's window."""
    return WINDOW_RULE in rule


def dates_within(column: str, allowed: Iterable[dt.date]) -> pa.Check:
    """Every value of `column` is one of the partition's dates (the run may only write its own window)."""
    allowed_ts = pd.DatetimeIndex(sorted(pd.Timestamp(d) for d in allowed))
    span = f"{allowed_ts.min().date()}..{allowed_ts.max().date()}" if len(allowed_ts) else "(none)"
    return pa.Check(
        lambda df: df[column].isin(allowed_ts),
        error=f"{column} {WINDOW_RULE} ({len(allowed_ts)} session(s) {span})",
    )


def validate(frame: pd.DataFrame, dataset: Dataset, *, allowed_dates: Iterable[dt.date] | None = None,
             max_listed: int = 10) -> pd.DataFrame:
    """Validate `frame` against `dataset`'s schema; raise DataValidationError naming rows and rules.

    `allowed_dates` limits the dataset's date column to the dates a run may write (its partition window)."""
    extra = []
    if allowed_dates is not None:
        if dataset.date_column is None:
            raise ValueError(f"{dataset.name} declares no date column to check allowed dates against")
        extra.append(dates_within(dataset.date_column, allowed_dates))
    schema = dataframe_schema(dataset, extra)
    try:
        return schema.validate(frame, lazy=True, inplace=True)  # no coercion, so no need to copy the page
    except SchemaErrors as exc:
        failures = exc.failure_cases
        raise DataValidationError(dataset.name, failures, _describe(frame, failures, dataset, max_listed)) from None


@dataclass
class Rejected:
    """Rows `split_valid` took out of a frame: each with the first rule it broke and why."""

    rows: pd.DataFrame  # the frame's rows, as received
    rules: pd.Series  # the rule each broke, aligned with `rows`
    reasons: pd.Series  # in words, with the offending value


def split_valid(frame: pd.DataFrame, dataset: Dataset, *, allowed_dates: Iterable[dt.date] | None = None,
                max_listed: int = 10) -> tuple[pd.DataFrame, Rejected]:
    """The frame's rows that pass every rule of the dataset, and those that break one (to quarantine).

    A failure that is not about particular rows (a missing or extra column, a wrong dtype: schema drift) still
    raises DataValidationError, since no row of such a frame can be trusted."""
    try:
        return validate(frame, dataset, allowed_dates=allowed_dates, max_listed=max_listed), _no_rejects(frame)
    except DataValidationError as exc:
        failures = exc.failures
        located = failures["index"].notna() & failures["index"].isin(frame.index)
        if not located.all():
            raise
    rule = failures["check"].astype(str).where(~failures["schema_context"].eq("Column"),
                                               failures["column"].astype(str) + ": " + failures["check"].astype(str))
    first = failures.assign(rule=rule).drop_duplicates("index")
    first = first.set_index("index")
    bad = frame.index.isin(first.index)
    rows = frame[bad]
    rules = first.loc[rows.index, "rule"].astype(str)
    reasons = pd.Series([_reason(dataset, rule, row) for rule, (_, row) in zip(rules, rows.iterrows(), strict=True)],
                        index=rows.index, dtype="string")
    return frame[~bad], Rejected(rows, rules, reasons)


def split_page(frame: pd.DataFrame, dataset: Dataset, *, allowed_dates: Iterable[dt.date] | None,
               max_share: float, refused: pd.DataFrame | None = None) -> tuple[pd.DataFrame, Rejected]:
    """`split_valid`, with rows a source refused before validation (`refused`: the dataset's columns plus `rule`
    and `reason`, e.g. a value that is not a number) added to the rejected ones. A valid row sharing its key with
    a refused one is a conflicting duplicate too, and is rejected as `duplicate_key`: neither is trusted.

    More than `max_share` of the page's rows (and more than one) rejected raises DataValidationError naming the
    rules and rows, with nothing of the page written: a source that sends mostly broken rows is broken."""
    good, rejected = split_valid(frame, dataset, allowed_dates=allowed_dates)
    refused = refused if refused is not None and len(refused) else None
    total = len(frame) + (0 if refused is None else len(refused))
    if refused is not None:
        key = [c for c in dataset.key if c in good.columns]
        clash = pd.MultiIndex.from_frame(good[key].astype(str)).isin(pd.MultiIndex.from_frame(refused[key].astype(str)))
        if clash.any():
            twins = good[clash]
            good = good[~clash]
            reasons = [_reason(dataset, DUPLICATE_KEY, row) for _, row in twins.iterrows()]
            rejected = _joined(rejected, Rejected(twins, pd.Series(DUPLICATE_KEY, index=twins.index, dtype="string"),
                                                  pd.Series(reasons, index=twins.index, dtype="string")))
        rows = refused.drop(columns=["rule", "reason"])
        rejected = _joined(rejected, Rejected(rows, refused["rule"].astype("string"),
                                              refused["reason"].astype("string")))
    if len(rejected.rows) > max(max_share * total, 1):
        if refused is None:
            validate(frame, dataset, allowed_dates=allowed_dates)  # raises, naming the rules and rows
        raise DataValidationError(dataset.name, pd.DataFrame({"rule": rejected.rules.to_numpy()}),
                                  _describe_rejected(rejected, dataset, total))
    return good, rejected


def _joined(a: Rejected, b: Rejected) -> Rejected:
    """Two sets of rejected rows as one (the first's frame may carry lineage columns the second lacks: left out)."""
    if not len(a.rows):
        return Rejected(b.rows.reset_index(drop=True), b.rules.reset_index(drop=True), b.reasons.reset_index(drop=True))
    columns = [c for c in a.rows.columns if c in b.rows.columns]
    rows = pd.concat([a.rows[columns], b.rows[columns]], ignore_index=True)
    return Rejected(rows, pd.concat([a.rules, b.rules], ignore_index=True).astype("string"),
                    pd.concat([a.reasons, b.reasons], ignore_index=True).astype("string"))


def _describe_rejected(rejected: Rejected, dataset: Dataset, total: int, max_listed: int = 10) -> str:
    key = [c for c in dataset.key if c in rejected.rows.columns]
    lines = [f"{dataset.name}: {len(rejected.rows)} of {total} row(s) broke a hard rule, more than "
             "TICKLAKE_MAX_REJECTED_SHARE allows; nothing was written."]
    labels = rejected.rows[key].astype(str).agg("/".join, axis=1) if key else pd.Series("", index=rejected.rows.index)
    for rule, idx in rejected.rules.groupby(rejected.rules.to_numpy(), sort=False).groups.items():
        shown = ", ".join(labels.loc[idx[:max_listed]])
        more = f" (+{len(idx) - max_listed} more)" if len(idx) > max_listed else ""
        lines.append(f"- [{rule}] broken by {len(idx)} row(s): {shown}{more}")
    return "\n".join(lines)


def _reason(dataset: Dataset, rule: str, row: pd.Series) -> str:
    """A rejected row's rule with the values it judged: `low <= min(open, close): low=12.5, open=10, close=11`."""
    row_rule = next((r for r in dataset.rules if r.name == rule), None)
    if row_rule is not None:
        columns = [row_rule.column, *row_rule.others]
    elif rule == DUPLICATE_KEY:  # the key, then this row's values: each row of the key says what it holds
        columns = [*(c for c in dataset.key if c in row.index),
                   *(f.name for f in dataset.fields if f.name not in dataset.key and f.name not in
                     dataset.lineage_columns and f.name in row.index)]
    elif ":" in rule and rule.split(":", 1)[0] in row.index:
        columns = [rule.split(":", 1)[0]]
    else:  # the unique key, the partition window: the key says which row
        columns = [c for c in dataset.key if c in row.index]
    return f"{rule}: " + ", ".join(f"{c}={row[c]}" for c in columns)


def _no_rejects(frame: pd.DataFrame) -> Rejected:
    empty = frame.iloc[:0]
    return Rejected(empty, pd.Series(dtype="string"), pd.Series(dtype="string"))


def _describe(frame: pd.DataFrame, failures: pd.DataFrame, dataset: Dataset, max_listed: int) -> str:
    key = [c for c in dataset.key if c in frame.columns]
    # Frame-wide checks report one failure per column per row; collapse them to one line per rule.
    is_column_rule = failures["schema_context"].eq("Column")
    rule = failures["check"].astype(str).where(~is_column_rule, failures["column"].astype(str) + ": " +
                                               failures["check"].astype(str))
    failures = failures.assign(rule=rule).drop_duplicates(["rule", "index", "failure_case"])
    lines = [f"{dataset.name}: {failures['rule'].nunique()} rule(s) broken; nothing was written."]
    for name, group in failures.groupby("rule", sort=False):
        idx = list(dict.fromkeys(i for i in group["index"].dropna().tolist() if i in frame.index))
        rows = frame.loc[idx[:max_listed], key].astype(str).agg("/".join, axis=1).tolist() if idx and key else []
        shown = ", ".join(rows) if rows else ", ".join(map(str, group["failure_case"].head(max_listed)))
        more = f" (+{len(idx) - max_listed} more)" if len(idx) > max_listed else ""
        lines.append(f"- [{name}] broken by {len(idx) or len(group)} row(s): {shown}{more}")
    return "\n".join(lines)
