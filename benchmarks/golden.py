"""Golden copy at scale: `ticklake.datasets.golden.arbitrate` on synthetic klines_daily_by_source frames.

    .venv/bin/python -m benchmarks.golden                       # 5,000 symbols; sessions 63/126/252; 1-3 sources
    .venv/bin/python -m benchmarks.golden --symbols 20 --sessions 10,20 --sources 1,2 --runs 1 --json /tmp/g.json

Each case runs in a fresh interpreter: the frame of symbols x sessions per source is built with numpy (not timed),
then the call is timed `--runs` times (best and median) with the peak RSS above the RSS before the call (the
kernel's peak is reset before each call through /proc/self/clear_refs; where that is refused, ru_maxrss over the
first call). The sources: `itick` (the API: bar_ts set, file null) and `quandl` (a vendor file: bar_ts null),
plus `polygon` (a second file) for three; each later source equals the first except ~0.1% of bars moved beyond the
policy's tolerance (close +20 bps), ~1% within it (close +1 bp, volume +0.1%), and ~0.5% of the bars of the
compared sources are held by one source only. Bars per second = input rows / seconds of local work. The
single-source fast path (`single_source`) is timed on the same one-source frame as `arbitrate`.

JSON goes to benchmarks/results/golden-<symbols>.json.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
SOURCES = ("itick", "quandl", "polygon")
PRICE_BPS, VOLUME_PCT = 5.0, 1.0
BEYOND, WITHIN, ONE_SOURCE_ONLY = 0.001, 0.01, 0.005
LAST_SESSION = dt.date(2024, 6, 28)
TARGET_BARS_PER_S = 1_000_000
SEED = 42


def policy(sources: int):
    from ticklake.sources.declared import Policy

    return Policy(priority=SOURCES[:max(sources, 2)], price_tolerance_bps=PRICE_BPS, volume_tolerance_pct=VOLUME_PCT)


def frame(symbols: int, sessions: int, sources: int, seed: int = SEED) -> pd.DataFrame:
    """klines_daily_by_source rows of region US, `sources` sources, built with numpy (no loop per bar)."""
    rng = np.random.default_rng(seed)
    days = pd.bdate_range(end=LAST_SESSION, periods=sessions).to_numpy("datetime64[ms]")
    n = symbols * sessions
    codes = np.array([f"S{i:05d}" for i in range(symbols)], dtype=object)
    walk = np.cumsum(rng.normal(0, 0.02, (symbols, sessions)), axis=1)
    close = (rng.uniform(5, 500, (symbols, 1)) * np.exp(walk)).ravel().round(4)
    open_ = (close * (1 + rng.normal(0, 0.01, n))).round(4)
    high = (np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.005, n)))).round(4)
    low = (np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.005, n)))).round(4)
    volume = np.round(rng.lognormal(13, 1, n))
    base = {"symbol": np.repeat(codes, sessions), "trade_date": np.tile(days, symbols), "open": open_,
            "high": high, "low": low, "close": close, "volume": volume}
    bar_ts = base["trade_date"] + np.timedelta64(20, "h")  # the API's bar time: the US close in UTC
    received = pd.Timestamp("2024-06-29 01:00", tz="UTC")
    # ~0.5% of the keys are held by one compared source only: each such key goes to exactly one of them
    alone = rng.random(n) < ONE_SOURCE_ONLY if sources > 1 else np.zeros(n, bool)
    owner = rng.integers(0, sources, n)
    parts = []
    for k, name in enumerate(SOURCES[:sources]):
        keep = ~alone | (owner == k)
        cols = {key: value.copy() for key, value in base.items()}
        if k:  # the later sources: the first one's bars, with controlled divergences
            draw = rng.random(n)
            beyond, within = draw < BEYOND, (draw >= BEYOND) & (draw < BEYOND + WITHIN)
            cols["close"][beyond] = (cols["close"][beyond] * 1.002).round(4)  # 20 bps: beyond 5 bps
            cols["close"][within] = cols["close"][within] * 1.0001  # 1 bp
            cols["volume"][within] = cols["volume"][within] * 1.001  # 0.1%: within 1%
            cols["high"] = np.maximum(cols["high"], cols["close"])  # the vendor's bar stays a possible bar
        rows = int(keep.sum())
        part = pd.DataFrame({"region": pd.array(["US"] * rows, dtype=pd.StringDtype()),
                             "symbol": pd.array(cols["symbol"][keep], dtype=pd.StringDtype())})
        part["trade_date"] = cols["trade_date"][keep]
        for key in ("open", "high", "low", "close", "volume"):
            part[key] = cols[key][keep]
        part["turnover"] = (part["close"] * part["volume"]).to_numpy() if k == 0 else np.nan
        part["split_ratio"] = np.nan
        part["dividend"] = np.nan
        part["bar_ts"] = pd.to_datetime(bar_ts[keep], utc=True).astype("datetime64[ms, UTC]") if k == 0 else \
            pd.Series(pd.NaT, index=part.index, dtype="datetime64[ms, UTC]")
        part["file"] = pd.array([None if k == 0 else f"{name}-2024.csv.gz"] * rows, dtype=pd.StringDtype())
        part["received_at"] = pd.Series(received, index=part.index).astype("datetime64[ms, UTC]")
        part["source"] = pd.array([name] * rows, dtype=pd.StringDtype())
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


# -- one case, in this (fresh) interpreter --------------------------------------------------------------------
def _status_kib(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset the kernel's peak RSS of this process (VmHWM) to its current RSS; False where refused."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def measure(call, runs: int, profile: Path | None = None) -> dict[str, Any]:
    if profile:  # one more call under cProfile, apart from the timed ones
        profiler = cProfile.Profile()
        profiler.runcall(call)
        profiler.dump_stats(profile)
    seconds, deltas, method = [], [], None
    for i in range(runs):
        gc.collect()
        before = _status_kib("VmRSS") or 0
        if _reset_peak() and _status_kib("VmHWM") is not None:
            method = "clear_refs"
        elif i == 0:
            method, before = "ru_maxrss", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        result = call()
        seconds.append(time.perf_counter() - started)
        if method == "clear_refs":
            deltas.append(((_status_kib("VmHWM") or before) - before) / 1024)
        elif i == 0:
            deltas.append((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
        del result
    return {"best_s": round(min(seconds), 4), "median_s": round(statistics.median(seconds), 4),
            "runs_s": [round(s, 4) for s in seconds], "peak_rss_delta_mb": round(max(deltas), 1),
            "rss_method": method}


def run_case(params: dict[str, Any]) -> dict[str, Any]:
    from ticklake.datasets.golden import arbitrate, single_source

    symbols, sessions, sources = params["symbols"], params["sessions"], params["sources"]
    started = time.perf_counter()
    bars = frame(symbols, sessions, sources)
    build_s = time.perf_counter() - started
    pol = policy(sources)
    profile = Path(params["profile"]) if params.get("profile") else None
    rows = len(bars)
    gc.collect()
    out: dict[str, Any] = {"symbols": symbols, "sessions": sessions, "sources": sources, "input_rows": rows,
                           "build_s": round(build_s, 2), "rss_before_mb": round((_status_kib("VmRSS") or 0) / 1024, 1)}
    last = arbitrate(bars, pol, "US")  # what it decided, for the record (and a warm-up of imports and caches)
    out["golden_rows"] = len(last.golden)
    out["rules"] = last.counts
    out["exceptions"] = len(last.exceptions)
    del last
    calls = {"arbitrate": lambda: arbitrate(bars, pol, "US")}
    if params.get("single_source"):
        calls["single_source"] = lambda: single_source(bars)
    for name, call in calls.items():
        m = measure(call, params["runs"], profile if name == "arbitrate" else None)
        m["bars_per_s_best"] = round(rows / m["best_s"]) if m["best_s"] else None
        m["bars_per_s_median"] = round(rows / m["median_s"]) if m["median_s"] else None
        out[name] = m
    return out


def child(params: dict[str, Any]) -> dict[str, Any]:
    """The case in a fresh interpreter: no frame, cache or allocator state from another case."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", ""))
                                                       if p)}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.golden", "--case", json.dumps(params)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"golden case {params} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def line(case: dict, name: str) -> str:
    m = case[name]
    return (f"{name:<14} {case['symbols']:>6} x {case['sessions']:>4} x {case['sources']} src = "
            f"{case['input_rows']:>10,} rows: best {m['best_s']:>7.3f} s ({m['bars_per_s_best']:>12,} bars/s), "
            f"median {m['median_s']:>7.3f} s, peak RSS +{m['peak_rss_delta_mb']:,.0f} MB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--symbols", type=int, default=5000)
    parser.add_argument("--sessions", default="63,126,252", help="comma-separated; the last is the goal's")
    parser.add_argument("--sources", default="1,2,3", help="comma-separated counts (1-3) at the last sessions")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", type=Path,
                        help="write a cProfile .pstats of one more (untimed) call of the goal case here")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: one case, JSON on stdout's last line
    args = parser.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(json.loads(args.case))), flush=True)
        return 0
    sessions, sources = _ints(args.sessions), _ints(args.sources)
    if not sessions or not sources or not all(1 <= s <= len(SOURCES) for s in sources):
        parser.error(f"--sessions needs at least one count, --sources counts from 1 to {len(SOURCES)}")
    result = run(args.symbols, sessions, sources, args.runs, profile=args.profile)
    target = args.json or RESULTS / f"golden-{args.symbols}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=2) + "\n")
    goal = result["goal"]
    print(f"arbitrate at {args.symbols} x {goal['sessions']} x 2 sources: {goal['bars_per_s_best']:,} bars/s best "
          f"(target >= {TARGET_BARS_PER_S:,}: {goal['verdict']}) -> {target}")
    return 0


