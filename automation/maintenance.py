"""The `lake_maintenance` job: compaction, snapshot expiry and file cleanup of the lake (ticklake.storage.maintenance).

An op job, not an asset: it changes how the lake's rows are laid out in files, never the rows, so it materializes
nothing and invalidates no asset. What it did, and the files and bytes before and after, are the op's metadata.
"""

import dagster as dg

from resources.storage import StorageResource
from ticklake import settings
from ticklake.storage.maintenance import LakeFiles, MaintenanceReport, maintain


@dg.op(out=dg.Out(dg.Nothing), description="Flush inlined rows, rewrite files with many deletes and merge small "
       "files (each table under its commit lock), expire snapshots past TICKLAKE_SNAPSHOT_RETENTION_DAYS, delete "
       "old and orphaned files")
def maintain_lake(context: dg.OpExecutionContext, storage: StorageResource) -> None:
    retention = settings.snapshot_retention_days()
    report = maintain(storage.lakehouse(), retention_days=retention)
    context.log.info(
        f"lake maintenance: live files {report.before.live_files} -> {report.after.live_files}, all files "
        f"{report.before.tracked_files} -> {report.after.tracked_files}, snapshots {report.before.snapshots} -> "
        f"{report.after.snapshots} (retention {retention} days), {report.deleted_old_files} old and "
        f"{report.deleted_orphaned_files} orphaned files deleted in {report.seconds:.1f}s")
    context.add_output_metadata(report_metadata(report))


def report_metadata(report: MaintenanceReport) -> dict[str, dg.MetadataValue]:
    metadata: dict[str, dg.MetadataValue] = {
        "retention_days": dg.MetadataValue.int(report.retention_days),
        "expired_before": dg.MetadataValue.timestamp(report.cutoff),
        "snapshots_expired": dg.MetadataValue.int(len(report.expired_snapshots)),
        "files_merged_away": dg.MetadataValue.int(sum(report.merged_files.values())),
        "files_rewritten": dg.MetadataValue.int(sum(report.rewritten_files.values())),
        "inlined_rows_flushed": dg.MetadataValue.int(sum(report.flushed_rows.values())),
        "old_files_deleted": dg.MetadataValue.int(report.deleted_old_files),
        "orphaned_files_deleted": dg.MetadataValue.int(report.deleted_orphaned_files),
        "seconds": dg.MetadataValue.float(report.seconds),
    }
    for when, files in (("before", report.before), ("after", report.after)):
        metadata |= _files_metadata(files, when)
    changed = sorted(t for t in report.merged_files
                     if report.merged_files[t] or report.rewritten_files.get(t) or report.flushed_rows.get(t))
    if changed:
        lines = ["| table | files merged away | files rewritten | inlined rows flushed |", "|---|---|---|---|"]
        lines += [f"| {t} | {report.merged_files[t]} | {report.rewritten_files.get(t, 0)} | "
                  f"{report.flushed_rows.get(t, 0)} |" for t in changed]
        metadata["tables"] = dg.MetadataValue.md("\n".join(lines))
    return metadata


def _files_metadata(files: LakeFiles, when: str) -> dict[str, dg.MetadataValue]:
    out = {
        f"live_files_{when}": dg.MetadataValue.int(files.live_files + files.delete_files),
        f"live_bytes_{when}": dg.MetadataValue.int(files.live_bytes + files.delete_bytes),
        f"time_travel_files_{when}": dg.MetadataValue.int(files.retained_files),
        f"time_travel_bytes_{when}": dg.MetadataValue.int(files.retained_bytes),
        f"snapshots_{when}": dg.MetadataValue.int(files.snapshots),
    }
    if files.disk_files is not None and files.disk_bytes is not None:
        out[f"disk_files_{when}"] = dg.MetadataValue.int(files.disk_files)
        out[f"disk_bytes_{when}"] = dg.MetadataValue.int(files.disk_bytes)
    return out


@dg.job(name="lake_maintenance", tags={"ticklake/kind": "maintenance"},
        description="Weekly lake upkeep: merge small files, rewrite files with many deletes, expire snapshots older "
                    "than TICKLAKE_SNAPSHOT_RETENTION_DAYS, delete old and orphaned files; reports files and bytes "
                    "before and after.")
def lake_maintenance():
    maintain_lake()
