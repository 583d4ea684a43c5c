"""A tenant's nightly delivery: its product for one region, cut from one lake snapshot, as immutable files and a
`manifest.json` (docs/data-products.md).

`deliver(tenant, dataset, region, today=...)` reads the lake's current snapshot id first and builds every statement
that reads rows with `query.plan(..., snapshot=id)`, so the files are one consistent cut and hold only what the grant
allows. The only other statement is a count of the region's rows per month within the grant's window (which months
to cut, and a check that each file holds exactly that month's rows).

Layout, under the tenant's target (a directory or `s3://bucket/prefix`)::

    <target>/<dataset>/region=<R>/month=2024-06.<sha256[:12]>.<parquet|csv|jsonl>   one file per month of the
    <target>/<dataset>/region=<R>/manifest.json                                       dataset's date (`all.<sha>`
                                                                                      without a month key)
A file's name carries its content's hash, so a file is never rewritten in place: a month that changes gets a new
file, and a reader holding the previous manifest still finds every file it lists. Each file is written to a temporary
name in the same directory, fsynced and renamed (on S3 a PUT is atomic per object); the manifest is written last the
same way. Only then are files no manifest references removed (a killed run's leftovers, and generations older than the
previous one: the previous generation's files stay until the next change, for readers in flight).

The bytes are deterministic: the rows in the plan's order, fixed writer settings (Parquet: zstd, no timestamps;
`created_by` names only the pyarrow version), no time of delivery anywhere in a file or the manifest. A re-delivery
computes every month's bytes and compares their sha256 with the manifest's: unchanged months are not rewritten, and
when nothing changed the manifest is left byte-identical. A restatement rewrites only the months it touched, and the
new manifest lists what was added, changed and removed since the previous one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import io
import json
import os
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ticklake.dictionary import Dataset, Field, month_bounds
from ticklake.products.query import Column, Query, Request, plan
from ticklake.products.tenants import Tenant
from ticklake.storage.catalog import ALIAS
from ticklake.storage.object_store import ObjectStoreError, is_remote_url, location, request_failed

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
EXTENSIONS = {"parquet": "parquet", "csv": "csv", "jsonl": "jsonl"}
# Fixed Parquet writer settings: the same rows give the same bytes (for one pyarrow version, which `created_by` names).
PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd", "compression_level": 3, "version": "2.6",
                                   "data_page_version": "1.0", "use_dictionary": True, "write_statistics": True,
                                   "row_group_size": 128 * 1024, "store_schema": True}
_FILE = re.compile(r"^(?:month=\d{4}-\d{2}|all)\.[0-9a-f]{12}\.(?:parquet|csv|jsonl)$")
_TEMP = re.compile(r"^\..+\.tmp-[0-9a-f]+$")
ALL = "all"  # the one piece of a dataset without a month key


class DeliveryError(RuntimeError):
    """A delivery could not be cut or written; the message names the tenant, dataset, region and where."""


@dataclass(frozen=True)
class Delivery:
    """What one delivery did. `snapshot_id` is the snapshot this run read; the manifest names the snapshot its files
    were cut from (the same one, unless nothing changed and the manifest was left as it was)."""

    tenant: str
    dataset: str
    region: str
    format: str
    table: str
    directory: str  # the region's folder: a path, or s3://bucket/key
    manifest: str
    snapshot_id: int
    snapshot_time: str
    manifest_snapshot_id: int
    rows: int
    bytes: int
    written: tuple[str, ...]  # file names written by this run
    unchanged: tuple[str, ...]  # file names already delivered with the same bytes
    removed: tuple[str, ...]  # file names deleted (older generations, a killed run's leftovers)
    added: tuple[str, ...]  # months (or "all") new since the previous manifest
    changed: tuple[str, ...]
    dropped: tuple[str, ...]  # months the previous manifest had and this one has not
    manifest_written: bool
    seconds: dict[str, float] = field(default_factory=dict)
    delivered_at: str | None = None  # when this run finished (never written into the manifest)

    @property
    def months_changed(self) -> tuple[str, ...]:
        return tuple(sorted({*self.added, *self.changed, *self.dropped}))

    @property
    def files(self) -> int:
        return len(self.written) + len(self.unchanged)


# -- encoding ---------------------------------------------------------------------------------------------------
def arrow_schema(columns: tuple[Column, ...], dataset: str) -> pa.Schema:
    """The delivered columns as Arrow fields, each carrying its dictionary description (and unit) as `doc`."""
    return pa.schema([pa.field(c.name, Field(c.name, c.type, c.description).arrow_type, nullable=c.nullable,
                               metadata={"doc": c.doc}) for c in columns], metadata={"dataset": dataset})


def encode(table: pa.Table, fmt: str) -> bytes:
    """The table's bytes in a tenant format; the same rows give the same bytes."""
    if fmt == "parquet":
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, **PARQUET_OPTIONS)
        return sink.getvalue().to_pybytes()
    if fmt == "csv":
        sink = io.BytesIO()
        pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=True, delimiter=",", quoting_style="needed"))
        return sink.getvalue()
    if fmt == "jsonl":
        return jsonl(table)
    raise ValueError(f"unknown format {fmt!r} (formats: {', '.join(EXTENSIONS)})")


