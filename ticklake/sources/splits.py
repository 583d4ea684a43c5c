"""Split rows as a source lists them -> the corporate_actions columns: the ratio string parsed to a price factor.

Direction, once: a split `from:to` turns `from` old shares into `to` new ones (the simulator's and iTick's
`"1:10"`), so a price on the new basis is the old price x `factor` with factor = from / to (1:2 -> 0.5, a 10:1
consolidation -> 10), and a volume divides by it. An unparseable ratio is an error, never a skipped row: a
silently missing split would silently mis-adjust every earlier price of that symbol.
"""

from __future__ import annotations

import math
import re

import pandas as pd

from ticklake.dictionary.reference_data import CORPORATE_ACTIONS

SPLIT = "split"
_RATIO = re.compile(r"\s*(\d+(?:\.\d+)?)\s*:\s*(\d+(?:\.\d+)?)\s*")


class SplitRowError(ValueError):
    """Split rows of the source that cannot be stored (unparseable ratio, bad code or date); names each row."""


def parse_ratio(text: object, *, row: str) -> tuple[float, float]:
    """`"from:to"` -> (from, to), two positive finite numbers ("1:10", "3:2", "1.5:1"); `row` names the
    offending source row in the error, for anything else ("", "0:1", "a:b", "1:2:3", "-1:2")."""
    if not isinstance(text, str):
        raise SplitRowError(f"{row}: split ratio {text!r} is not a string (expected 'from:to', e.g. '1:10')")
    match = _RATIO.fullmatch(text)
    if match is None:
        raise SplitRowError(f"{row}: unparseable split ratio {text!r} (expected 'from:to' with two positive "
                            f"numbers, e.g. '1:10')")
    ratio_from, ratio_to = float(match.group(1)), float(match.group(2))
    if not (ratio_from > 0 and ratio_to > 0 and math.isfinite(ratio_from) and math.isfinite(ratio_to)):
        raise SplitRowError(f"{row}: split ratio {text!r} has a zero or infinite side (both must be positive)")
    return ratio_from, ratio_to


def split_frame(rows: list[dict]) -> pd.DataFrame:
    """Parsed split rows {region, symbol, ex_date, ratio, name} -> the dataset's columns (lineage excepted)."""
    problems: list[str] = []
    parsed = []
    for r in rows:
        try:
            ratio_from, ratio_to = parse_ratio(r["ratio"], row=r["row"])
        except SplitRowError as exc:
            problems.append(str(exc))
            continue
        parsed.append({**r, "ratio_from": ratio_from, "ratio_to": ratio_to})
    frame = pd.DataFrame({
        "region": pd.array([r["region"] for r in parsed], dtype="string"),
        "symbol": pd.array([r["symbol"] for r in parsed], dtype="string"),
        "ex_date": pd.to_datetime(pd.Series([r["ex_date"] for r in parsed], dtype="object")).astype("datetime64[ms]"),
        "action": pd.array([SPLIT] * len(parsed), dtype="string"),
        "ratio": pd.array([r["ratio"] for r in parsed], dtype="string"),
        "ratio_from": pd.array([r["ratio_from"] for r in parsed], dtype="float64"),
        "ratio_to": pd.array([r["ratio_to"] for r in parsed], dtype="float64"),
        "name": pd.array([r.get("name") for r in parsed], dtype="string"),
    })
    frame["factor"] = frame["ratio_from"] / frame["ratio_to"]
    frame = frame.drop_duplicates()  # the same split listed twice (e.g. on two pages) is one split
    key = list(CORPORATE_ACTIONS.entity)
    clash = frame[frame.duplicated(key, keep=False)]
    problems += [f"{s} {d:%Y-%m-%d}: listed with different ratios {sorted(g['ratio'].tolist())}"
                 for (_, s, d, _), g in clash.groupby(key, sort=True)]
    if problems:
        raise SplitRowError(f"{len(problems)} split row(s) cannot be stored; nothing was written:\n"
                            + "\n".join(problems[:50]))
    return frame[[c for c in CORPORATE_ACTIONS.columns if c not in CORPORATE_ACTIONS.lineage_columns]]
