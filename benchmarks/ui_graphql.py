"""What the Dagster UI sends to its webserver, reproduced so the benchmark launches work exactly as a user does.

The documents were read from the installed packages, not guessed: the schema in `dagster_graphql/schema/`
and the UI's own sources (the source maps shipped in `dagster_webserver/webapp`):

* a backfill from the asset page's "Materialize..." dialog (`LaunchAssetChoosePartitionsDialog.tsx`,
  `onLaunchAsBackfill`): for an asset whose job is the hidden `__ASSET_JOB`, `launchPartitionBackfill` with
  `assetSelection` and every selected key in `partitionNames` (not `partitionsByAssets`), `fromFailure: false`
  and the tag `dagster/from_ui: true` (`uiExecutionTags.tsx`);
* a single partition's run (`onLaunchAsSingleRun`): the partition's tags and run config from
  `ConfigPartitionForAssetJobQuery` (`ConfigFetch.tsx`), then a launch with `mode: default` and those tags.

`tests/benchmarks` validates every document here against the installed schema.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

FROM_UI_TAG = {"key": "dagster/from_ui", "value": "true"}
BACKFILL_DONE = frozenset({"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"})
RUN_DONE = frozenset({"SUCCESS", "FAILURE", "CANCELED"})
REQUIRED_DAEMONS = ("BACKFILL", "QUEUED_RUN_COORDINATOR")  # what a backfill and a queued run need

READY = """
query BenchReady {
  version
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on RepositoryLocation { name repositories { name jobs { name } } }
          ... on PythonError { message }
        }
      }
    }
    ... on PythonError { message }
  }
  instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } }
}
"""

# LAUNCH_PARTITION_BACKFILL_MUTATION (ui-core/src/instance/backfill/BackfillUtils.tsx), the error branches kept.
LAUNCH_BACKFILL = """
mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PartitionSetNotFoundError { message }
    ... on PartitionKeysNotFoundError { message }
    ... on InvalidStepError { invalidStepKey }
    ... on InvalidOutputError { stepKey invalidOutputName }
    ... on UnauthorizedError { message }
    ... on PipelineNotFoundError { message }
    ... on RunConflict { message }
    ... on ConflictingExecutionParamsError { message }
    ... on PresetNotFoundError { message }
    ... on RunConfigValidationInvalid { pipelineName errors { message path reason } }
    ... on PythonError { message stack }
  }
}
"""

BACKFILL_STATUS = """
query BenchBackfill($backfillId: String!) {
  partitionBackfillOrError(backfillId: $backfillId) {
    __typename
    ... on PartitionBackfill {
      id
      status
      numPartitions
      timestamp
      endTimestamp
      error { message }
      runs { id status creationTime startTime endTime }
    }
    ... on BackfillNotFoundError { message }
    ... on PythonError { message }
  }
}
"""

# CONFIG_PARTITION_FOR_ASSET_JOB_QUERY (ui-core/src/launchpad/ConfigFetch.tsx)
PARTITION_TAGS_AND_CONFIG = """
query ConfigPartitionForAssetJobQuery(
  $repositoryName: String!
  $repositoryLocationName: String!
  $jobName: String!
  $partitionName: String!
  $assetKeys: [AssetKeyInput!]!
) {
  pipelineOrError(
    params: {pipelineName: $jobName, repositoryName: $repositoryName, repositoryLocationName: $repositoryLocationName}
  ) {
    __typename
    ... on Pipeline {
      id
      partition(partitionName: $partitionName, selectedAssetKeys: $assetKeys) {
        name
        runConfigOrError { ... on PartitionRunConfig { yaml } ... on PythonError { message } }
        tagsOrError { ... on PartitionTags { results { key value } } ... on PythonError { message } }
      }
    }
    ... on PipelineNotFoundError { message }
    ... on PythonError { message }
  }
}
"""

LAUNCH_RUN = """
mutation BenchLaunchRun($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { id runId status } }
    ... on InvalidStepError { invalidStepKey }
    ... on InvalidOutputError { stepKey invalidOutputName }
    ... on RunConfigValidationInvalid { pipelineName errors { message } }
    ... on Error { message }
    ... on PythonError { stack }
  }
}
"""

RUN_STATUS = """
query BenchRun($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { id status creationTime startTime endTime }
    ... on RunNotFoundError { message }
    ... on PythonError { message }
  }
}
"""

# What the asset page's partition bar counts (`AssetPartitions.tsx` reads the same `partitionStats`).
PARTITION_STATS = """
query BenchPartitionStats($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    __typename
    ... on AssetNode {
      partitionStats { numMaterialized numMaterializing numFailed numPartitions }
    }
    ... on AssetNotFoundError { message }
  }
}
"""

DOCUMENTS = {"READY": READY, "LAUNCH_BACKFILL": LAUNCH_BACKFILL, "BACKFILL_STATUS": BACKFILL_STATUS,
             "PARTITION_TAGS_AND_CONFIG": PARTITION_TAGS_AND_CONFIG, "LAUNCH_RUN": LAUNCH_RUN,
             "RUN_STATUS": RUN_STATUS, "PARTITION_STATS": PARTITION_STATS}


class GraphQLError(RuntimeError):
    """The endpoint answered with errors, or not at all."""


class NotLaunchableError(GraphQLError):
    """The workspace loaded but cannot serve the launch (a load error, no such job): waiting will not help."""


class Client:
    """POSTs a document to `url` (http://host:port/graphql) and returns its `data`."""

    def __init__(self, url: str, timeout_s: float = 60.0) -> None:
        self.url, self.timeout_s = url, timeout_s

    def __call__(self, document: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        body = json.dumps({"query": document, "variables": dict(variables or {})}).encode()
        request = urllib.request.Request(self.url, data=body, headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                payload = json.load(response)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise GraphQLError(f"{self.url}: {exc}") from exc
        if payload.get("errors"):
            raise GraphQLError(f"{self.url}: {json.dumps(payload['errors'])[:2000]}")
        return payload["data"]


def tags_with_ui(tags: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    """The UI's `tagsWithUIExecutionTags`: the given tags, then `dagster/from_ui: true` (replacing any)."""
    kept = [{"key": t["key"], "value": t["value"]} for t in tags if t["key"] != FROM_UI_TAG["key"]]
    return [*kept, dict(FROM_UI_TAG)]


def ui_backfill_params(asset_path: Sequence[str], partition_keys: Sequence[str],
                       *more_assets: Sequence[str]) -> dict[str, Any]:
    """`backfillParams` of the asset page's backfill (a hidden-asset-job target): keys listed one by one. Assets
    sharing one partitions definition, selected together in the asset graph, are `more_assets`."""
    return {"tags": tags_with_ui([]), "assetSelection": [{"path": list(p)} for p in (asset_path, *more_assets)],
            "partitionNames": list(partition_keys), "fromFailure": False}


def partition_stats(client: Client, asset: str) -> dict[str, int]:
    """The counts the asset page's partition bar shows: materialized, in progress, failed, of all."""
    node = client(PARTITION_STATS, {"assetKey": {"path": [asset]}})["assetNodeOrError"]
    if node["__typename"] != "AssetNode" or not node.get("partitionStats"):
        raise GraphQLError(f"{asset}: {launch_error(node)}")
    return node["partitionStats"]


def ui_run_params(*, location: str, repository: str, job: str, tags: Sequence[Mapping[str, str]],
                  run_config_yaml: str | None) -> dict[str, Any]:
    """`executionParams` of a single-partition launch (`executionParamsForAssetJob` + the UI tag)."""
    return {"mode": "default", "executionMetadata": {"tags": tags_with_ui(tags)},
            "runConfigData": run_config_yaml or "{}",
            "selector": {"repositoryLocationName": location, "repositoryName": repository, "jobName": job}}


def readiness(data: Mapping[str, Any], job: str) -> tuple[str, str] | str:
    """(location, repository) holding `job` once the workspace is loaded and the daemons a launch needs are
    healthy; otherwise a sentence saying what is still missing. A load error or a missing job raise
    NotLaunchableError: waiting would not help."""
    workspace = data.get("workspaceOrError") or {}
    if workspace.get("__typename") != "Workspace":
        raise NotLaunchableError(f"workspace failed to load: {workspace.get('message')}")
    found = None
    for entry in workspace.get("locationEntries") or []:
        location = entry.get("locationOrLoadError") or {}
        if location.get("__typename") == "PythonError":
            raise NotLaunchableError(f"code location {entry['name']} failed to load: {location.get('message')}")
        if entry.get("loadStatus") != "LOADED" or location.get("__typename") != "RepositoryLocation":
            return f"code location {entry.get('name')} is {entry.get('loadStatus')}"
        for repo in location.get("repositories") or []:
            if any(j["name"] == job for j in repo.get("jobs") or []):
                found = (location["name"], repo["name"])
    if found is None:
        raise NotLaunchableError(f"no code location defines job {job}")
    statuses = {d["daemonType"]: d for d in data["instance"]["daemonHealth"]["allDaemonStatuses"]}
    missing = [d for d in REQUIRED_DAEMONS if not statuses.get(d, {}).get("healthy")]
    return f"daemons not healthy yet: {', '.join(missing)}" if missing else found


def wait_ready(client: Client, job: str, timeout_s: float, alive=lambda: True) -> tuple[str, str]:
    """Poll READY until `readiness` is satisfied; `alive()` False (the server died) or the timeout raise."""
    deadline, why = time.monotonic() + timeout_s, "no answer yet"
    while time.monotonic() < deadline:
        if not alive():
            raise GraphQLError(f"the server exited while waiting ({why})")
        try:
            state = readiness(client(READY), job)
        except NotLaunchableError:
            raise
        except GraphQLError as exc:  # not answering yet
            state = str(exc)
        if isinstance(state, tuple):
            return state
        why = state
        time.sleep(0.25)
    raise GraphQLError(f"not ready after {timeout_s:.0f}s: {why}")


def launch_error(result: Mapping[str, Any]) -> str:
    """A launch result that is not a success, as one line."""
    details = {k: v for k, v in result.items() if k != "__typename"}
    return f"{result.get('__typename')}: {json.dumps(details)[:2000]}"
