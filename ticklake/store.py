"""The write path every dataset shares: commit partitions to the lake and the warehouse, and keep them in step.

A partition is committed in two steps: its Parquet file is replaced atomically, then its warehouse rows and its
`lake_partitions` status row are replaced in one transaction. The status row records the file's size and
modification time, so a failure between the two steps (a full disk during the load, a killed process, an object
store that stopped answering) leaves a visible mismatch; the next writer of that dataset and region calls `repair`
first, which reloads every file the warehouse does not match, rewrites every file that vanished, and removes temp
files left by dead writers.

Every file access goes through the `Lake`, so all of this works the same on a local lake and on object storage
(see ticklake/lake.py for what differs: per-object rather than all-or-nothing replacement of a multi-file write,
and modification times to the second). Migrating the former layouts (`data.parquet` files) is local only: those
layouts predate the object-storage lake, and `repair` refuses to run over an object-storage lake that holds them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ticklake import ledger, markets
from ticklake.dictionary import HISTORY, LAKE_PARTITIONS, Dataset, LakeKey, month_bounds
from ticklake.dictionary.operations import RECONCILIATION_LOG
from ticklake.lake import LEGACY_FILE_NAME, Lake, LakePath
from ticklake.schemas import validate
from ticklake.transforms import sort_table
from ticklake.warehouse import Warehouse, partition_label
from ticklake.write_modes import contents


@dataclass
class Part:
    """One partition file to commit: its lake-key values and source, and its complete contents."""

    values: dict[str, str]  # every lake key and "source"
    table: pa.Table
    missing_codes: int = 0  # requested codes the source did not answer (their stored rows are in `table`)
    previous: pa.Table | None = None  # what the file held before (a versioned dataset keeps what this supersedes)


@dataclass
class Staged:
    """A commit whose lake files are written: the warehouse loads still to run, in one transaction."""

    loads: list[tuple[Dataset, list[Part], pa.Table]]  # (dataset, parts, their lake_partitions rows)
    paths: list[LakePath]  # the dataset's own files, in the parts' order


@dataclass
class Written:
    """What `write` stored in one partition file."""

    path: LakePath
    frame: pd.DataFrame  # the partition's contents after the write
    diff: dict[str, int]


@dataclass
class Repair:
    """What `repair` found and fixed before a write."""

    reloaded: list[str] = field(default_factory=list)  # lake files loaded into the warehouse again
    rewritten: list[str] = field(default_factory=list)  # lake files rebuilt from the warehouse
    migrated: list[str] = field(default_factory=list)  # old daily files folded into month files
    renamed: list[str] = field(default_factory=list)  # single-source `data.parquet` files given their source's name
    temp_files_removed: int = 0


def date_key(dataset: Dataset) -> LakeKey | None:
    return next((k for k in dataset.lake_keys if k.grain == "month"), None)


def write_lake(lake: Lake, dataset: Dataset, parts: Sequence[Part]) -> list[LakePath]:
    return lake.write_many(dataset, [(p.values, p.table) for p in parts])


def status_table(lake: Lake, dataset: Dataset, parts: Sequence[Part], paths: Sequence[LakePath], *, run_id: str,
                 now: dt.datetime, stats: Sequence[tuple[int, int]] | None = None) -> pa.Table:
    """The `lake_partitions` rows of freshly written partitions (file size and mtime as they are now, or as `stats`
    gives them when the caller has just listed them)."""
    key = date_key(dataset)
    rows: dict[str, list] = {f.name: [] for f in LAKE_PARTITIONS.fields}
    calendars = _Calendars(now)
    committed_at = dt.datetime.now(dt.UTC)  # the wall clock, even when the run acts at another `now` (a replay)
    for i, (part, path) in enumerate(zip(parts, paths, strict=True)):
        region = part.values["region"]
        size, mtime_ns = lake.stat(path) if stats is None else stats[i]
        table = part.table
        first = last = None
        sessions = with_rows = 0
        complete = True
        if key is not None:
            sessions, complete = calendars.closed_sessions(region, *month_bounds(part.values[key.name]))
        if dataset.date_column is not None and table.num_rows:
            dates = table.column(dataset.date_column)
            first, last = pc.min(dates).as_py(), pc.max(dates).as_py()
            with_rows = len(pc.unique(dates))
        values = {
            "dataset": dataset.name, "region": region, "partition": partition_label(dataset, part.values),
            "source": part.values["source"], "path": lake.relative(path), "rows": table.num_rows,
            "symbols": len(pc.unique(table.column("symbol"))) if "symbol" in table.column_names else 0,
            "first_date": first, "last_date": last, "sessions": sessions, "sessions_with_rows": with_rows,
            "complete": complete, "missing_codes": part.missing_codes, "file_bytes": size,
            "file_mtime_ns": mtime_ns, "run_id": run_id, "committed_at": committed_at,
        }
        for name, value in values.items():
            rows[name].append(value)
    return pa.Table.from_pydict(rows, schema=LAKE_PARTITIONS.arrow_schema)


class _Calendars:
    """Closed sessions per period, from one calendar lookup per region (status rows are built in batches)."""

    def __init__(self, now: dt.datetime):
        self.now = now
        self._last_closed: dict[str, dt.date | None] = {}

    def closed_sessions(self, region: str, first: dt.date, last: dt.date) -> tuple[int, bool]:
        """(sessions in [first, last] that have closed, whether all of them have)."""
        if region not in self._last_closed:
            self._last_closed[region] = markets.last_completed_session(region, self.now)
        last_closed = self._last_closed[region]
        days = markets.sessions(region, first, last)
        closed = sum(1 for d in days if last_closed is not None and d <= last_closed)
        return closed, closed == len(days)


def load_warehouse(warehouse: Warehouse, dataset: Dataset, parts: Sequence[Part], status: pa.Table) -> int:
    """Replace the parts' warehouse rows and status rows in one transaction."""
    return load(warehouse, Staged([(dataset, list(parts), status)], []))


