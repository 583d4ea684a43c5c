"""The table reference (docs/tables.md), rendered from the data dictionary so it can never disagree with it.

    python -m ticklake.docs            # print it
    python -m ticklake.docs --write    # rewrite docs/tables.md (a test fails while the committed file is stale)
"""

from __future__ import annotations

import sys
from pathlib import Path

from ticklake.dictionary import DATASETS, DOMAINS, MACROS, Dataset, Macro

TABLES_MD = Path(__file__).resolve().parents[2] / "docs" / "tables.md"

_MODES = {
    "replace": "each run replaces the partitions it covers (its own source's rows only)",
    "snapshot": "dated snapshots: a row replaces only the stored row with the same key; history accumulates",
    "intervals": "validity intervals [valid_from, valid_to): changes close the old version and open a new one; "
                 "nothing is deleted",
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _dataset(dataset: Dataset) -> list[str]:
    lines = [f"### `{dataset.name}`", "", dataset.description, ""]
    replaced = " x ".join([*(k.name for k in dataset.lake_keys), "source"]) if dataset.lake_keys else "the table"
    physical = ", ".join(f"year({k.column})" if k.grain == "month" else k.column for k in dataset.lake_keys) or "none"
    lines += [f"- Key: `({', '.join(dataset.key)})`; write mode **{dataset.write_mode}**: {_MODES[dataset.write_mode]}",
              f"- Stored in: lake table `{dataset.name}`; a write replaces one {replaced}; "
              f"DuckLake partitioning: {physical}"]
    if dataset.rules:
        lines.append("- Row rules: " + "; ".join(f"`{r.name}`" for r in dataset.rules))
    lines += ["", "| column | type | null | description |", "|---|---|---|---|"]
    for f in dataset.fields:
        rule = []
        if f.strictly_positive:
            rule.append("> 0")
        if f.min_value is not None:
            rule.append(f">= {f.min_value:g}")
        if f.max_value is not None:
            rule.append(f"<= {f.max_value:g}")
        extra = f" ({', '.join(rule)})" if rule else ""
        lines.append(f"| `{f.name}` | {f.duckdb_type} | {'yes' if f.nullable else 'no'} | "
                     f"{_cell(f.doc)}{extra}{' *(lineage)*' if f.lineage else ''} |")
    if dataset.example:
        lines += ["", "```sql", dataset.example, "```"]
    return [*lines, ""]


def _macro(macro: Macro) -> list[str]:
    return [f"### `{macro.name}({', '.join(macro.params)})` (table macro)", "", macro.description, "",
            "```sql", macro.example, "```", ""]


def render() -> str:
    lines = ["# ticklake tables", "",
             "Generated from the data dictionary (`ticklake/dictionary/`) by `python -m ticklake.docs --write`; "
             "do not edit by hand. Every table is a DuckLake table of the one lake (`ticklake.connect()`, or "
             "`python -m ticklake.sql`): its catalog says which Parquet files under `lake/` hold its rows.", ""]
    for domain, title in DOMAINS.items():
        datasets = [d for d in DATASETS.values() if d.domain == domain]
        macros = [m for m in MACROS.values() if m.domain == domain]
        if not datasets and not macros:
            continue
        lines += [f"## {title}", ""]
        for dataset in datasets:
            lines += _dataset(dataset)
        for macro in macros:
            lines += _macro(macro)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--write" in argv:
        TABLES_MD.parent.mkdir(exist_ok=True)
        TABLES_MD.write_text(text)
        print(f"wrote {TABLES_MD}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