def run(symbols: int, sessions: list[int], sources: list[int], runs: int, *, profile: Path | None = None,
        say=print) -> dict[str, Any]:
    """Every case side by side, each in a fresh interpreter: growth with sessions (2 sources) and with sources (at
    the last sessions), the goal case and the single-source path; the JSON record (also `python3 dev.py bench`'s
    `golden` scenario)."""
    full = sessions[-1]
    plan = [(s, 2) for s in sessions[:-1]] + [(full, k) for k in sources]
    if (full, 2) not in plan:
        plan.append((full, 2))
    started = time.perf_counter()
    cases = []
    for n_sessions, n_sources in plan:
        params = {"symbols": symbols, "sessions": n_sessions, "sources": n_sources, "runs": runs,
                  "single_source": n_sources == 1,
                  "profile": str(profile) if profile and (n_sessions, n_sources) == (full, 2) else None}
        case = child(params)
        cases.append(case)
        for name in ("arbitrate", "single_source"):
            if name in case:
                say(line(case, name))
    goal = next(c for c in cases if (c["sessions"], c["sources"]) == (full, 2))
    two = sorted((c for c in cases if c["sources"] == 2), key=lambda c: c["sessions"])
    at_full = sorted((c for c in cases if c["sessions"] == full), key=lambda c: c["sources"])
    one = next((c for c in at_full if c["sources"] == 1), None)
    best = goal["arbitrate"]["bars_per_s_best"]
    result = {
        "meta": {"started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "command": sys.argv,
                 "cpu_count": os.cpu_count(), "python": sys.version.split()[0],
                 "load_average_1_5_15": os.getloadavg() if hasattr(os, "getloadavg") else None,
                 "numpy": np.__version__, "pandas": pd.__version__, "runs": runs, "seed": SEED},
        "synthetic": {"sources": list(SOURCES), "beyond_tolerance_share": BEYOND, "within_tolerance_share": WITHIN,
                      "one_source_only_share": ONE_SOURCE_ONLY, "price_tolerance_bps": PRICE_BPS,
                      "volume_tolerance_pct": VOLUME_PCT},
        "goal": {"symbols": symbols, "sessions": full, "sources": 2, "input_rows": goal["input_rows"],
                 "target_bars_per_s": TARGET_BARS_PER_S, "bars_per_s_best": best,
                 "bars_per_s_median": goal["arbitrate"]["bars_per_s_median"],
                 "peak_rss_delta_mb": goal["arbitrate"]["peak_rss_delta_mb"],
                 "verdict": "PASS" if best >= TARGET_BARS_PER_S else "MISS",
                 "speedup_needed": round(TARGET_BARS_PER_S / best, 2) if best else None},
        "growth_with_sessions": [{"sessions": c["sessions"], "input_rows": c["input_rows"],
                                  "best_s": c["arbitrate"]["best_s"],
                                  "bars_per_s_best": c["arbitrate"]["bars_per_s_best"],
                                  "peak_rss_delta_mb": c["arbitrate"]["peak_rss_delta_mb"]} for c in two],
        "growth_with_sources": [{"sources": c["sources"], "input_rows": c["input_rows"],
                                 "best_s": c["arbitrate"]["best_s"],
                                 "bars_per_s_best": c["arbitrate"]["bars_per_s_best"],
                                 "peak_rss_delta_mb": c["arbitrate"]["peak_rss_delta_mb"]} for c in at_full],
        "single_source_vs_arbitrate": None if one is None else {
            "input_rows": one["input_rows"], "single_source_best_s": one["single_source"]["best_s"],
            "arbitrate_best_s": one["arbitrate"]["best_s"],
            "arbitrate_over_single_source": round(one["arbitrate"]["best_s"] / one["single_source"]["best_s"], 1)
            if one["single_source"]["best_s"] else None},
        "cases": cases,
    }
    result["meta"]["elapsed_s"] = round(time.perf_counter() - started, 1)
    return result

if __name__ == "__main__":
    raise SystemExit(main())