def _json_values(column: pa.ChunkedArray) -> pa.Array:
    """Each value of a column as a JSON literal (null where null), computed column-wise: numbers as Arrow prints
    them (shortest round trip, a whole float with ".0"; a non-finite float is null), dates "2024-06-03", instants
    "2024-06-28T20:00:00.000Z", strings escaped by orjson once per distinct value."""
    values = column.combine_chunks()
    kind = values.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        coded = values.dictionary_encode()
        literals = pa.array([orjson.dumps(v).decode() for v in coded.dictionary.to_pylist()], pa.string())
        out = pc.take(literals, coded.indices)
    elif pa.types.is_floating(kind):
        text = pc.cast(values, pa.string())
        text = pc.if_else(pc.match_substring_regex(text, r"^-?[0-9]+$"), pc.binary_join_element_wise(text, ".0", ""),
                          text)  # 1045.0, not 1045: a float stays a float to a reader that infers types
        out = pc.if_else(pc.is_finite(values), text, pa.scalar(None, pa.string()))
    elif pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        out = pc.cast(values, pa.string())
    elif pa.types.is_date(kind):
        out = pc.binary_join_element_wise('"', pc.cast(values, pa.string()), '"', "")
    elif pa.types.is_timestamp(kind):
        out = pc.binary_join_element_wise('"', pc.strftime(values, format="%Y-%m-%dT%H:%M:%SZ"), '"', "")
    else:
        raise TypeError(f"{kind} has no JSON lines encoding here")
    return pc.fill_null(out, "null")


def jsonl(table: pa.Table) -> bytes:
    """JSON lines: one object per row, the fields in the table's order, built column-wise (no Python object per
    value): `{"symbol":"AAPL","trade_date":"2024-06-03","close":191.29}`."""
    if not table.num_rows:
        return b""
    parts: list = []
    for i, name in enumerate(table.column_names):
        parts += [("{" if i == 0 else ",") + orjson.dumps(name).decode() + ":", _json_values(table.column(i))]
    lines = pc.binary_join_element_wise(*parts, "}\n", "")
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32, count=len(lines) + 1, offset=lines.offset * 4)
    return lines.buffers()[2][int(offsets[0]):int(offsets[-1])].to_pybytes()


