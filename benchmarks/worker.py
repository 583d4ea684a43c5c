"""One scenario run inside a fresh interpreter (started by benchmarks.runner); writes one JSON record."""

from __future__ import annotations

import cProfile
import json
import resource
import sys
from pathlib import Path

from benchmarks.procs import install_termination_handlers


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (ru_maxrss is KiB on Linux)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def main(argv: list[str]) -> int:
    payload = json.loads(argv[0])
    install_termination_handlers()  # SIGTERM from the runner (timeout, Ctrl-C) stops this run's children first
    from benchmarks.scenarios import RUNS  # imported here: the RSS before work includes the pipeline's imports

    func = RUNS[payload["kind"]]
    profile = payload.get("profile")
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    record = func(payload["params"])
    if profiler:
        profiler.disable()
        profiler.dump_stats(profile)
    record["peak_rss_mb"] = peak_rss_mb()
    Path(payload["out"]).write_text(json.dumps(record, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