def load(warehouse: Warehouse, staged: Staged) -> int:
    """Every warehouse load of a staged commit (rows, superseded versions, status rows) in one transaction."""
    batches = []
    for dataset, parts, status in staged.loads:
        tables = [p.table for p in parts]
        table = pa.concat_tables(tables) if tables else dataset.arrow_schema.empty_table()
        batches.append((dataset, table, [p.values for p in parts], status))
    return warehouse.replace_many(batches)


def superseded(dataset: Dataset, previous: pa.Table | None, current: pa.Table, *, at: dt.datetime,
               run_id: str) -> pa.Table | None:
    """The versions `previous` held that `current` no longer holds as they were (same key and ingested_at):
    restated or removed rows, stamped with when (`at`, the run's instant: the new versions' ingested_at) and by
    which run they stopped being the known ones. None when nothing was superseded."""
    if previous is None or previous.num_rows == 0:
        return None
    key = [*dataset.key, "ingested_at"]
    gone = previous.join(current.select(key), keys=key, join_type="left anti").select(dataset.columns)
    if gone.num_rows == 0:
        return None
    stamp = pa.array([at] * gone.num_rows, pa.timestamp("ms", tz="UTC"))
    runs = pa.array([run_id] * gone.num_rows, pa.string())
    history = HISTORY[dataset.name]
    return gone.append_column("superseded_at", stamp).append_column("superseded_by", runs).cast(history.arrow_schema)


def _history_part(lake: Lake, history: Dataset, part: Part, gone: pa.Table) -> Part:
    """The part's history file with the versions it supersedes added (upsert by key and ingested_at, so a retried
    commit adds nothing twice)."""
    stored = lake.read_table(history, **part.values)
    if stored is not None:
        key = list(history.key)
        stored = stored.join(gone.select(key), keys=key, join_type="left anti").select(history.columns)
        gone = pa.concat_tables([stored, gone])
    return Part(part.values, sort_table(gone, history))


def _ledger_parts(lake: Lake, dataset: Dataset, gone: list[tuple[Part, pa.Table]], *, run_id: str,
                  now: dt.datetime) -> list[Part]:
    """reconciliation_log files with the changes this write applies (one per region and source), merged with what
    is recorded there: a change the reconciliation sensor found first is already in, and stays once."""
    by_file: dict[tuple[str, str], list[pd.DataFrame]] = {}
    for part, superseded_rows in gone:
        changes = ledger.applied_changes(dataset, superseded_rows.select(dataset.columns), part.table)
        if len(changes):
            by_file.setdefault((part.values["region"], part.values["source"]), []).append(changes)
    parts = []
    for (region, source), frames in by_file.items():
        rows = ledger.ledger_rows(dataset, pd.concat(frames, ignore_index=True), region=region, source=source,
                                  run_id=run_id, now=now)
        values = {"region": region, "source": source}
        merged, _ = contents(RECONCILIATION_LOG, lake.read(RECONCILIATION_LOG, **values), rows)
        validate(merged, RECONCILIATION_LOG)
        parts.append(Part(values, lake.to_arrow(RECONCILIATION_LOG, merged)))
    return parts


