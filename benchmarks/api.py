"""The read API under load (issue 19): `ticklake serve` in its own process, a loopback load generator in another.

    .venv/bin/python -m benchmarks.api                         # 1,000 symbols x 504 sessions; 100..1000 req/s
    .venv/bin/python -m benchmarks.api --symbols 50 --sessions 60 --rates 20,50 --duration 2 --json /tmp/a.json

The lake: US daily bars of `--symbols` x `--sessions` weekdays (a price random walk per symbol), written through the
library (`Lakehouse.replace_partitions`: the DDL, partitions (region, year) and SORTED BY order of
`ticklake.storage.ddl`), raw (`klines_daily`) and split-adjusted (`klines_daily_adjusted`), plus each symbol's
security master row (its currency) and FX rows, so the USD tenant's statement carries its currency joins.

Two tenants, each with a limit far above the offered load (the limiter's cost is measured, never its refusals):
`research` (adjusted prices, every field) and `risk` (USD). Each request is a symbol-year with a 3-field selection
(`fields=trade_date,close,volume&start=<a year before the last session>&end=<the last>`), half per tenant, the
symbol drawn from a Zipf-like popularity (weight 1/rank), the way a few names are asked for most.

The load is open-loop at fixed rates: request i is due at t0 + i/rate and its latency runs from when it was due, so
a server that falls behind is charged for the queue (no coordinated omission). 50 keep-alive connections (25 per
tenant) on a raw asyncio HTTP/1.1 client (a few tens of microseconds per request: the generator costs little of the
2 cores it shares with the server). Each rate runs `--duration` seconds; a request still queued 2 s after its
step ends is not sent and counted `unsent` (the rate is then "saturated"). Variants, each on a fresh server:
`cache_off` (TICKLAKE_API_CACHE_SECONDS=0, in-process limits: every request reads the lake) and `redis_cache`
(TICKLAKE_REDIS_URL: limits and the hot-data cache in Redis, emptied first, then warmed by asking every symbol of the
run once per tenant, so the steps measure answers served from the cache), with `--workers` uvicorn workers.
`local_cache` (the in-process LRU, warmed the same way) on request.

JSON goes to benchmarks/results/api-<symbols>.json, or to --json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
LAST_SESSION = dt.date(2024, 6, 28)
CLIENTS = 50
FIELDS = "trade_date,close,volume"
TARGET_RPS = 500
TARGET_P99_MS = 50.0
REDIS_URL = os.environ.get("TICKLAKE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")  # a db of its own
KEYS = {"research": "bench-research-key-5f1c0b7e", "risk": "bench-risk-key-9a2d4e61"}
TENANTS = """
[tenants.research]
regions = ["US"]
prices = "adjusted"
[tenants.research.datasets]
klines_daily = "all"
[tenants.research.api]
key_env = "BENCH_KEY_RESEARCH"
requests_per_second = 100000
burst = 100000

