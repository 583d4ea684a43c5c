"""`python -m benchmarks`: run the scenarios (each run in a fresh interpreter), print a table, write JSON."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks import config, report
from benchmarks.config import SCALES, SEED, Scale
from benchmarks.runner import ROOT, run_in_subprocess
from benchmarks.scenarios.common import SEPARATE, TRANSPORTS
from benchmarks.stats import median_record, quota_table, ratio

SCENARIOS = ("backfill", "nightly", "queries", "baseline", "lakehouse", "golden", "userpath", "deliveries", "api")
# the user path starts dagster dev per run (minutes), the API a server and a load generator: only on request
DEFAULT_SCENARIOS = tuple(s for s in SCENARIOS if s not in ("userpath", "api"))
DEFAULT_JSON = ROOT / "benchmarks" / "results" / "latest.json"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--scale", choices=sorted(SCALES), default="small",
                   help="tiny (smoke test), small (default), large (5,000 symbols x 10 years; the lakehouse at "
                   "4,400 x 2,520), xlarge (the lakehouse queries on 5,000 symbols x 20 years: --only lakehouse)")
    p.add_argument("--runs", type=int, default=3, help="runs per measurement; medians are reported (default 3)")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"result file (default {DEFAULT_JSON})")
    p.add_argument("--only", default=",".join(DEFAULT_SCENARIOS),
                   help=f"comma-separated subset of {','.join(SCENARIOS)} (default {','.join(DEFAULT_SCENARIOS)})")
    p.add_argument("--symbols", type=int, help="override the scale's backfill symbols")
    p.add_argument("--sessions", type=int, help="override the scale's backfill sessions (trading days)")
    p.add_argument("--userpath-symbols", type=int, help="override the scale's user-path symbols")
    p.add_argument("--userpath-sessions", type=int, help="override the scale's user-path sessions")
    p.add_argument("--profile", type=Path, help="write a cProfile .pstats per run into this folder")
    p.add_argument("--keep", action="store_true", help="keep the work folder (warehouse used by the queries)")
    args = p.parse_args(argv)
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(args.only) - set(SCENARIOS)
    if unknown:
        p.error(f"unknown scenario(s) {sorted(unknown)}; choose from {SCENARIOS}")
    if args.runs < 1:
        p.error("--runs must be >= 1")
    return args


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Suite:
    def __init__(self, scale: Scale, runs: int, workdir: Path, profile: Path | None, userpath: bool = False):
        self.scale, self.runs, self.workdir, self.profile = scale, runs, workdir, profile
        self.userpath_selected = userpath
        self.warehouse_home: Path | None = None
        self.backfill_inprocess: list[dict] = []
        self._seed_userpath: dict | None = None

    def _run(self, kind: str, params: dict[str, Any], label: str, runs: int | None = None,
             timeout_s: float = 3600.0) -> list[dict]:
        out = []
        for i in range(runs or self.runs):
            profile = None
            if self.profile:
                self.profile.mkdir(parents=True, exist_ok=True)
                profile = self.profile / f"{label.replace(' ', '_').replace('/', '-')}-{i + 1}.pstats"
            record = run_in_subprocess(kind, params, profile=profile, timeout_s=timeout_s)
            out.append(record)
            log(f"{label} run {i + 1}: " + report.brief(kind, record))
        return out

    # -- scenarios ---------------------------------------------------------------------------------------
    def backfill(self, keep_warehouse: bool) -> dict:
        s = self.scale
        base = {"symbols": s.backfill_symbols, "sessions": s.backfill_sessions, "seed": SEED}
        out: dict[str, Any] = {}
        for transport in (*TRANSPORTS, SEPARATE):
            runs = []
            for i in range(self.runs):
                params = {**base, "transport": transport}
                if keep_warehouse and transport == "inprocess" and i == 0:
                    self.warehouse_home = self.workdir / "backfill-home"
                    params["keep_home"] = str(self.warehouse_home)
                runs += self._run("backfill", params, f"backfill {transport}", runs=1)
            med = median_record(runs)
            med["quota"] = quota_table(med["calls"], config.PLANS)
            out[transport] = {"median": med, "runs": runs}
        self.backfill_inprocess = out["inprocess"]["runs"]
        out["memory"] = self.memory_series()
        return out

    def memory_series(self) -> dict:
        s = self.scale
        points = []
        for sessions in s.memory_sessions:
            if (s.memory_symbols, sessions) == (s.backfill_symbols, s.backfill_sessions) and self.backfill_inprocess:
                runs = self.backfill_inprocess
            else:
                runs = self._run("backfill", {"transport": "inprocess", "symbols": s.memory_symbols,
                                              "sessions": sessions, "seed": SEED},
                                 f"memory {s.memory_symbols}x{sessions}", runs=1)
            med = median_record(runs)
            points.append({"symbols": med["symbols"], "sessions": sessions,
                           "years": round(sessions / config.SESSIONS_PER_YEAR, 2), "bars": med["bars"],
                           "peak_rss_mb": med["peak_rss_mb"], "rss_before_mb": med["rss_before_mb"],
                           "wall_s": med["wall_s"], "bars_per_s": med["bars_per_s"]})
        growth = ratio(points[-1]["peak_rss_mb"], points[-2]["peak_rss_mb"]) if len(points) > 1 else None
        return {"points": points, "growth_last_vs_previous": None if growth is None else round(growth, 3)}

    def nightly(self) -> dict:
        s = self.scale
        base = {"symbols": s.nightly_symbols, "seed": SEED}
        out: dict[str, Any] = {}
        variants = [(t, {**base, "transport": t}) for t in TRANSPORTS]
        # The configured plan's quota, enforced by the simulator with the window compressed 60x (1 s for a
        # minute), so "zero 429s at the plan" is tested for real without waiting minutes.
        rate = config.PLANS[config.CONFIGURED_PLAN]
        quota = {"plan": config.CONFIGURED_PLAN, "calls_per_window": rate, "window_seconds": 1.0,
                 "time_compression": 60}
        variants.append((f"loopback+quota:{config.CONFIGURED_PLAN}", {**base, "transport": "loopback",
                                                                      "quota": quota}))
        for name, params in variants:
            runs = self._run("nightly", params, f"nightly {name}")
            med = median_record(runs)
            med["quota_plans"] = quota_table(med["calls"], config.PLANS, window_minutes=60)
            out[name] = {"median": med, "runs": runs}
        return out

    def queries(self) -> dict:
        s = self.scale
        if self.warehouse_home is None:  # --only queries: build the backfill-scale warehouse first
            self.warehouse_home = self.workdir / "backfill-home"
            self._run("backfill", {"transport": "inprocess", "symbols": s.backfill_symbols,
                                   "sessions": s.backfill_sessions, "seed": SEED,
                                   "keep_home": str(self.warehouse_home)}, "queries: build warehouse", runs=1)
        params = {"home": str(self.warehouse_home), "region": config.BACKFILL_REGION,
                  "warmup": s.query_warmup, "iterations": s.query_iterations, "fetch": "df"}
        runs = self._run("queries", params, "queries")
        names = list(runs[0]["queries"])
        median: dict[str, Any] = {"warehouse_rows": runs[0]["warehouse_rows"], "fetch": runs[0]["fetch"],
                                  "queries": {}}
        for name in names:
            median["queries"][name] = median_record([r["queries"][name] for r in runs])
        return {"median": median, "runs": runs}

    def baseline(self) -> dict:
        s = self.scale
        cap = min(s.baseline_symbols, s.backfill_symbols)
        seed_runs = self._run("baseline", {"symbols": cap, "universe": s.backfill_symbols,
                                           "sessions": s.backfill_sessions, "seed": SEED},
                              f"baseline seed-article {cap}x{s.backfill_sessions}")
        peer_runs = self._run("backfill", {"transport": "loopback", "symbols": s.backfill_symbols,
                                           "limit_codes": cap, "sessions": s.backfill_sessions, "seed": SEED},
                              f"baseline ticklake {cap}x{s.backfill_sessions}")
        seed, peer = median_record(seed_runs), median_record(peer_runs)
        plan_rate = config.PLANS[config.CONFIGURED_PLAN]
        at_plan = {
            name: round(max(rec["wall_s"], rec["calls"] / plan_rate * 60), 3) for name, rec in
            (("seed_article", seed), ("ticklake", peer))
        }
        per_symbol_calls = (seed["calls"] - 1) / max(seed["symbols"], 1)
        full_calls = round(per_symbol_calls * s.backfill_symbols) + 1
        comparison = {
            "speedup_bars_per_s": round(ratio(peer["bars_per_s"], seed["bars_per_s"]) or 0, 2),
            "speedup_wall": round(ratio(seed["wall_s"], peer["wall_s"]) or 0, 2),
            "call_ratio": round(ratio(seed["calls"], peer["calls"]) or 0, 2),
            "same_bars": seed["bars"] == peer["bars"],
            f"wall_at_{config.CONFIGURED_PLAN}_s": at_plan,
            f"speedup_at_{config.CONFIGURED_PLAN}": round(ratio(at_plan["seed_article"], at_plan["ticklake"]) or 0,
                                                         2),
            "full_universe_calls_seed_article": full_calls,
            "full_universe_quota_seed_article": quota_table(full_calls, config.PLANS),
        }
        out = {"seed_article": {"median": seed, "runs": seed_runs}, "ticklake": {"median": peer, "runs": peer_runs},
               "comparison": comparison}
        if self.userpath_selected:  # the same symbols x sessions as the user path, for its ratio
            out["seed_article_userpath_size"] = self.seed_at_userpath_size()
        return out

    def golden(self) -> dict:
        """Issue 18: the golden copy's arbitration, bars per second side by side as sessions and sources grow
        (benchmarks/golden.py; each case in a fresh interpreter)."""
        from benchmarks import golden

        s = self.scale
        return golden.run(s.golden_symbols, list(s.golden_sessions), [1, 2, 3], self.runs, say=log)

    def deliveries(self) -> dict:
        """Issue 19: delivery throughput in rows/s per format side by side, and re-deliveries with nothing changed and
        with one month restated (benchmarks/deliveries.py; one fresh interpreter builds the lake and delivers)."""
        from benchmarks import deliveries

        s = self.scale
        return deliveries.run(s.deliveries_symbols, s.deliveries_sessions, self.runs, say=log)
    def api(self) -> dict:
        """Issue 19: the read API under a loopback load at fixed rates, the hot-data cache off and in Redis, side by
        side (benchmarks/api.py: the server and the load generator each in their own processes)."""
        from benchmarks import api

        s = self.scale
        return api.run(s.api_symbols, s.api_sessions, [float(r) for r in s.api_rates], s.api_duration_s, workers=2,
                       variants=["cache_off", "redis_cache"])

    def lakehouse(self) -> dict:
        """Issue 16: the lake versus a native DuckDB table (and on S3 with a PostgreSQL catalog), the nightly's
        commit cost versus lake size, and a symbol's history after many nights. One run each (every run builds
        its lakes; the query figures are percentiles over many iterations inside it)."""
        s = self.scale
        q = {"symbols": s.lake_symbols, "sessions": s.lake_sessions, "seed": SEED, "warmup": s.query_warmup,
             "iterations": s.query_iterations}
        size = f"{s.lake_symbols}x{s.lake_sessions}"
        out: dict[str, Any] = {"queries": {}}
        backends = ("local", "s3-postgres") if s.lake_s3 else ("local",)
        for name in backends:
            [record] = self._run("lakehouse_queries", {**q, "backend": name}, f"lakehouse queries {name} {size}",
                                 runs=1, timeout_s=4 * 3600)
            out["queries"][name] = record
        if s.name.startswith("xlarge"):
            return out
        [out["nightly"]] = self._run("lakehouse_nightly", {"sizes": [list(x) for x in s.lake_nightly_sizes],
                                                           "seed": SEED, "nights": 3},
                                     "lakehouse nightly vs lake size", runs=1, timeout_s=4 * 3600)
        symbols, sessions, nights = s.lake_nights
        [out["nights"]] = self._run("lakehouse_nights", {"symbols": symbols, "sessions": sessions, "nights": nights,
                                                         "seed": SEED, "warmup": s.query_warmup,
                                                         "iterations": s.query_iterations},
                                    f"lakehouse {nights} nights", runs=1, timeout_s=4 * 3600)
        return out

    def seed_at_userpath_size(self) -> dict:
        """The seed article's script on exactly the user path's symbols x sessions, against the same standalone
        simulator (own process, same seed and universe): the denominator of the user path's ratio."""
        if self._seed_userpath is None:
            s = self.scale
            runs = self._run("baseline", {"symbols": s.userpath_symbols, "universe": s.userpath_symbols,
                                          "sessions": s.userpath_sessions, "seed": SEED, "transport": SEPARATE},
                             f"baseline seed-article {s.userpath_symbols}x{s.userpath_sessions} (user-path size)")
            self._seed_userpath = {"median": median_record(runs), "runs": runs}
        return self._seed_userpath

    def userpath(self) -> dict:
        s = self.scale
        base = {"symbols": s.userpath_symbols, "sessions": s.userpath_sessions, "seed": SEED,
                "region": config.BACKFILL_REGION, "timeout_s": 1800}
        size = f"{s.userpath_symbols}x{s.userpath_sessions}"
        seed = self.seed_at_userpath_size()
        cli_runs = self._run("userpath_cli", base, f"userpath cli {size}", timeout_s=2 * 1800 + 600)
        dev_runs = self._run("userpath_dev", base, f"userpath dagster dev {size}", timeout_s=2 * 1800 + 1200)
        out: dict[str, Any] = {
            "seed_article": seed,
            "cli": {"median": median_record(cli_runs), "runs": cli_runs},
            "dev": {"median": {"dev_ready_s": median_record(dev_runs)["dev_ready_s"],
                               "securities_s": median_record(dev_runs)["securities_s"],
                               "backfill": median_record([r["backfill"] for r in dev_runs]),
                               "nightly": median_record([r["nightly"] for r in dev_runs])},
                    "runs": dev_runs},
            "instance_settings": dev_runs[0]["instance_settings"],
        }
        if s.userpath_large:
            symbols, sessions = s.userpath_large
            large = self._run("userpath_cli", {**base, "symbols": symbols, "sessions": sessions, "timeout_s": 3 * 3600},
                              f"userpath cli large {symbols}x{sessions}", runs=1, timeout_s=7 * 3600)
            out["large"] = {"median": median_record(large), "runs": large}
        out["comparison"] = userpath_comparison(out["cli"]["median"], seed["median"])
        return out


