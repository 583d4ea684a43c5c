"""A small lake for the tenant products' tests, written through the library's own write path: bars of two regions,
their split-adjusted bars, FX closes and the security master, each row given as a dict (lineage filled in)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pyarrow as pa

from ticklake.dictionary import DATASETS
from ticklake.storage import Catalog, Lakehouse

INGESTED = dt.datetime(2024, 6, 29, 1, 0, tzinfo=dt.UTC)
LINEAGE = {"source": "itick", "ingested_at": INGESTED, "run_id": "test-run"}


def open_lake(home: Path) -> Lakehouse:
    return Lakehouse(Catalog.from_settings(home), home / "state")


def table(name: str, records: Sequence[Mapping]) -> pa.Table:
    """The records in the dataset's Arrow schema (lineage defaulted; every other missing field null)."""
    dataset = DATASETS[name]
    return pa.table({f.name: pa.array([r.get(f.name, LINEAGE.get(f.name)) for r in records], f.arrow_type)
                     for f in dataset.fields}).cast(dataset.arrow_schema)


def put(lake: Lakehouse, name: str, records: Iterable[Mapping]) -> None:
    """Replace the lake partitions the records fall in (region, month and source) with exactly these records."""
    dataset = DATASETS[name]
    groups: dict[tuple, list[Mapping]] = {}
    for r in records:
        values = {k.name: k.value(r[k.column]) for k in dataset.lake_keys} | {"source": r.get("source", "itick")}
        groups.setdefault(tuple(sorted(values.items())), []).append(r)
    for values, rows in groups.items():
        lake.replace_partitions(dataset, table(name, rows), [dict(values)])


def sessions(first: dt.date, last: dt.date) -> list[dt.date]:
    """Weekdays from first to last."""
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)
            if (first + dt.timedelta(days=i)).weekday() < 5]


def bars(region: str, symbols: Sequence[str], days: Sequence[dt.date], *, scale: float = 1.0) -> list[dict]:
    """klines_daily rows: a close that moves a little every session, per symbol."""
    out = []
    for i, symbol in enumerate(symbols):
        for j, day in enumerate(days):
            close = round((10.0 + i + j * 0.1) * scale, 4)
            out.append({"region": region, "symbol": symbol, "trade_date": day, "open": close, "high": close * 1.01,
                        "low": close * 0.99, "close": close, "volume": 1000.0 + j, "turnover": close * 1000,
                        "rule": "single_source", "sources": "itick"})
    return out


def adjusted(rows: Iterable[Mapping], factor: float) -> list[dict]:
    """klines_daily_adjusted rows from bars: prices x factor, volume / factor."""
    out = []
    for r in rows:
        out.append({**{k: r[k] for k in ("region", "symbol", "trade_date", "turnover")},
                    **{k: r[k] * factor for k in ("open", "high", "low", "close")},
                    "volume": r["volume"] / factor, "adjustment_factor": factor})
    return out