[tenants.risk]
regions = ["US"]
currency = "USD"
format = "csv"
[tenants.risk.datasets]
klines_daily = ["trade_date", "symbol", "close", "volume"]
[tenants.risk.api]
key_env = "BENCH_KEY_RISK"
requests_per_second = 100000
burst = 100000
"""


def log(message: str) -> None:
    print(f"[api-bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ the lake


def build_lake(home: Path, symbols: int, sessions: int, seed: int = 42) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.compute as pc

    from benchmarks.scenarios.lakehouse import Bars, by_month, symbol_codes, weekdays
    from ticklake.dictionary import DATASETS
    from ticklake.storage import Catalog, Lakehouse

    started = time.perf_counter()
    lake = Lakehouse(Catalog.from_settings(home), home / "state")
    now = dt.datetime.now(dt.UTC)
    codes = symbol_codes(symbols)
    days = weekdays(LAST_SESSION, sessions)
    months = by_month(days)
    walk = Bars("US", codes, seed)
    golden = pa.concat_tables([walk.month(m, ingested_at=now, run_id="bench-api") for m in months])
    kd, ka, sm, fx = (DATASETS[n] for n in ("klines_daily", "klines_daily_adjusted", "security_master", "fx_daily"))
    n = golden.num_rows
    adjusted = pa.table({c: (golden.column(c) if c in golden.column_names else
                             pa.array(np.ones(n), pa.float64()) if c == "adjustment_factor" else None)
                         for c in ka.columns}).cast(ka.arrow_schema)
    master = pa.Table.from_pylist([{"region": "US", "symbol": s, "valid_from": days[0], "name": s,
                                    "security_type": "stock", "currency": "USD", "source": "itick",
                                    "ingested_at": now, "run_id": "bench-api"} for s in codes], schema=sm.arrow_schema)
    rates = pa.Table.from_pylist([{"region": "US", "currency": "EUR", "trade_date": d, "usd_per_unit": 1.08,
                                   "pair": "EURUSD", "pair_close": 1.08, "source": "itick", "ingested_at": now,
                                   "run_id": "bench-api"} for d in days], schema=fx.arrow_schema)
    parts = [{"region": "US", "month": f"{m[0]:%Y-%m}", "source": "itick"} for m in months]
    lake.replace_many([(kd, golden, parts, None), (ka, adjusted, parts, None),
                       (sm, master, [{"region": "US", "source": "itick"}], None), (fx, rates, parts, None)])
    with lake.connection() as con:
        files = con.execute("SELECT count(*) FROM ducklake_list_files('lake', 'klines_daily')").fetchone()[0]
    lake.close()
    assert pc.sum(golden.column("volume")).as_py() > 0
    return {"symbols": symbols, "sessions": sessions, "rows": n, "klines_daily_files": files,
            "first_session": str(days[0]), "last_session": str(days[-1]),
            "build_s": round(time.perf_counter() - started, 2)}


# ------------------------------------------------------------------------------------------------ the server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def served(home: Path, tenants: Path, env: dict[str, str], workers: int):
    port = free_port()
    full = {**os.environ, "TICKLAKE_HOME": str(home), "TICKLAKE_TENANTS": str(tenants),
            "BENCH_KEY_RESEARCH": KEYS["research"], "BENCH_KEY_RISK": KEYS["risk"], **env}
    full.pop("TICKLAKE_CATALOG", None)
    full.pop("TICKLAKE_STORAGE_URL", None)
    if "TICKLAKE_REDIS_URL" not in env:
        full.pop("TICKLAKE_REDIS_URL", None)
    command = [str(Path(sys.executable).parent / "ticklake"), "serve", "--host", "127.0.0.1", "--port", str(port),
               "--workers", str(workers)]
    proc = subprocess.Popen(command, env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        import httpx

        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            if proc.poll() is not None:
                raise RuntimeError(f"ticklake serve exited {proc.returncode}: {proc.communicate()[1][-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("ticklake serve did not answer /health within 120 s")
            time.sleep(0.3)
        yield port, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def server_cpu_s(proc: subprocess.Popen) -> float | None:
    """CPU seconds of the server and its worker processes so far (Linux /proc)."""
    pids = [proc.pid]
    with contextlib.suppress(OSError):
        pids += [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return round(total, 2)


# ------------------------------------------------------------------------------------------------ the load


def paths(symbols: int, first: str, last: str, count: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, symbols + 1)
    picks = rng.choice(symbols, size=count, p=weights / weights.sum())
    order = rng.permutation(symbols)  # the popular ones are spread over the universe
    return [f"/v1/klines_daily?symbols=S{order[p]:05d}&fields={FIELDS}&start={first}&end={last}" for p in picks]


async def _load(port: int, rate: float, duration_s: float, request_paths: list[str]) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    queues = {tenant: asyncio.Queue() for tenant in KEYS}
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    cache: dict[str, int] = {}
    total = int(rate * duration_s)
    stop_at: list[float] = []

    async def client(tenant: str) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        auth = f"Authorization: Bearer {KEYS[tenant]}\r\n"
        queue = queues[tenant]
        try:
            while True:
                item = await queue.get()
                if item is None:
                    return
                due, path = item
                if stop_at and loop.time() > stop_at[0]:
                    continue  # not sent: counted as unsent
                writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n{auth}\r\n".encode())
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                status = int(lines[0].split()[1])
                headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)}
                await reader.readexactly(int(headers.get("content-length", 0)))
                latencies.append((loop.time() - due) * 1000)
                statuses[status] = statuses.get(status, 0) + 1
                state = headers.get("x-cache", "-")
                cache[state] = cache.get(state, 0) + 1
        finally:
            writer.close()

    tasks = [asyncio.create_task(client(t)) for t in KEYS for _ in range(CLIENTS // len(KEYS))]
    await asyncio.sleep(0.2)  # connections open
    t0 = loop.time() + 0.05
    for i in range(total):
        due = t0 + i / rate
        wait = due - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        tenant = "research" if i % 2 == 0 else "risk"
        queues[tenant].put_nowait((due, request_paths[i % len(request_paths)]))
    end = t0 + total / rate
    stop_at.append(end + 2.0)
    for q in queues.values():
        for _ in range(CLIENTS // len(KEYS)):
            q.put_nowait(None)
    await asyncio.gather(*tasks)
    elapsed = max(loop.time(), end) - t0
    done = len(latencies)
    values = np.array(latencies) if latencies else np.array([float("nan")])
    hits = cache.get("hit", 0)
    return {"rate": rate, "sent": done, "unsent": total - done, "achieved_rps": round(done / elapsed, 1),
            "p50_ms": round(float(np.percentile(values, 50)), 2), "p90_ms": round(float(np.percentile(values, 90)), 2),
            "p99_ms": round(float(np.percentile(values, 99)), 2), "max_ms": round(float(values.max()), 2),
            "statuses": {str(k): v for k, v in sorted(statuses.items())}, "cache": cache,
            "hit_ratio": round(hits / done, 3) if done else None,
            "saturated": bool(total - done or done / elapsed < 0.95 * rate)}


async def _warm(port: int, request_paths: list[str], connections: int = 8) -> dict[str, Any]:
    """Ask every (tenant, path) once, closed-loop on a few connections: the hot-data cache holds them after."""
    work = [(tenant, path) for path in dict.fromkeys(request_paths) for tenant in KEYS]
    statuses: dict[int, int] = {}
    started = time.perf_counter()

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while work:
                tenant, path = work.pop()
                writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {KEYS[tenant]}\r\n\r\n"
                             .encode())
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                length = next((int(x.split(":", 1)[1]) for x in head if x.lower().startswith("content-length")), 0)
                await reader.readexactly(length)
                status = int(head[0].split()[1])
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(connections)))
    return {"requests": sum(statuses.values()), "statuses": {str(k): v for k, v in statuses.items()},
            "wall_s": round(time.perf_counter() - started, 2)}


def load_step(port: int, rate: float, duration_s: float, request_paths: list[str]) -> dict[str, Any]:
    return asyncio.run(_load(port, rate, duration_s, request_paths))


def loadgen_child(params: dict[str, Any]) -> dict[str, Any]:
    """One step in the load generator's own process (so its CPU is not the server's, nor this driver's)."""
    proc = subprocess.run([sys.executable, "-m", "benchmarks.api", "--step"], input=json.dumps(params), cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                          timeout=params["duration_s"] * 10 + 120)
    if proc.returncode != 0:
        raise RuntimeError(f"load generator failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------ the run


def best_rate(steps: list[dict]) -> float | None:
    ok = [s["rate"] for s in steps if not s["saturated"] and s["p99_ms"] <= TARGET_P99_MS
          and set(s["statuses"]) == {"200"}]
    return max(ok) if ok else None


def server_side(home: Path, steps: list[dict]) -> None:
    """Each step's latencies as the server audited them (arrival to answer ready, `api_audit.latency_ms`): what
    the handler cost, apart from the queues of the kernel, uvicorn and the load generator."""
    from ticklake.storage import connect

    with connect(home) as con:
        for step in steps:
            start, end = (dt.datetime.fromisoformat(t) for t in step["window"])
            n, p50, p99, top = con.execute(
                "SELECT count(*), quantile_cont(latency_ms, 0.5), quantile_cont(latency_ms, 0.99), max(latency_ms) "
                "FROM api_audit WHERE requested_at BETWEEN ? AND ? AND status = 200", [start, end]).fetchone()
            step["server_side"] = {"audited": n, "p50_ms": None if p50 is None else round(p50, 2),
                                   "p99_ms": None if p99 is None else round(p99, 2),
                                   "max_ms": None if top is None else round(top, 2)}


def flush_redis(url: str) -> bool:
    try:
        import redis

        client = redis.Redis.from_url(url, socket_timeout=2)
        client.flushdb()
        client.close()
        return True
    except Exception as exc:
        log(f"Redis at {url} not usable ({type(exc).__name__}): the redis_cache variant is skipped")
        return False


def run(symbols: int, sessions: int, rates: list[float], duration_s: float, workers: int,
        variants: list[str], keep: bool = False) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="ticklake-api-bench-"))
    try:
        home = work / "home"
        home.mkdir()
        log(f"building the lake: {symbols} symbols x {sessions} sessions")
        lake = build_lake(home, symbols, sessions)
        log(f"  {lake['rows']:,} rows in {lake['build_s']} s ({lake['klines_daily_files']} klines_daily files)")
        tenants = work / "tenants.toml"
        tenants.write_text(textwrap.dedent(TENANTS))
        last = dt.date.fromisoformat(lake["last_session"])
        first = max(dt.date.fromisoformat(lake["first_session"]), last - dt.timedelta(days=365))
        request_paths = paths(symbols, str(first), str(last), 100_000, seed=7)
        configs = {"cache_off": {"TICKLAKE_API_CACHE_SECONDS": "0"},
                   "redis_cache": {"TICKLAKE_REDIS_URL": REDIS_URL, "TICKLAKE_API_CACHE_SECONDS": "300"},
                   "local_cache": {"TICKLAKE_API_CACHE_SECONDS": "300"}}
        out: dict[str, Any] = {"lake": lake, "workers": workers, "clients": CLIENTS, "duration_s": duration_s,
                               "query": f"/v1/klines_daily?symbols=<one, Zipf-popular>&fields={FIELDS}&start={first}"
                                        f"&end={last}", "variants": {}}
        for name in variants:
            if name == "redis_cache" and not flush_redis(REDIS_URL):
                continue
            with served(home, tenants, configs[name], workers) as (port, proc):
                log(f"{name}: ticklake serve on :{port}, {workers} worker(s)")
                load_step(port, 20, 1.0, request_paths[-50:])  # warm the connections and cursors (not reported)
                warm = None
                if name != "cache_off":  # the hot data in the cache first: every symbol of the run, both tenants
                    warm = asyncio.run(_warm(port, request_paths[:int(max(rates) * duration_s)]))
                    log(f"  cache warmed: {warm['requests']} answers in {warm['wall_s']} s")
                steps = []
                for rate in rates:
                    started_at = dt.datetime.now(dt.UTC)
                    cpu_before = server_cpu_s(proc)
                    step = loadgen_child({"port": port, "rate": rate, "duration_s": duration_s,
                                          "paths": request_paths[:int(rate * duration_s)]})
                    cpu_after = server_cpu_s(proc)
                    if cpu_before is not None and cpu_after is not None:  # the server's own cost, whatever the load
                        step["server_cpu_s"] = round(cpu_after - cpu_before, 2)
                        step["server_cpu_ms_per_request"] = round(step["server_cpu_s"] * 1000 / max(step["sent"], 1),
                                                                  3)
                    step["load_average_1m"] = round(os.getloadavg()[0], 2)
                    step["window"] = [started_at.isoformat(), dt.datetime.now(dt.UTC).isoformat()]
                    steps.append(step)
                    log(f"  {rate:>6.0f} req/s: p50 {step['p50_ms']:.1f} ms, p99 {step['p99_ms']:.1f} ms, "
                        f"achieved {step['achieved_rps']:.0f}/s, unsent {step['unsent']}, hits "
                        f"{step['hit_ratio']}, statuses {step['statuses']}, load {step['load_average_1m']}")
            server_side(home, steps)  # the server has stopped: its audit is flushed
            out["variants"][name] = {"env": configs[name], "warm_up": warm, "steps": steps,
                                     "highest_rate_p99_within_target": best_rate(steps)}
        rows = {name: v["highest_rate_p99_within_target"] for name, v in out["variants"].items()}
        reached = [r for r in rows.values() if r is not None]
        out["goal"] = {"target": f">= {TARGET_RPS} req/s at p99 <= {TARGET_P99_MS:.0f} ms",
                       "highest_rate_by_variant": rows,
                       "verdict": "PASS" if reached and max(reached) >= TARGET_RPS else "MISS"}
        return out
    finally:
        if keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def machine() -> dict[str, Any]:
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    pressure = None  # the share of time runnable tasks waited for a CPU (Linux PSI): other jobs on the machine
    with contextlib.suppress(OSError):
        pressure = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    return {"cpu_count": os.cpu_count(), "load_average_1_5_15": os.getloadavg(), "uptime": uptime,
            "cpu_pressure": pressure, "python": sys.version.split()[0]}


