"""One sensor per vendor file drop (`vendor_drop_<vendor>`): see each new file, record it in `source_files`, then
materialize the vendor's raw asset for exactly the partitions the file covers.

- Cheap when nothing arrived: the cursor holds each file's size and modification time, so only a new or changed
  file is read and hashed.
- The same content is never loaded twice: its sha256 is the run key (with the partition), and `source_files`
  already holds it, so a file dropped again is a skip. The same name with new content is a correction: recorded
  as `restated`, and its months are loaded again (the golden bars it changes go through history and ledger).
- A file refused whole (bad columns, a corrupt gzip, a name that contradicts its dates) is recorded with its
  reason and starts no run; nothing stored changes.
"""

from __future__ import annotations

import json

import dagster as dg

from assets.partitions import key
from assets.vendor_klines import asset_name
from resources.clock import ClockResource
from resources.storage import StorageResource
from ticklake.datasets.context import RunContext
from ticklake.datasets.vendor_klines import LOADED, receive
from ticklake.sources.declared import SourceSpec
from ticklake.sources.files.drop import list_drop, read_drop

FILE_TAG = "ticklake/vendor_file"


def vendor_job(spec: SourceSpec, asset: dg.AssetsDefinition) -> dg.UnresolvedAssetJobDefinition:
    """The job the sensor (and a person) runs: the vendor's raw asset, so its runs carry a name of their own."""
    return dg.define_asset_job(f"{asset_name(spec)}_load", selection=[asset],
                               description=f"Load {spec.name}'s delivered files into the raw layer and the golden "
                                           "copy for the selected months and regions")


def vendor_drop_sensor(spec: SourceSpec, job: dg.UnresolvedAssetJobDefinition) -> dg.SensorDefinition:
    @dg.sensor(
        name=f"vendor_drop_{spec.name.replace('-', '_')}", job=job, minimum_interval_seconds=spec.poll_seconds,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=f"New files in {spec.name}'s drop ({spec.drop}): each recorded in source_files (accepted, "
                    "restated, duplicate or refused with its reason), then the months it covers loaded",
    )
    def vendor_drop(context: dg.SensorEvaluationContext, storage: StorageResource, clock: ClockResource):
        seen = json.loads(context.cursor) if context.cursor else {}
        listed = list_drop(spec.drop)
        changed = [f for f in listed if seen.get(f.name) != [f.size, f.mtime.isoformat()]]
        if not changed:
            return dg.SensorResult(skip_reason=dg.SkipReason(f"no new file in {spec.drop} ({len(listed)} seen)"))
        now = clock.instant()
        ctx = RunContext(storage.lakehouse(), f"{context.sensor_name}@{now:%Y-%m-%dT%H:%M:%SZ}", now,
                         log=context.log.info)
        requests, outcomes = [], []
        for item in changed:
            received = receive(ctx, spec, item.name, read_drop(spec.drop, item.name))
            outcomes.append(f"{item.name}: {received.status}")
            if received.status in LOADED:
                requests += [dg.RunRequest(run_key=f"{spec.name}:{received.sha256[:16]}:{month}|{region}",
                                           partition_key=key(month, region),
                                           tags={FILE_TAG: f"{item.name} ({received.status})"})
                             for region, month in received.partitions]
            seen[item.name] = [item.size, item.mtime.isoformat()]
        cursor = json.dumps(seen, sort_keys=True)
        if not requests:
            return dg.SensorResult(skip_reason=dg.SkipReason("; ".join(outcomes)), cursor=cursor)
        return dg.SensorResult(run_requests=requests, cursor=cursor)

    return vendor_drop
