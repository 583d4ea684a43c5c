"""A vendor's file drop into the raw layer and the golden copy: receive a file, then load the months it covers.

Two steps, so the sensor that sees a file stays cheap and the load is an ordinary partitioned, re-runnable step:
- `receive` reads one new file, screens it and records it in `source_files` (its hash decides: the same content
  seen again is nothing new; the same name with new content is a correction, `restated`). A file refused whole
  says why there and changes nothing else. It returns the (region, month) partitions the file covers.
- `load_month` re-reads every file of the vendor that covers a month (the latest content of each name, older
  deliveries first, so a correction wins), quarantines the rows that break a rule, and commits the vendor's raw
  rows of the month together with the golden bars they re-derive.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ticklake import markets
from ticklake.datasets.context import RunContext
from ticklake.datasets.golden_copy import golden_part, golden_stage
from ticklake.datasets.klines import month_of, universe
from ticklake.dictionary import month_bounds
from ticklake.dictionary.market_data import KLINES_DAILY_BY_SOURCE
from ticklake.dictionary.operations import QUARANTINE, SOURCE_FILES
from ticklake.dictionary.schemas import validate
from ticklake.sources.declared import SourceSpec
from ticklake.sources.files import Delivery, FileRefused, format_named
from ticklake.sources.files.drop import sha256_of
from ticklake.sources.files.screen import screen
from ticklake.storage import Lakehouse
from ticklake.storage.frames import fetch_frame, from_arrow, to_arrow
from ticklake.storage.write_modes import carry_forward_lineage
from ticklake.storage.writes import Part, Staged, load, stage

ACCEPTED, RESTATED, DUPLICATE, REFUSED = "accepted", "restated", "duplicate", "refused"
LOADED = (ACCEPTED, RESTATED)


@dataclass
class Received:
    """What `receive` made of one file."""

    name: str
    sha256: str
    status: str
    reason: str | None = None
    rows: int = 0
    quarantined: int = 0
    partitions: list[tuple[str, str]] = field(default_factory=list)  # (region, month) the file covers


def region_of(spec: SourceSpec, name: str) -> str:
    """A single-region drop's region, or the first folder of the file's name (`<drop>/<REGION>/...`)."""
    if len(spec.regions) == 1:
        return spec.regions[0]
    head = name.split("/", 1)[0]
    if "/" not in name or head not in spec.regions:
        raise FileRefused(f"{name}: a drop covering {', '.join(spec.regions)} keeps each region's files in a folder "
                          "of that name (<drop>/<REGION>/<file>)")
    return head


FILES_SQL = """
SELECT name, sha256, status, received_at, first_date, last_date, regions FROM source_files
WHERE source = $source ORDER BY received_at, name
"""


def source_files(lake: Lakehouse, source: str) -> pd.DataFrame:
    with lake.reader() as con:
        return fetch_frame(con.execute(FILES_SQL, {"source": source}))


def _read(spec: SourceSpec, name: str, data: bytes) -> Delivery:
    return format_named(spec.format).read(name, data, dict(spec.symbols))


def _screened(lake: Lakehouse, region: str, delivery: Delivery) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The delivery's bars that pass what only the lake knows (the security master, the calendar), and all the
    rows it rejects (the format's and these)."""
    bars = delivery.bars
    if bars.empty:
        return bars, delivery.rejected
    codes = set(universe(lake, region))
    if not codes:
        raise FileRefused(f"the security master of {region} is empty, so no ticker can be checked: materialize "
                          f"`securities` for {region} first, then drop the file again")
    first, last = pd.Timestamp(bars["trade_date"].min()).date(), pd.Timestamp(bars["trade_date"].max()).date()
    good, rejected = screen(bars, known_codes=codes, sessions=markets.sessions(region, first, last))
    return good, pd.concat([delivery.rejected, rejected], ignore_index=True)