def render(result: dict) -> str:
    lines = [f"read API: {result['lake']['rows']:,} rows ({result['lake']['symbols']} symbols x "
             f"{result['lake']['sessions']} sessions), {result['workers']} worker(s), {result['clients']} clients, "
             f"{result['duration_s']} s per rate; load before {result['machine_before']['uptime']}"]
    lines.append(f"{'variant':<12} {'rate':>6} {'achieved':>9} {'p50 ms':>8} {'p99 ms':>8} {'srv p99':>8} "
                 f"{'hits':>6} {'unsent':>7} {'cpu ms/req':>10} {'load':>5} statuses")
    for name, v in result["variants"].items():
        for s in v["steps"]:
            lines.append(f"{name:<12} {s['rate']:>6.0f} {s['achieved_rps']:>9.0f} {s['p50_ms']:>8.1f} "
                         f"{s['p99_ms']:>8.1f} {s.get('server_side', {}).get('p99_ms') or '-':>8} "
                         f"{s['hit_ratio'] if s['hit_ratio'] is not None else '-':>6} "
                         f"{s['unsent']:>7} {s.get('server_cpu_ms_per_request', '-'):>10} {s['load_average_1m']:>5} "
                         f"{s['statuses']}")
        lines.append(f"{name:<12} highest rate with p99 <= {TARGET_P99_MS:.0f} ms: "
                     f"{v['highest_rate_p99_within_target']}")
    lines.append(f"goal {result['goal']['target']}: {result['goal']['verdict']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--symbols", type=int, default=1000)
    parser.add_argument("--sessions", type=int, default=504)
    parser.add_argument("--rates", default="10,25,50,100,250,500,750,1000",
                        help="requests per second, comma-separated")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per rate")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers of ticklake serve")
    parser.add_argument("--variants", default="cache_off,redis_cache",
                        help="comma-separated: cache_off, redis_cache, local_cache")
    parser.add_argument("--json", type=Path, help="write the JSON here (default benchmarks/results/api-<symbols>.json)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (the lake)")
    parser.add_argument("--step", action="store_true", help=argparse.SUPPRESS)  # the load generator's process
    args = parser.parse_args(argv)
    if args.step:
        params = json.loads(sys.stdin.read())
        print(json.dumps(load_step(params["port"], params["rate"], params["duration_s"], params["paths"])))
        return 0
    before = machine()
    result = run(args.symbols, args.sessions, [float(r) for r in args.rates.split(",") if r.strip()], args.duration,
                 args.workers, [v.strip() for v in args.variants.split(",") if v.strip()], keep=args.keep)
    result = {"benchmark": "api", "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
              "machine_before": before, **result, "machine_after": machine()}
    target = args.json or RESULTS / f"api-{args.symbols}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