def stage(lake: Lake, dataset: Dataset, parts: Sequence[Part], *, run_id: str, now: dt.datetime) -> Staged:
    """Write the parts' lake files and build their status rows: everything but the warehouse load. For a versioned
    dataset, the versions they supersede go to its history first, and the changes they apply to the ledger."""
    loads = []
    extra: list[tuple[Dataset, list[Part]]] = []
    if dataset.versioned:
        gone = [(p, g) for p in parts
                if (g := superseded(dataset, p.previous, p.table, at=now, run_id=run_id)) is not None]
        history = HISTORY[dataset.name]
        extra.append((history, [_history_part(lake, history, p, g) for p, g in gone]))
        if ledger.recorded(dataset):
            extra.append((RECONCILIATION_LOG, _ledger_parts(lake, dataset, gone, run_id=run_id, now=now)))
    for extra_dataset, extra_parts in extra:
        if extra_parts:
            paths = write_lake(lake, extra_dataset, extra_parts)
            loads.append((extra_dataset, extra_parts, status_table(lake, extra_dataset, extra_parts, paths,
                                                                   run_id=run_id, now=now)))
    paths = write_lake(lake, dataset, parts)
    loads.append((dataset, list(parts), status_table(lake, dataset, parts, paths, run_id=run_id, now=now)))
    return Staged(loads, paths)


def commit(lake: Lake, warehouse: Warehouse, dataset: Dataset, parts: Sequence[Part], *, run_id: str,
           now: dt.datetime) -> list[LakePath]:
    """Write the parts to the lake, then load them (rows, superseded versions and status) into the warehouse."""
    staged = stage(lake, dataset, parts, run_id=run_id, now=now)
    load(warehouse, staged)
    return staged.paths


def write(lake: Lake, warehouse: Warehouse, dataset: Dataset, values: dict[str, str], incoming: pd.DataFrame, *,
          run_id: str, now: dt.datetime, as_of: dt.date | None = None, complete: bool = True) -> Written:
    """Write one partition file of one source under the dataset's write mode: merge `incoming` (rows carrying
    their lineage) with what that source stored there, validate the result, then commit it (lake, warehouse rows
    and status together). The path every dataset but the streamed klines takes."""
    previous = lake.read_table(dataset, **values)
    stored = None if previous is None else Lake.from_arrow(dataset, previous)
    frame, diff = contents(dataset, stored, incoming, as_of=as_of, complete=complete)
    validate(frame, dataset)
    part = Part(values, lake.to_arrow(dataset, frame), previous=previous)
    [path] = commit(lake, warehouse, dataset, [part], run_id=run_id, now=now)
    return Written(path, frame, diff)


def repair(lake: Lake, warehouse: Warehouse, dataset: Dataset, region: str, *, source: str, run_id: str,
           now: dt.datetime, log: Callable[[str], None] = lambda _msg: None) -> Repair:
    """Bring the lake and the warehouse of (`dataset`, `region`) back in step before writing to them (and those of
    its history, for a versioned dataset)."""
    if dataset.versioned:
        history = repair(lake, warehouse, HISTORY[dataset.name], region, source=source, run_id=run_id, now=now,
                         log=log)
        if ledger.recorded(dataset):  # the ledger files this dataset's writes add to
            repair(lake, warehouse, RECONCILIATION_LOG, region, source=source, run_id=run_id, now=now, log=log)
    result = Repair(temp_files_removed=len(lake.remove_stale_temp_files(dataset)))
    if result.temp_files_removed:
        log(f"{dataset.name}: removed {result.temp_files_removed} temp file(s) left by a writer that died")
    _refuse_former_layouts(lake, dataset, region)
    result.renamed = _name_legacy_files(lake, dataset, region, source)
    if result.renamed:
        log(f"{dataset.name} {region}: named {len(result.renamed)} single-source file(s) after their source")
    result.migrated = _migrate_daily_files(lake, dataset, region, source)
    if result.migrated:
        log(f"{dataset.name} {region}: folded one-file-per-date partitions into months {result.migrated[:5]}..")
    files = lake.partition_files(dataset, region=region)
    committed = warehouse.partition_status(dataset, region)
    names = [k.name for k in dataset.lake_keys] + ["source"]
    for key_values, found in files.items():
        values = dict(zip(names, key_values, strict=True))
        label = (partition_label(dataset, values), values["source"])
        if committed.get(label) == (found.size, found.mtime_ns):
            continue
        table = lake.read_file(found.path, schema=dataset.arrow_schema)
        part = Part(values, table)
        load_warehouse(warehouse, dataset, [part], status_table(lake, dataset, [part], [found.path], run_id=run_id,
                                                                now=now, stats=[(found.size, found.mtime_ns)]))
        result.reloaded.append("/".join(label))
    on_disk = {(partition_label(dataset, dict(zip(names, k, strict=True))), k[-1]) for k in files}
    for label, source_name in sorted(set(committed) - on_disk):
        values = {**_values_from_label(dataset, region, label), "source": source_name}
        part = Part(values, warehouse.read_partitions(dataset, [values]))
        commit(lake, warehouse, dataset, [part], run_id=run_id, now=now)
        result.rewritten.append(f"{label}/{source_name}")
    if result.reloaded or result.rewritten:
        log(f"{dataset.name} {region}: lake and warehouse had drifted apart; reloaded {len(result.reloaded)} "
            f"partition(s) from the lake {result.reloaded[:5]}, rebuilt {len(result.rewritten)} lake file(s) from "
            f"the warehouse {result.rewritten[:5]}")
    if dataset.versioned:  # one report for the dataset and its history
        result.reloaded += history.reloaded
        result.rewritten += history.rewritten
        result.temp_files_removed += history.temp_files_removed
    return result


