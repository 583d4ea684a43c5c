"""The write path every dataset shares: one lake commit per write.

A commit replaces logical partitions (a source's rows of one region, or region and month) in ONE lake transaction
together with everything that must change with them: for a versioned dataset the versions they supersede (its
`_history`) and the changes they apply (the `reconciliation_log` ledger), and for every partition its
`lake_partitions` row. Readers see all of it or none of it; a failed or killed commit leaves the last snapshot.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ticklake import markets
from ticklake.dictionary import HISTORY, LAKE_PARTITIONS, Dataset, LakeKey, month_bounds
from ticklake.dictionary.frames import sort_table
from ticklake.dictionary.operations import RECONCILIATION_LOG
from ticklake.dictionary.schemas import validate
from ticklake.storage import Lakehouse, ledger
from ticklake.storage.ddl import partition_address, partition_label
from ticklake.storage.frames import from_arrow, to_arrow
from ticklake.storage.write_modes import contents


@dataclass
class Part:
    """One logical partition to commit: its lake-key values and source, and its complete contents."""

    values: dict[str, str]  # every lake key and "source"
    table: pa.Table
    missing_codes: int = 0  # requested codes the source did not answer (their stored rows are in `table`)
    previous: pa.Table | None = None  # what the partition held before (a versioned dataset keeps what this supersedes)

    @property
    def unchanged(self) -> bool:
        """The new contents are the stored ones, lineage included: nothing to rewrite (a re-run adds no files)."""
        return self.previous is not None and self.previous.equals(self.table)


@dataclass
class Staged:
    """A commit's batches, ready for one lake transaction: (dataset, parts, their lake_partitions rows)."""

    loads: list[tuple[Dataset, list[Part], pa.Table]]

    @property
    def addresses(self) -> list[str]:
        dataset, parts, _ = self.loads[-1]
        return [partition_address(dataset, p.values) for p in parts]


@dataclass
class Written:
    """What `write` stored in one partition."""

    path: str  # the partition's address (`lake_partitions.path`)
    frame: pd.DataFrame  # the partition's contents after the write
    diff: dict[str, int]


def date_key(dataset: Dataset) -> LakeKey | None:
    return next((k for k in dataset.lake_keys if k.grain == "month"), None)


def status_table(dataset: Dataset, parts: Sequence[Part], *, run_id: str, now: dt.datetime) -> pa.Table:
    """The `lake_partitions` rows of the parts being committed."""
    key = date_key(dataset)
    rows: dict[str, list] = {f.name: [] for f in LAKE_PARTITIONS.fields}
    calendars = _Calendars(now)
    committed_at = dt.datetime.now(dt.UTC)  # the wall clock, even when the run acts at another `now` (a replay)
    for part in parts:
        region = part.values.get("region", "-")  # a dataset kept per source only (source_files)
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
            "source": part.values["source"], "path": partition_address(dataset, part.values), "rows": table.num_rows,
            "symbols": len(pc.unique(table.column("symbol"))) if "symbol" in table.column_names else 0,
            "first_date": first, "last_date": last, "sessions": sessions, "sessions_with_rows": with_rows,
            "complete": complete, "missing_codes": part.missing_codes, "file_bytes": None, "file_mtime_ns": None,
            "run_id": run_id, "committed_at": committed_at,
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


def load(lake: Lakehouse, staged: Staged) -> int:
    """Every batch of a staged commit (rows, superseded versions, ledger, status rows) in one lake transaction.
    A partition whose contents did not change keeps its rows; only its status row is replaced."""
    batches = []
    for dataset, parts, status in staged.loads:
        changed = [p for p in parts if not p.unchanged]
        if changed:
            batches.append((dataset, pa.concat_tables([p.table for p in changed]), [p.values for p in changed], None))
        batches.append((dataset, None, [p.values for p in parts], status))
    return lake.replace_many(batches)


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


def _history_part(lake: Lakehouse, history: Dataset, part: Part, gone: pa.Table) -> Part:
    """The part's history partition with the versions it supersedes added (upsert by key and ingested_at, so a
    retried commit adds nothing twice)."""
    stored = lake.read_table(history, **part.values)
    if stored is not None:
        key = list(history.key)
        # a join drops the schema's NOT NULL flags, which concat_tables then refuses to mix: cast them back
        stored = stored.join(gone.select(key), keys=key, join_type="left anti").select(history.columns).cast(
            history.arrow_schema)
        gone = pa.concat_tables([stored, gone])
    return Part(part.values, sort_table(gone, history))