def receive(ctx: RunContext, spec: SourceSpec, name: str, data: bytes) -> Received:
    """Record a file seen in the drop in `source_files`; the partitions to load when it is new content."""
    sha = sha256_of(data)
    known = source_files(ctx.lake, spec.name)
    if ((known["name"] == name) & (known["sha256"] == sha)).any():
        return Received(name, sha, DUPLICATE)
    earlier = known[(known["name"] == name) & known["status"].isin(LOADED)]
    row = {"name": name, "sha256": sha, "bytes": len(data), "rows": 0, "regions": None, "first_date": pd.NaT,
           "last_date": pd.NaT, "status": REFUSED, "reason": None, "rows_quarantined": 0}
    received = Received(name, sha, REFUSED)
    try:
        region = region_of(spec, name)
        delivery = _read(spec, name, data)
        good, rejected = _screened(ctx.lake, region, delivery)
    except FileRefused as refused:
        row["reason"] = received.reason = refused.reason
    else:
        dates = pd.to_datetime(good["trade_date"])
        months = sorted({month_of(d.date()) for d in dates})
        received = Received(name, sha, RESTATED if len(earlier) else ACCEPTED, rows=delivery.rows,
                            quarantined=len(rejected), partitions=[(region, m) for m in months])
        if len(earlier):
            last = earlier.iloc[-1]
            received.reason = (f"a correction: replaces the content received at {pd.Timestamp(last['received_at'])} "
                               f"(sha256 {last['sha256'][:12]}); the months it covers are re-derived")
        if len(rejected):  # kept with their rule now: a file may have no row left to load
            _quarantine(ctx, spec, region, rejected)
        row.update(rows=delivery.rows, regions=region, status=received.status, reason=received.reason,
                   rows_quarantined=len(rejected),
                   first_date=dates.min() if len(dates) else pd.NaT, last_date=dates.max() if len(dates) else pd.NaT)
    _record(ctx, spec, row)
    ctx.log(f"{spec.name}: {name} ({len(data)} bytes, sha256 {sha[:12]}): {received.status}"
            + (f": {received.reason}" if received.reason else ""))
    return received


def _record(ctx: RunContext, spec: SourceSpec, row: dict) -> None:
    frame = pd.DataFrame([row])
    for column in ("name", "sha256", "regions", "status", "reason"):
        frame[column] = frame[column].astype("string")
    for column in ("first_date", "last_date"):
        frame[column] = pd.to_datetime(frame[column]).astype("datetime64[ms]")
    for column in ("bytes", "rows", "rows_quarantined"):
        frame[column] = frame[column].astype("int64")
    frame["received_at"] = pd.Series([pd.Timestamp(ctx.now).tz_convert("UTC")], dtype="datetime64[ms, UTC]")
    ctx.write(SOURCE_FILES, {"source": spec.name}, frame)


@dataclass
class VendorMonth:
    """What loading one month of a vendor did."""

    region: str
    month: str
    files: list[str] = field(default_factory=list)
    rows: int = 0  # the vendor's raw rows of the month after the load
    quarantined: int = 0
    skipped: list[str] = field(default_factory=list)  # files whose content changed since they were received
    golden: dict[str, int] = field(default_factory=dict)
    exceptions: int = 0


def covering(files: pd.DataFrame, region: str, month: str) -> pd.DataFrame:
    """The latest loaded content of each file name that covers the month, oldest delivery first."""
    first, last = (pd.Timestamp(d) for d in month_bounds(month))
    loaded = files[files["status"].isin(LOADED) & (files["regions"] == region)]
    loaded = loaded[(pd.to_datetime(loaded["first_date"]) <= last) & (pd.to_datetime(loaded["last_date"]) >= first)]
    latest = files[files["status"].isin(LOADED)].drop_duplicates("name", keep="last")
    return loaded.merge(latest[["name", "sha256"]], on=["name", "sha256"]).sort_values(["received_at", "name"])