# -- where the files go -----------------------------------------------------------------------------------------
class _Folder:
    """A local directory: atomic writes by temp file + fsync + rename, one delivery at a time (flock)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self._lock: int | None = None

    def describe(self, name: str = "") -> str:
        return str(self.path / name) if name else str(self.path)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # another delivery of this region waits here
            yield
        finally:
            os.close(fd)

    def listing(self) -> dict[str, int]:
        return {e.name: e.stat().st_size for e in os.scandir(self.path) if e.is_file()}

    def read(self, name: str) -> bytes | None:
        try:
            return (self.path / name).read_bytes()
        except FileNotFoundError:
            return None

    def put(self, name: str, data: bytes) -> None:
        temp = self.path / f".{name}.tmp-{secrets.token_hex(6)}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            with os.fdopen(fd, "wb", closefd=False) as out:
                out.write(data)
                out.flush()
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, self.path / name)
        self._sync_dir()

    def delete(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.path / name).unlink()

    def _sync_dir(self) -> None:
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class _Bucket:
    """An S3 prefix through the lake's own S3 client (pyarrow's, from the standard AWS variables): a PUT is atomic
    per object, so files go straight to their final keys and the manifest last. No lock: one delivery of a region
    at a time is the scheduler's to keep (Dagster runs a partition once at a time)."""

    def __init__(self, url: str) -> None:
        self.where = location(url)
        self.url = url.rstrip("/")

    def describe(self, name: str = "") -> str:
        return f"{self.url}/{name}" if name else self.url

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        yield

    def _path(self, name: str) -> str:
        return self.where.join(name)

    def _fail(self, exc: OSError, name: str, action: str) -> ObjectStoreError:
        return request_failed(exc, self.describe(name), action)

    def listing(self) -> dict[str, int]:
        try:
            infos = self.where.filesystem.get_file_info(pafs.FileSelector(self.where.base, allow_not_found=True))
        except OSError as exc:
            raise self._fail(exc, "", "list") from exc
        return {i.base_name: i.size for i in infos if i.type == pafs.FileType.File}

    def read(self, name: str) -> bytes | None:
        try:
            with self.where.filesystem.open_input_stream(self._path(name)) as f:
                return f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._fail(exc, name, "read") from exc

    def put(self, name: str, data: bytes) -> None:
        try:
            with self.where.filesystem.open_output_stream(self._path(name)) as f:
                f.write(data)
        except OSError as exc:
            raise self._fail(exc, name, "write") from exc

    def delete(self, name: str) -> None:
        try:
            self.where.filesystem.delete_file(self._path(name))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise self._fail(exc, name, "delete") from exc


def region_folder(tenant: Tenant, dataset: str, region: str) -> str:
    """Where a tenant's product of one region is delivered: <target>/<dataset>/region=<R>."""
    return f"{tenant.target.rstrip('/')}/{dataset}/region={region}"


def _folder(url: str) -> _Folder | _Bucket:
    return _Bucket(url) if is_remote_url(url) else _Folder(url)


# -- reading the lake -------------------------------------------------------------------------------------------
def _snapshot(con: duckdb.DuckDBPyConnection) -> tuple[int, str]:
    snapshot_id = int(con.execute("SELECT id FROM current_snapshot()").fetchone()[0])
    (when,) = con.execute(f"SELECT snapshot_time FROM {ALIAS}.snapshots() WHERE snapshot_id = ?",
                          [snapshot_id]).fetchone()
    return snapshot_id, when.astimezone(dt.UTC).isoformat()


def _month_key(dataset: Dataset) -> str | None:
    return next((k.column for k in dataset.lake_keys if k.grain == "month"), None)


def _pieces(con: duckdb.DuckDBPyConnection, whole: Query, region: str,
            snapshot: int) -> list[tuple[str, dt.date | None, dt.date | None, int]]:
    """(month or "all", first, last, rows) of the region's rows within the window, from a count per month."""
    table = whole.product.table
    name = '"' + table.name.replace('"', '""') + '"'
    where, params = ['b."region" = ?'], [region]
    date = table.date_column
    if date and whole.start is not None:
        where.append(f'b."{date}" >= ?')
        params.append(whole.start)
    if date and whole.end is not None:
        where.append(f'b."{date}" <= ?')
        params.append(whole.end)
    source = f"FROM {name} b AT (VERSION => {int(snapshot)}) WHERE {' AND '.join(where)}"
    month = _month_key(table)
    if month is None:
        (rows,) = con.execute(f"SELECT count(*) {source}", params).fetchone()
        return [(ALL, None, None, int(rows))] if rows else []
    out = []
    for label, rows in con.execute(f"SELECT strftime(b.\"{month}\", '%Y-%m') AS m, count(*) {source} "
                                   "GROUP BY m ORDER BY m", params).fetchall():
        first, last = month_bounds(label)
        if whole.start is not None:
            first = max(first, whole.start)
        if whole.end is not None:
            last = min(last, whole.end)
        out.append((label, first, last, int(rows)))
    return out