def _values_from_label(dataset: Dataset, region: str, label: str) -> dict[str, str]:
    rest = [k.name for k in dataset.lake_keys if k.name != "region"]
    return {"region": region, **dict(zip(rest, label.split("/"), strict=True))} if rest else {"region": region}


def _refuse_former_layouts(lake: Lake, dataset: Dataset, region: str) -> None:
    """On object storage, stop at files of the former layouts rather than skip them: they are migrated on a local lake
    only (S3 has no rename, and those layouts predate the object-storage lake), and left in place they would be read
    twice by a `*.parquet` glob next to the files that replaced them."""
    if not lake.is_remote:
        return
    found = lake.legacy_files(dataset, region)
    if found:
        raise RuntimeError(
            f"{dataset.name} {region}: {len(found)} file(s) of a former lake layout on object storage, e.g. "
            f"{found[0]}; migrate them on a local copy of the lake (any write there repairs it) and upload the "
            f"result, or delete them if the lake already holds their rows")


def _name_legacy_files(lake: Lake, dataset: Dataset, region: str, source: str) -> list[str]:
    """Rename `data.parquet` files of the single-source layout to `<source>.parquet`, by the source their rows
    name (the writer's own source for an empty file). A file mixing sources cannot be attributed: refuse.
    A local lake only (see `_refuse_former_layouts`)."""
    if lake.is_remote:
        return []
    renamed = []
    for path in sorted(Path(lake.dataset_dir(dataset) / f"region={region}").rglob(LEGACY_FILE_NAME)):
        if path.parent.name.startswith("date="):
            continue  # the daily layout: folded into months below
        names = set(lake.read_file(path, columns=["source"]).column("source").unique().to_pylist()) or {source}
        if len(names) != 1:
            raise RuntimeError(f"{path} holds rows of several sources {sorted(names)}; split it by source by hand")
        target = path.with_name(f"{names.pop()}.parquet")
        if target.exists():
            raise RuntimeError(f"{path} and {target} both exist; keep the right one and delete the other")
        path.rename(target)
        renamed.append(lake.relative(target))
    return renamed


def _migrate_daily_files(lake: Lake, dataset: Dataset, region: str, source: str) -> list[str]:
    """Fold files of the former one-file-per-date layout (`region=US/date=2024-01-02/`) into month files.

    A month file that already exists is newer and wins for any key both hold; the old files are deleted only
    after the month file is durable. The caller's drift check then loads the months into the warehouse.
    A local lake only (see `_refuse_former_layouts`).
    """
    key = date_key(dataset)
    if lake.is_remote:
        return []
    folder = Path(lake.dataset_dir(dataset) / f"region={region}")
    old = sorted(folder.glob(f"date=*/{LEGACY_FILE_NAME}"))
    if key is None or not old:
        return []
    by_month: dict[str, list[Path]] = {}
    for path in old:
        by_month.setdefault(path.parent.name.split("=", 1)[1][:7], []).append(path)
    schema = dataset.arrow_schema
    for month, paths in by_month.items():
        tables = [lake.read_file(p, schema=schema) for p in paths]
        current = lake.partition_path(dataset, region=region, month=month, source=source)
        if lake.exists(current):
            newer = lake.read_file(current, schema=schema)
            tables = [_without_keys(t, newer, dataset) for t in tables] + [newer]
        lake.write(dataset, sort_table(pa.concat_tables(tables), dataset), region=region, month=month, source=source)
        for path in paths:
            path.unlink()
            if not any(path.parent.iterdir()):
                path.parent.rmdir()
    return sorted(by_month)


def _without_keys(table: pa.Table, other: pa.Table, dataset: Dataset) -> pa.Table:
    """Rows of `table` whose key is not in `other`."""
    key = list(dataset.key)
    return table.join(other.select(key), keys=key, join_type="left anti").select(dataset.columns)
