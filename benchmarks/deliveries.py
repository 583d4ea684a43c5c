"""Tenant deliveries (issue 19): delivery throughput in rows per second per format, side by side in one run, and the
cost of a re-delivery with nothing changed and with one month restated.

A lake of one region (US) x `symbols` x `sessions` weekday bars is written the way the pipeline writes it (month by
month through `storage.writes.commit`, the lakehouse benchmark's synthetic bars), in a fresh interpreter. Then, for
each case (Parquet, CSV, JSON lines, and CSV converted to USD as the risk tenant takes it), one tenant with the
nine bar fields (region, symbol, trade_date, open, high, low, close, volume, turnover) is delivered `--runs` times
into fresh targets, the cases interleaved run by run; rows per second = delivered rows / the delivery's wall time
(snapshot read, every month's statement, encoding, sha256, fsynced writes, manifest). Then the same target is
re-delivered with nothing changed (every month is still read, encoded and hashed; nothing is written), and after one
month is restated in the lake (one file and the manifest are written).

JSON goes to benchmarks/results/deliveries-<symbols>.json (also `python3 dev.py bench --only deliveries`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
LAST_SESSION = dt.date(2024, 6, 28)
REGION = "US"
SEED = 42
FIELDS = ("region", "symbol", "trade_date", "open", "high", "low", "close", "volume", "turnover")
CASES = {"parquet": ("parquet", "local"), "csv": ("csv", "local"), "jsonl": ("jsonl", "local"),
         "csv_usd": ("csv", "USD")}


def _tenant(name: str, fmt: str, currency: str, target: Path):
    from ticklake.dictionary import DATASETS
    from ticklake.products.tenants import Product, Tenant

    table = DATASETS["klines_daily"]
    return Tenant(name, {"klines_daily": Product("klines_daily", table, FIELDS)}, (REGION,), format=fmt,
                  currency=currency, target=str(target))


def _restate(lake, month: str, factor: float) -> None:
    """Restate every bar of one month: closes x factor (and highs with them), through the pipeline's write path."""
    from benchmarks.scenarios.lakehouse import commit_month
    from ticklake.dictionary import KLINES_DAILY

    values = {"region": REGION, "month": month, "source": "itick"}
    previous = lake.read_table(KLINES_DAILY, **values)
    table = previous
    for name in ("close", "high"):
        i = table.schema.get_field_index(name)
        table = table.set_column(i, table.schema.field(i), pc.multiply(table.column(name), factor))
    commit_month(lake, table.cast(KLINES_DAILY.arrow_schema), REGION, month, run_id=f"bench-restate-{factor}",
                 now=dt.datetime.now(dt.UTC), previous=previous)


def _figures(result) -> dict[str, Any]:
    return {"rows": result.rows, "files": result.files, "bytes": result.bytes, "written": len(result.written),
            "unchanged": len(result.unchanged), "removed": len(result.removed), **result.seconds}