def _file_name(piece: str, digest: str, fmt: str) -> str:
    stem = ALL if piece == ALL else f"month={piece}"
    return f"{stem}.{digest[:12]}.{EXTENSIONS[fmt]}"


def manifest_bytes(manifest: dict) -> bytes:
    return (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode()


def _read_manifest(folder: _Folder | _Bucket) -> dict | None:
    raw = folder.read(MANIFEST)
    if raw is None:
        return None
    try:
        doc = json.loads(raw)
    except ValueError:
        return None  # not ours or damaged: everything is delivered anew (and the manifest replaced)
    return doc if isinstance(doc, dict) and doc.get("manifest_version") == MANIFEST_VERSION else None


_CHANGE_KEYS = ("snapshot", "changes")  # what a manifest holds beyond its contents


def _contents(manifest: dict) -> dict:
    return {k: v for k, v in manifest.items() if k not in _CHANGE_KEYS}


# -- the delivery -----------------------------------------------------------------------------------------------
def deliver(tenant: Tenant, dataset: str, region: str, *, today: dt.date,
            con: duckdb.DuckDBPyConnection | None = None, home: str | Path | None = None,
            now: dt.datetime | None = None) -> Delivery:
    """Deliver `tenant`'s `dataset` of `region` as it stands in the lake now (the grant's rolling window ends on
    `today`). `con`: a connection with the lake selected (the pipeline's); without it, a read-only one is opened on
    the lake under `home` (TICKLAKE_HOME and the catalog settings). Raises query.GrantError for a dataset or region
    outside the grant, before anything is read or written."""
    started = time.perf_counter()
    plan(tenant, Request(dataset, regions=(region,)), today=today, max_symbols=None)  # the grant, before any I/O
    if con is None:
        from ticklake.storage import connect

        with contextlib.closing(connect(home)) as own:
            return _deliver(tenant, dataset, region, today, own, now, started)
    return _deliver(tenant, dataset, region, today, con, now, started)


def _deliver(tenant: Tenant, dataset: str, region: str, today: dt.date, con: duckdb.DuckDBPyConnection,
             now: dt.datetime | None, started: float) -> Delivery:
    seconds = {"read_s": 0.0, "encode_s": 0.0, "write_s": 0.0}
    snapshot_id, snapshot_time = _snapshot(con)
    whole = plan(tenant, Request(dataset, regions=(region,)), today=today, snapshot=snapshot_id, max_symbols=None)
    schema = arrow_schema(whole.columns, dataset)
    folder = _folder(region_folder(tenant, dataset, region))
    t0 = time.perf_counter()
    pieces = _pieces(con, whole, region, snapshot_id)
    seconds["read_s"] += time.perf_counter() - t0
    with folder.held():
        previous = _read_manifest(folder)
        if previous is not None and (previous.get("tenant"), previous.get("dataset"), previous.get("region")) != \
                (tenant.name, dataset, region):
            raise DeliveryError(f"{folder.describe(MANIFEST)} is tenant {previous.get('tenant')}'s delivery of "
                                f"{previous.get('dataset')} for region {previous.get('region')}, not tenant "
                                f"{tenant.name}'s: give each tenant its own target; nothing was written")
        listing = folder.listing()
        before = {f["month"] or ALL: f for f in (previous or {}).get("files", [])}
        files, written, unchanged = [], [], []
        rows_total = bytes_total = 0
        for piece, first, last, expected in pieces:
            t0 = time.perf_counter()
            request = Request(dataset, regions=(region,), start=first, end=last) if piece != ALL else \
                Request(dataset, regions=(region,))
            query = plan(tenant, request, today=today, snapshot=snapshot_id, max_symbols=None)
            table = con.execute(query.sql, list(query.params)).to_arrow_table()
            seconds["read_s"] += time.perf_counter() - t0
            if table.num_rows != expected:
                raise DeliveryError(f"{tenant.name}/{dataset}/region={region} {piece}: the statement returned "
                                    f"{table.num_rows} rows where the lake holds {expected}; the previous "
                                    "delivery stands")
            t0 = time.perf_counter()
            data = encode(table.select(schema.names).cast(schema), tenant.format)
            digest = hashlib.sha256(data).hexdigest()
            seconds["encode_s"] += time.perf_counter() - t0
            name = _file_name(piece, digest, tenant.format)
            old = before.get(piece)
            if old is not None and old["sha256"] == digest and listing.get(name) == len(data):
                unchanged.append(name)
            else:
                t0 = time.perf_counter()
                folder.put(name, data)
                seconds["write_s"] += time.perf_counter() - t0
                written.append(name)
            files.append({"month": None if piece == ALL else piece, "path": name, "rows": table.num_rows,
                          "bytes": len(data), "sha256": digest})
            rows_total += table.num_rows
            bytes_total += len(data)

        manifest = _manifest(tenant, dataset, region, whole, snapshot_id, snapshot_time, files, rows_total,
                             bytes_total, previous)
        changes = manifest["changes"]
        t0 = time.perf_counter()
        manifest_written = previous is None or _contents(previous) != _contents(manifest)
        if manifest_written:
            folder.put(MANIFEST, manifest_bytes(manifest))
        else:
            manifest = previous
        keep = {MANIFEST, *(f["path"] for f in manifest["files"]), *manifest["changes"]["superseded"]}
        removed = []
        for name in sorted(folder.listing()):
            if name not in keep and (_FILE.match(name) or _TEMP.match(name)):
                folder.delete(name)
                removed.append(name)
        seconds["write_s"] += time.perf_counter() - t0
    seconds = {k: round(v, 4) for k, v in seconds.items()}
    seconds["total_s"] = round(time.perf_counter() - started, 4)
    return Delivery(
        tenant=tenant.name, dataset=dataset, region=region, format=tenant.format, table=whole.product.table.name,
        directory=folder.describe(), manifest=folder.describe(MANIFEST), snapshot_id=snapshot_id,
        snapshot_time=snapshot_time, manifest_snapshot_id=manifest["snapshot"]["id"], rows=rows_total,
        bytes=bytes_total, written=tuple(written), unchanged=tuple(unchanged), removed=tuple(removed),
        added=tuple(changes["added"]) if manifest_written else (),
        changed=tuple(changes["changed"]) if manifest_written else (),
        dropped=tuple(changes["removed"]) if manifest_written else (),
        manifest_written=manifest_written, seconds=seconds,
        delivered_at=(now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).isoformat())


def _manifest(tenant: Tenant, dataset: str, region: str, whole: Query, snapshot_id: int, snapshot_time: str,
              files: list[dict], rows: int, size: int, previous: dict | None) -> dict:
    table = whole.product.table
    old = {f["month"] or ALL: f for f in (previous or {}).get("files", [])}
    new = {f["month"] or ALL: f for f in files}
    return {
        "manifest_version": MANIFEST_VERSION,
        "tenant": tenant.name,
        "dataset": dataset,
        "region": region,
        "table": table.name,
        "prices": tenant.prices,
        "currency": tenant.currency,
        "format": tenant.format,
        "window": {"rule": tenant.window.describe(),
                   "start": whole.start.isoformat() if whole.start else None,
                   "end": whole.end.isoformat() if whole.end else None},
        "rows": rows,
        "bytes": size,
        "schema": [{"name": c.name, "type": c.type, "nullable": c.nullable, "description": c.description,
                    "unit": c.unit} for c in whole.columns],
        "files": files,
        "snapshot": {"id": snapshot_id, "time": snapshot_time},
        "changes": {
            "previous_snapshot": (previous or {}).get("snapshot"),
            "added": sorted(set(new) - set(old)),
            "changed": sorted(p for p in set(new) & set(old) if new[p]["sha256"] != old[p]["sha256"]),
            "removed": sorted(set(old) - set(new)),
            # the previous generation's files this one replaced: kept until the next change, for readers in flight
            "superseded": sorted(old[p]["path"] for p in old if p not in new or new[p]["path"] != old[p]["path"]),
        },
    }