def userpath_comparison(cli: dict, seed: dict) -> dict:
    """The CLI user path against the seed article's script on the same symbols x sessions."""
    return {
        "cli_wall_vs_seed": round(ratio(cli["wall_s"], seed["wall_s"]) or 0, 2),
        "seed_bars_per_s_vs_cli": round(ratio(seed["bars_per_s"], cli["bars_per_s"]) or 0, 2),
        "same_window": (cli["first_session"], cli["last_session"]) == (seed.get("first_session"),
                                                                      seed.get("last_session")),
        "same_bars": cli["bars_stored"] == seed["bars"],
        "cli_bars": cli["bars_stored"], "seed_bars": seed["bars"],
    }


def machine_info() -> dict:
    versions = {}
    for pkg in ("duckdb", "pandas", "pyarrow", "numpy", "pandera", "httpx", "requests", "dagster"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    mem_gib = None
    with contextlib.suppress(ValueError, OSError, AttributeError):
        mem_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"cpu_count": os.cpu_count(), "memory_gib": mem_gib, "load_average_1_5_15": load,
            "python": sys.version.split()[0], "platform": platform.platform(),
            "machine": platform.machine(), "packages": versions}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scale = SCALES[args.scale]
    overrides = {k: v for k, v in (("backfill_symbols", args.symbols), ("backfill_sessions", args.sessions),
                                   ("userpath_symbols", args.userpath_symbols),
                                   ("userpath_sessions", args.userpath_sessions)) if v}
    if overrides:
        from dataclasses import replace

        scale = replace(scale, name=f"{scale.name}*", **overrides)
    workdir = Path(tempfile.mkdtemp(prefix="ticklake-bench-"))
    suite = Suite(scale, args.runs, workdir, args.profile, userpath="userpath" in args.only)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "meta": {"started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "command": sys.argv,
                 "machine": machine_info(), "runs": args.runs, "seed": SEED,
                 "configured_plan": config.CONFIGURED_PLAN, "plans": config.PLANS},
        "scale": scale.as_dict(),
        "scenarios": {},
    }
    log(f"scale {scale.name}: {scale.backfill_symbols} symbols x {scale.backfill_sessions} sessions, "
        f"{args.runs} run(s) each; work folder {workdir}")
    try:
        if "backfill" in args.only:
            results["scenarios"]["backfill"] = suite.backfill(keep_warehouse="queries" in args.only)
        if "nightly" in args.only:
            results["scenarios"]["nightly"] = suite.nightly()
        if "queries" in args.only:
            results["scenarios"]["queries"] = suite.queries()
        if "baseline" in args.only:
            results["scenarios"]["baseline"] = suite.baseline()
        if "lakehouse" in args.only:
            results["scenarios"]["lakehouse"] = suite.lakehouse()
        if "golden" in args.only:
            results["scenarios"]["golden"] = suite.golden()
        if "userpath" in args.only:
            results["scenarios"]["userpath"] = suite.userpath()
        if "deliveries" in args.only:
            results["scenarios"]["deliveries"] = suite.deliveries()
        if "api" in args.only:
            results["scenarios"]["api"] = suite.api()
    finally:
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    results["meta"]["elapsed_s"] = round(time.perf_counter() - started, 1)
    if hasattr(os, "getloadavg"):  # other work on the machine skews timings: keep the evidence
        results["meta"]["load_average_at_end"] = os.getloadavg()
    results["targets"] = report.targets(results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(report.render(results))
    print(f"\nJSON: {args.json}")
    return 0
