"""The previous release's storage, recognised so that nothing opens a home holding it as if it were empty.

That release kept each dataset as Parquet files `TICKLAKE_HOME/lake/<dataset>/region=XX/[month=YYYY-MM/]<source>
.parquet` plus two DuckDB files (`warehouse.duckdb`, `state/pipeline.duckdb`, written by DuckDB 2.0, which this
release's DuckDB 1.5.5 cannot open). This release reads none of them: a pipeline started on such a home would
begin an empty lake beside the old rows, and the next nightly run would look like the first. So opening the lake
is refused until `python -m ticklake.storage.migrate` has moved the rows into the lake and the old files aside.
DuckLake's own files live under `lake/main/` (its schema), never `lake/<dataset>/region=...`.
"""

from __future__ import annotations

from pathlib import Path

MIGRATE_COMMAND = "python -m ticklake.storage.migrate"
DUCKLAKE_SCHEMA_DIR = "main"  # DuckLake writes <data path>/<schema>/<table>/...
OLD_FILES = ("warehouse.duckdb", "state/pipeline.duckdb")


class OldLayoutError(RuntimeError):
    """The home holds the previous release's storage; the message names the migration command."""


def old_dataset_dirs(home: Path) -> list[Path]:
    """The previous release's dataset directories under `home/lake/` (those holding `region=*` folders)."""
    lake = Path(home) / "lake"
    if not lake.is_dir():
        return []
    return [child for child in sorted(lake.iterdir())
            if child.is_dir() and child.name != DUCKLAKE_SCHEMA_DIR and any(child.glob("region=*"))]


def old_storage(home: Path) -> list[Path]:
    """Everything of the previous release's storage that `home` holds: dataset directories and DuckDB files."""
    return old_dataset_dirs(home) + [Path(home) / name for name in OLD_FILES if (Path(home) / name).exists()]


def refuse_old_layout(home: Path) -> None:
    """Raise OldLayoutError when `home` still holds the previous release's storage."""
    found = old_storage(home)
    if not found:
        return
    dirs = [p.name for p in found if p.is_dir()]
    shown = [f"lake/{name}/" for name in dirs[:4]]
    shown += [f"{len(dirs) - 4} more lake/<dataset>/"] if len(dirs) > 4 else []
    shown += [str(p.relative_to(home)) for p in found if not p.is_dir()]
    raise OldLayoutError(
        f"TICKLAKE_HOME={home} holds the previous release's storage ({', '.join(shown)}), which this release does not "
        f"read. Migrate it once into the lake: `{MIGRATE_COMMAND} --home {home}` (add --dry-run to see what it "
        "would do first; docs/lake-operations.md). It keeps every row and moves the old files aside, deleting "
        "nothing. Nothing was changed.")