def run_case(params: dict[str, Any]) -> dict[str, Any]:
    """The whole measurement in this (fresh) interpreter."""
    from benchmarks.scenarios.lakehouse import build, weekdays
    from ticklake.products.delivery import deliver
    from ticklake.storage import Catalog, Lakehouse

    symbols, sessions, runs = params["symbols"], params["sessions"], params["runs"]
    work = Path(tempfile.mkdtemp(prefix="ticklake-deliveries-"))
    try:
        home = work / "home"
        lake = Lakehouse(Catalog.from_settings(home), home / "state")
        dates = weekdays(LAST_SESSION, sessions)
        built = build(lake, [REGION], symbols, dates, seed=SEED)
        months = sorted({f"{d:%Y-%m}" for d in dates})
        today = LAST_SESSION
        out: dict[str, Any] = {"symbols": symbols, "sessions": sessions, "months": len(months),
                               "lake_rows": built["rows"], "build_s": built["build_s"], "fields": list(FIELDS),
                               "runs": runs, "cases": {}}
        first: dict[str, list[dict]] = {c: [] for c in CASES}
        for i in range(runs):  # the cases side by side, run by run
            for case, (fmt, currency) in CASES.items():
                t = _tenant(f"{case}{i}", fmt, currency, work / "out" / f"{case}-{i}")
                started = time.perf_counter()
                result = deliver(t, "klines_daily", REGION, today=today, home=home)
                first[case].append({**_figures(result), "wall_s": round(time.perf_counter() - started, 4)})
        unchanged: dict[str, list[dict]] = {c: [] for c in CASES}
        restated: dict[str, list[dict]] = {c: [] for c in CASES}
        for i in range(runs):
            for case, (fmt, currency) in CASES.items():
                t = _tenant(f"{case}0", fmt, currency, work / "out" / f"{case}-0")
                started = time.perf_counter()
                result = deliver(t, "klines_daily", REGION, today=today, home=home)
                if result.written or result.manifest_written:
                    raise RuntimeError(f"a re-delivery with nothing changed wrote something: {result}")
                unchanged[case].append({**_figures(result), "wall_s": round(time.perf_counter() - started, 4)})
            _restate(lake, months[-2], 1.0 + (i + 1) / 100)  # one month restated: every case sees it
            for case, (fmt, currency) in CASES.items():
                t = _tenant(f"{case}0", fmt, currency, work / "out" / f"{case}-0")
                started = time.perf_counter()
                result = deliver(t, "klines_daily", REGION, today=today, home=home)
                if result.changed != (months[-2],) or len(result.written) != 1:
                    raise RuntimeError(f"one month restated, not one file rewritten: {result}")
                restated[case].append({**_figures(result), "wall_s": round(time.perf_counter() - started, 4)})
        lake.close()
        for case in CASES:
            walls = [r["wall_s"] for r in first[case]]
            rows = first[case][0]["rows"]
            best, median = min(walls), statistics.median(walls)
            out["cases"][case] = {
                "format": CASES[case][0], "currency": CASES[case][1], "rows": rows, "files": first[case][0]["files"],
                "bytes": first[case][0]["bytes"], "bytes_per_row": round(first[case][0]["bytes"] / max(rows, 1), 1),
                "first_best_s": best, "first_median_s": median,
                "rows_per_s_best": round(rows / best) if best else None,
                "rows_per_s_median": round(rows / median) if median else None,
                "first_phases_s": {k: statistics.median(r[k] for r in first[case])
                                   for k in ("read_s", "encode_s", "write_s")},
                "unchanged_median_s": statistics.median(r["wall_s"] for r in unchanged[case]),
                "restated_month_median_s": statistics.median(r["wall_s"] for r in restated[case]),
                "restated_files_written": restated[case][0]["written"],
                "runs": {"first": first[case], "unchanged": unchanged[case], "restated": restated[case]},
            }
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def child(params: dict[str, Any]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", ""))
                                                       if p)}
    env.pop("TICKLAKE_CATALOG", None)
    env.pop("TICKLAKE_STORAGE_URL", None)
    proc = subprocess.run([sys.executable, "-m", "benchmarks.deliveries", "--case", json.dumps(params)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=3 * 3600)
    if proc.returncode != 0:
        raise RuntimeError(f"deliveries case {params} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def line(name: str, c: dict) -> str:
    return (f"{name:<8} {c['rows']:>10,} rows in {c['files']} files, {c['bytes'] / 1e6:7.1f} MB: first "
            f"{c['first_best_s']:6.2f} s ({c['rows_per_s_best']:>10,} rows/s best, {c['rows_per_s_median']:>10,} "
            f"median); re-delivery unchanged {c['unchanged_median_s']:5.2f} s, one month restated "
            f"{c['restated_month_median_s']:5.2f} s")


def run(symbols: int, sessions: int, runs: int, *, say=print) -> dict[str, Any]:
    """The JSON record (also `python3 dev.py bench`'s `deliveries` scenario)."""
    started = time.perf_counter()
    case = child({"symbols": symbols, "sessions": sessions, "runs": runs})
    for name, c in case["cases"].items():
        say(line(name, c))
    return {"meta": {"started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "command": sys.argv,
                     "cpu_count": os.cpu_count(), "python": sys.version.split()[0], "pyarrow": pa.__version__,
                     "load_average_1_5_15": os.getloadavg() if hasattr(os, "getloadavg") else None,
                     "elapsed_s": round(time.perf_counter() - started, 1), "runs": runs, "seed": SEED},
            **case}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--symbols", type=int, default=1000)
    parser.add_argument("--sessions", type=int, default=504, help="weekday sessions ending 2024-06-28 (504: 2 years)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: the measurement, JSON on stdout's last line
    args = parser.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(json.loads(args.case))), flush=True)
        return 0
    result = run(args.symbols, args.sessions, args.runs)
    target = args.json or RESULTS / f"deliveries-{args.symbols}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