def load_month(ctx: RunContext, spec: SourceSpec, region: str, month: str, read: Callable[[str], bytes],
               cache: dict | None = None) -> VendorMonth:
    """The vendor's raw rows of (`region`, `month`) from every file covering it, and the golden bars they
    re-derive, in one commit. Rows that break a rule are quarantined; the vendor's stored rows for their keys
    stay (absence of a valid row is not data), and so do the rows of a file that can no longer be read as it was
    received (replaced or removed from the drop since). `cache` (one per run) keeps each file's screened rows, so
    a file covering many months is read and parsed once."""
    report = VendorMonth(region, month)
    first, last = (pd.Timestamp(d) for d in month_bounds(month))
    cache = {} if cache is None else cache
    frames, rejected = [], []
    for item in covering(source_files(ctx.lake, spec.name), region, month).itertuples():
        if (item.name, item.sha256) not in cache:
            try:
                data = read(item.name)
            except FileNotFoundError:
                data = None
            if data is None or sha256_of(data) != item.sha256:  # the sensor receives a new content on its own
                report.skipped.append(item.name)
                continue
            cache[item.name, item.sha256] = _screened(ctx.lake, region, _read(spec, item.name, data))
        good, bad = cache[item.name, item.sha256]
        inside = pd.to_datetime(good["trade_date"]).between(first, last)
        frames.append(good[inside.to_numpy()].assign(file=item.name, received_at=item.received_at))
        dates = pd.to_datetime(bad["date"])
        rejected.append(bad[(dates.between(first, last) | dates.isna()).to_numpy()])
        report.files.append(item.name)
    if not report.files:
        return report
    bars = pd.concat(frames, ignore_index=True).drop_duplicates(["symbol", "trade_date"], keep="last")
    bad = pd.concat(rejected, ignore_index=True)
    report.quarantined = len(bad)
    if len(bad):
        _quarantine(ctx, spec, region, bad)
    part = _raw_part(ctx, spec, region, month, bars, bad, held_files=set(report.skipped))
    report.rows = part.table.num_rows
    golden = golden_part(ctx, region, month, {spec.name: part.table})
    report.golden, report.exceptions = golden.counts, len(golden.exceptions)
    load(ctx.lake, Staged(stage(ctx.lake, KLINES_DAILY_BY_SOURCE, [part], run_id=ctx.run_id, now=ctx.now).loads
                          + golden_stage(ctx, region, [golden]).loads))
    return report


def _raw_part(ctx: RunContext, spec: SourceSpec, region: str, month: str, bars: pd.DataFrame, bad: pd.DataFrame,
              *, held_files: set[str]) -> Part:
    values = {"region": region, "month": month, "source": spec.name}
    previous = ctx.lake.read_table(KLINES_DAILY_BY_SOURCE, **values)
    n = len(bars)
    frame = ctx.stamped(bars.assign(
        region=pd.array([region] * n, dtype="string"), turnover=np.nan,
        bar_ts=pd.Series(pd.NaT, index=bars.index, dtype="datetime64[ms, UTC]"),
        file=pd.array(bars["file"], dtype="string"),
        received_at=pd.to_datetime(bars["received_at"], utc=True).astype("datetime64[ms, UTC]")), spec.name)
    frame = frame[KLINES_DAILY_BY_SOURCE.columns]
    if previous is not None:
        stored = from_arrow(KLINES_DAILY_BY_SOURCE, previous)
        # what the vendor said before stays where nothing valid replaces it: a rejected row's key, and the rows of
        # a file that could not be read back as received
        keys = pd.MultiIndex.from_arrays([bad["code"].astype(str), pd.to_datetime(bad["date"])])
        held = pd.MultiIndex.from_arrays([stored["symbol"].astype(str), pd.to_datetime(stored["trade_date"])])
        fresh = pd.MultiIndex.from_arrays([frame["symbol"].astype(str), pd.to_datetime(frame["trade_date"])])
        keep = (held.isin(keys) | stored["file"].isin(list(held_files)).to_numpy(dtype=bool)) & ~held.isin(fresh)
        if keep.any():
            frame = pd.concat([frame, stored[keep]], ignore_index=True)
        frame, _ = carry_forward_lineage(frame, stored, KLINES_DAILY_BY_SOURCE)
    frame = frame.sort_values(["symbol", "trade_date"], ignore_index=True)
    validate(frame, KLINES_DAILY_BY_SOURCE)
    return Part(values, to_arrow(KLINES_DAILY_BY_SOURCE, frame), previous=previous)


def _quarantine(ctx: RunContext, spec: SourceSpec, region: str, bad: pd.DataFrame) -> None:
    n = len(bad)
    rows = pd.DataFrame({
        "dataset": pd.array([KLINES_DAILY_BY_SOURCE.name] * n, dtype="string"),
        "region": pd.array([region] * n, dtype="string"),
        "code": pd.array(bad["code"].astype(str), dtype="string"),
        "date": pd.to_datetime(bad["date"]).astype("datetime64[ms]"),
        "rule": pd.array(bad["rule"].astype(str), dtype="string"),
        "reason": pd.array(bad["reason"].astype(str), dtype="string"),
        "raw": pd.array([json.dumps(r, sort_keys=True, default=str) for r in bad["raw"]], dtype="string"),
    })
    ctx.write(QUARANTINE, {"region": region, "source": spec.name}, rows)

