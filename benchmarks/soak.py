"""Soak (issue #9, item 5): a few hundred partition materializations against a simulator that injects transport
faults at a given rate; at the end the bars and their status rows must equal a fault-free run's, row for row.

    .venv/bin/python -m benchmarks.soak --rate 0.11 [--regions US,HK,SH,JP] [--months 60] [--symbols 8]

A failed partition is run again, as an operator or a retry policy would; those re-runs are counted. Prints faults
injected, client retries, failures (runs that failed and were re-run) and rows lost, and writes
benchmarks/results/soak-<rate>.json.
"""

from __future__ import annotations

import argparse
import calendar
import datetime as dt
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from itick_sim import SimSettings, Simulator, serve
from resources.itick import ITickResource
from resources.storage import StorageResource
from ticklake.datasets.context import RunContext
from ticklake.datasets.klines import ingest_daily_bars, universe
from ticklake.datasets.security_master import refresh_securities
from ticklake.dictionary import KLINES_DAILY
from ticklake.storage.frames import fetch_frame

NOW = dt.datetime(2024, 6, 28, 23, 0, tzinfo=dt.UTC)
TOKEN = "soak-token-not-a-secret"
LINEAGE = ("ingested_at", "run_id")
RESULTS = Path(__file__).parent / "results"


@dataclass
class Tally:
    partitions: int = 0
    runs: int = 0
    failures: int = 0  # runs that failed and were re-run
    retries: int = 0  # the client's own retries inside runs that succeeded
    errors: dict[str, int] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)


def months(count: int, last: dt.date) -> list[list[dt.date]]:
    """The calendar days of the `count` months ending with `last`'s month, oldest first."""
    out, year, month = [], last.year, last.month
    for _ in range(count):
        days = calendar.monthrange(year, month)[1]
        out.append([dt.date(year, month, d) for d in range(1, days + 1) if dt.date(year, month, d) <= last])
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return out[::-1]


def _with_retries(tally: Tally, attempts: int, work):
    """Run `work` until it succeeds, at most `attempts` times, counting each failed run."""
    for attempt in range(1, attempts + 1):
        tally.runs += 1
        try:
            return work()
        except Exception as exc:  # any failed run is re-run; counted by kind in the report
            if attempt == attempts:
                raise
            tally.failures += 1
            tally.errors[type(exc).__name__] = tally.errors.get(type(exc).__name__, 0) + 1
    return None


def run(home: Path, settings: SimSettings, month_days: list[list[dt.date]], attempts: int) -> Tally:
    """Reference data, then one ingest per (region, month) partition, each re-run until it succeeds."""
    tally = Tally()
    storage = StorageResource(home=str(home))
    lake = storage.lakehouse()
    with serve(Simulator(settings)) as server:
        itick = ITickResource(base_url=server.url, token=TOKEN, home=str(home), plan="100000", backoff_base_s=0.05,
                              timeout_s=0.5)
        for region in settings.regions:
            _with_retries(tally, attempts, lambda r=region: refresh_securities(
                RunContext(lake, f"ref-{r}", NOW, itick.source()), r))
            codes = universe(lake, region)
            for days in month_days:
                result = _with_retries(tally, attempts, lambda r=region, d=days, c=codes: ingest_daily_bars(
                    RunContext(lake, f"{r}-{d[0]:%Y-%m}", NOW, itick.source()), r, dates=d, codes=c))
                tally.partitions += 1
                tally.retries += result.fetch.retries
        tally.faults = server.simulator.counters.snapshot()["faults"]
    return tally


def stored(home: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(klines_daily rows, their lake_partitions rows), sorted, without the lineage columns (they differ run to
    run)."""
    kept = [c for c in KLINES_DAILY.columns if c not in LINEAGE]
    with StorageResource(home=str(home)).lakehouse().reader() as con:
        bars = fetch_frame(con.execute("SELECT * FROM klines_daily"))
        status = fetch_frame(con.execute("SELECT region, partition, source, rows FROM lake_partitions "
                                         "WHERE dataset = 'klines_daily' ORDER BY ALL"))
    return bars[kept].astype(str).sort_values(["region", "symbol", "trade_date"]).reset_index(drop=True), status


def rows_lost(clean: pd.DataFrame, faulty: pd.DataFrame) -> int:
    """Rows of the fault-free run missing or different in the faulty one."""
    merged = clean.merge(faulty, how="left", indicator=True)
    return int((merged["_merge"] == "left_only").sum())


def soak(rate: float, regions: tuple[str, ...], count: int, symbols: int, seed: int, attempts: int) -> dict:
    base = {"now": NOW, "regions": regions, "symbols_per_region": symbols, "seed": seed}
    month_days = months(count, NOW.date())
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        started = time.monotonic()
        faulty = run(Path(tmp) / "faulty", SimSettings(**base, fault_rate=rate, fault_timeout_s=1.0), month_days,
                     attempts)
        elapsed = time.monotonic() - started
        run(Path(tmp) / "clean", SimSettings(**base), month_days, 1)
        (bars_f, status_f), (bars_c, status_c) = stored(Path(tmp) / "faulty"), stored(Path(tmp) / "clean")
    return {
        "fault_rate": rate, "regions": list(regions), "months": count, "symbols_per_region": symbols, "seed": seed,
        **asdict(faulty), "faults_injected": sum(faulty.faults.values()), "seconds": round(elapsed, 1),
        "rows": len(bars_c), "rows_lost": rows_lost(bars_c, bars_f),
        "lake_equal": bars_f.equals(bars_c), "status_equal": status_f.equals(status_c),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=0.1, help="share of requests meeting a fault (default 0.1)")
    p.add_argument("--regions", default="US,HK,SH,JP")
    p.add_argument("--months", type=int, default=60)
    p.add_argument("--symbols", type=int, default=8, help="symbols per region")
    p.add_argument("--seed", type=int, default=SimSettings.seed)
    p.add_argument("--attempts", type=int, default=5, help="runs of a partition before the soak gives up")
    p.add_argument("--out", type=Path, default=None, help="JSON report (default benchmarks/results/soak-<rate>.json)")
    args = p.parse_args(argv)
    report = soak(args.rate, tuple(r.strip() for r in args.regions.split(",") if r.strip()), args.months,
                  args.symbols, args.seed, args.attempts)
    out = args.out or RESULTS / f"soak-{args.rate:g}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"partitions {report['partitions']}  runs {report['runs']}  faults injected {report['faults_injected']} "
          f"{report['faults']}\nclient retries {report['retries']}  failures (re-run) {report['failures']} "
          f"{report['errors']}\nrows {report['rows']}  rows lost {report['rows_lost']}  lake equal "
          f"{report['lake_equal']}  status equal {report['status_equal']}  ({report['seconds']} s)\n-> {out}")
    return 0 if report["rows_lost"] == 0 and report["lake_equal"] and report["status_equal"] else 1


if __name__ == "__main__":
    sys.exit(main())
