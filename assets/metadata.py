"""Materialization metadata derived from the data dictionary (never a second field list)."""

from __future__ import annotations

import dagster as dg
import pandas as pd

from ticklake.dictionary import Dataset
from ticklake.sources.contract import FetchReport
from ticklake.sources.itick.client import CallRecord, latency_summary
from ticklake.storage import Lakehouse


def table_schema(dataset: Dataset) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(f.name, f.dagster_type, description=f.doc,
                           constraints=dg.TableColumnConstraints(nullable=f.nullable, unique=False))
            for f in dataset.fields
        ],
        constraints=dg.TableConstraints(other=[f"unique ({', '.join(dataset.key)})"]),
    )


def dataset_asset(dataset: Dataset) -> dict:
    """What every dataset's asset declares, all from the dictionary: its group (the domain), kinds, description,
    column schema and lake table. `@dg.asset(partitions_def=..., **dataset_asset(DATASET))`."""
    return {
        "group_name": dataset.domain,
        "kinds": {"parquet", "duckdb"} if dataset.in_lake else {"duckdb"},
        "description": dataset.description,
        "metadata": {"dagster/column_schema": table_schema(dataset), "dagster/table_name": f"lake.{dataset.name}"},
    }


def fetch_metadata(report: FetchReport, prefix: str = "") -> dict[str, dg.MetadataValue]:
    """What fetching cost; `prefix="run_"` where the figures cover a whole multi-partition run."""
    return {
        f"{prefix}api_calls": dg.MetadataValue.int(report.calls),
        f"{prefix}api_retries": dg.MetadataValue.int(report.retries),
        f"{prefix}api_rate_limited": dg.MetadataValue.int(report.rate_limited),
        f"{prefix}api_errors": dg.MetadataValue.int(report.errors),
        f"{prefix}api_quota_wait_s": dg.MetadataValue.float(round(float(report.waited_s), 3)),
    }


def latency_metadata(records: list[CallRecord], prefix: str = "") -> dict[str, dg.MetadataValue]:
    """Request latency per endpoint (p50 / p95 / max ms, from the client's per-call records; the audit file has every
    call): a table, and the p50 and p95 of each endpoint as numbers the UI can plot across runs."""
    summary = latency_summary(records)
    out: dict[str, dg.MetadataValue] = {f"{prefix}api_latency_ms": dg.MetadataValue.md(
        "\n".join(["| endpoint | calls | p50 ms | p95 ms | max ms |", "|---|---|---|---|---|",
                   *(f"| {e} | {v['calls']} | {v['p50_ms']} | {v['p95_ms']} | {v['max_ms']} |"
                     for e, v in summary.items())]) if summary else "_no calls_")}
    for endpoint, v in summary.items():
        name = endpoint.strip("/").replace("/", "_")
        out[f"{prefix}api_{name}_p50_ms"] = dg.MetadataValue.float(v["p50_ms"])
        out[f"{prefix}api_{name}_p95_ms"] = dg.MetadataValue.float(v["p95_ms"])
    return out


def preview(frame: pd.DataFrame | None, rows: int = 10) -> dg.MetadataValue:
    if frame is None or frame.empty:
        return dg.MetadataValue.md("_no rows_")
    return dg.MetadataValue.md(frame.head(rows).astype(str).to_markdown(index=False))


def snapshot_metadata(lake: Lakehouse) -> dict[str, dg.MetadataValue]:
    """Which lake snapshot holds what this step committed: `FROM klines_daily AT (VERSION => n)` reads the lake as
    it was then, until `lake_maintenance` expires snapshots past TICKLAKE_SNAPSHOT_RETENTION_DAYS."""
    return {
        "lake_snapshot_id": dg.MetadataValue.int(lake.snapshot_id()),
        "lake_catalog": dg.MetadataValue.text(lake.catalog.describe()),
    }