def _ledger_parts(lake: Lakehouse, dataset: Dataset, gone: list[tuple[Part, pa.Table]], *, run_id: str,
                  now: dt.datetime) -> list[Part]:
    """reconciliation_log partitions with the changes this write applies (one per region and source), merged with
    what is recorded there: a change the reconciliation sensor found first is already in, and stays once."""
    by_file: dict[tuple[str, str], list[pd.DataFrame]] = {}
    for part, superseded_rows in gone:
        changes = ledger.applied_changes(dataset, superseded_rows.select(dataset.columns), part.table)
        if not len(changes):
            continue
        if not dataset.arbitrated:
            by_file.setdefault((part.values["region"], part.values["source"]), []).append(changes)
            continue
        # a golden change is the winning source's (the previous winner's for a withdrawn bar): the identity the
        # reconciliation sensor recorded it under, so a correction found and then applied is recorded once
        winners = _winners(part.table, superseded_rows)
        by_source = winners.reindex(pd.MultiIndex.from_frame(changes[["symbol", "date"]].astype(
            {"date": "datetime64[ms]"}))).fillna(part.values["source"]).to_numpy()
        for source in sorted(set(by_source)):
            by_file.setdefault((part.values["region"], source), []).append(changes[by_source == source])
    parts = []
    for (region, source), frames in by_file.items():
        rows = ledger.ledger_rows(dataset, pd.concat(frames, ignore_index=True), region=region, source=source,
                                  run_id=run_id, now=now)
        values = {"region": region, "source": source}
        merged, _ = contents(RECONCILIATION_LOG, lake.read(RECONCILIATION_LOG, **values), rows)
        validate(merged, RECONCILIATION_LOG)
        parts.append(Part(values, to_arrow(RECONCILIATION_LOG, merged)))
    return parts


def _winners(current: pa.Table, superseded_rows: pa.Table) -> pd.Series:
    """(symbol, date) -> the source of the current row, else of the superseded one."""
    frames = [t.select(["symbol", "trade_date", "source"]).to_pandas() for t in (current, superseded_rows)]
    both = pd.concat(frames, ignore_index=True).drop_duplicates(["symbol", "trade_date"])
    both["trade_date"] = pd.to_datetime(both["trade_date"]).astype("datetime64[ms]")
    return both.set_index(["symbol", "trade_date"])["source"].astype(str)


def stage(lake: Lakehouse, dataset: Dataset, parts: Sequence[Part], *, run_id: str, now: dt.datetime) -> Staged:
    """Everything one commit of `parts` writes: for a versioned dataset, the versions they supersede (its history)
    and the changes they apply (the ledger) first, then the parts themselves; each with its status rows."""
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
            loads.append((extra_dataset, extra_parts, status_table(extra_dataset, extra_parts, run_id=run_id,
                                                                   now=now)))
    loads.append((dataset, list(parts), status_table(dataset, parts, run_id=run_id, now=now)))
    return Staged(loads)


def commit(lake: Lakehouse, dataset: Dataset, parts: Sequence[Part], *, run_id: str, now: dt.datetime) -> list[str]:
    """Commit the parts (rows, superseded versions, ledger and status) in one lake transaction; their addresses."""
    staged = stage(lake, dataset, parts, run_id=run_id, now=now)
    load(lake, staged)
    return staged.addresses


def write(lake: Lakehouse, dataset: Dataset, values: dict[str, str], incoming: pd.DataFrame, *, run_id: str,
          now: dt.datetime, as_of: dt.date | None = None, complete: bool = True) -> Written:
    """Write one partition of one source under the dataset's write mode: merge `incoming` (rows carrying their
    lineage) with what that source stored there, validate the result, then commit it. The path every dataset but
    the streamed klines takes."""
    previous = lake.read_table(dataset, **values)
    stored = None if previous is None else from_arrow(dataset, previous)
    frame, diff = contents(dataset, stored, incoming, as_of=as_of, complete=complete)
    validate(frame, dataset)
    part = Part(values, to_arrow(dataset, frame), previous=previous)
    [path] = commit(lake, dataset, [part], run_id=run_id, now=now)
    return Written(path, frame, diff)
