"""The printed table and the target verdicts (also stored in the JSON)."""

from __future__ import annotations

from typing import Any

from benchmarks import config


def _n(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _transports(scenario: dict) -> list[str]:
    return [k for k in scenario if isinstance(scenario[k], dict) and "median" in scenario[k]]


def _load(values: Any) -> str:
    return "/".join(f"{v:.1f}" for v in values) if values else "-"


def brief(kind: str, r: dict) -> str:
    if kind == "backfill":
        return (f"{r['bars']:,} bars in {r['wall_s']:.2f}s = {r['bars_per_s']:,.0f} bars/s, {r['calls']} calls "
                f"(min {r['min_calls']}), 429s {r['rate_limited_429']}, peak {r['peak_rss_mb']:.0f} MB")
    if kind == "nightly":
        return f"{r['bars']:,} bars in {r['wall_s']:.2f}s, {r['calls']} calls, 429s {r['server_429']}"
    if kind == "baseline":
        return f"{r['bars']:,} bars in {r['wall_s']:.2f}s = {r['bars_per_s']:,.0f} bars/s, {r['calls']} calls"
    if kind == "userpath_cli":
        return (f"{r['bars_stored']:,} bars in {r['wall_s']:.2f}s (run {r['run_s']:.2f}s, step {_n(r['step_s'], 2)}s "
                f"of which work {_n(r.get('step_work_s'), 2)}s, {r['events']:,} events, {r['partitions']:,} partitions "
                f"{r['partition_range']}); "
                f"securities {r['securities_s']:.2f}s, import definitions {r['definitions_import_s']:.2f}s")
    if kind == "userpath_dev":
        b, n = r["backfill"], r["nightly"]
        return (f"dagster dev ready in {r['dev_ready_s']:.1f}s; UI backfill {b['e2e_s']:.1f}s end to end "
                f"({b['runs']} run(s), run {b['run_s']:.1f}s, step {_n(b['step_s'], 2)}s, daemon overhead "
                f"{b['daemon_overhead_s']:.1f}s); nightly {n['partition']} launch->success "
                f"{n['launch_to_success_s']:.1f}s")
    if kind == "lakehouse_queries":
        lake = r["lake"]
        return (f"{r['backend']}: {r['rows']:,} rows; lake symbol p99 {lake['symbol_history']['p99_ms']:.1f} ms, "
                f"cross-section p99 {lake['cross_section']['p99_ms']:.1f} ms; symbol p99 on the previous snapshot "
                f"(time travel) {lake['symbol_history_time_travel']['p99_ms']:.1f} ms; fresh attach+query "
                f"{r['fresh_process']['attach_and_first_query_ms']:.0f} ms")
    if kind == "lakehouse_nightly":
        return ", ".join(f"{x['lake_rows']:,} rows: {x['nightly_s']:.2f}s" for x in r["sizes"])
    if kind == "lakehouse_nights":
        return (f"symbol p99 after night 1 {r['first_night']['symbol_history']['p99_ms']:.1f} ms, after night "
                f"{r['nights']} {r['last_night']['symbol_history']['p99_ms']:.1f} ms")
    if kind == "queries":
        return ", ".join(f"{k} p50 {v['p50_ms']:.2f} / p99 {v['p99_ms']:.2f} ms"
                         for k, v in r["queries"].items() if "p50_ms" in v)
    return ""


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("PASS" if ok else "MISS")


def targets(results: dict) -> list[dict]:
    """Every issue #3 target that this run measured: value, target, PASS/MISS."""
    out: list[dict] = []
    sc = results["scenarios"]
    large = results["scale"]["name"].startswith("large")

    def add(scenario: str, metric: str, value: Any, target: str, ok: bool | None, note: str = "") -> None:
        out.append({"scenario": scenario, "metric": metric, "value": value, "target": target,
                    "status": _verdict(ok), "note": note})

    if "backfill" in sc:
        b = sc["backfill"]
        for t in _transports(b):
            m = b[t]["median"]
            add("backfill", f"API calls / minimum ({t})", m["call_ratio"], f"<= {config.TARGET_CALL_RATIO}",
                m["call_ratio"] is not None and m["call_ratio"] <= config.TARGET_CALL_RATIO,
                f"{m['calls']} calls vs min {m['min_calls']}")
            add("backfill", f"429 responses ({t})", m["server_429"], "0", m["server_429"] == config.TARGET_429)
        m = b["inprocess"]["median"]
        add("backfill", "bars/s end to end (in-process)", round(m["bars_per_s"]), f">= {config.TARGET_BARS_PER_S:,}",
            m["bars_per_s"] >= config.TARGET_BARS_PER_S,
            "" if large else "target is set for --scale large")
        if "loopback-process" in b:
            m = b["loopback-process"]["median"]
            add("backfill", "bars/s end to end (simulator in its own process)", round(m["bars_per_s"]),
                f">= {config.TARGET_BARS_PER_S:,}", m["bars_per_s"] >= config.TARGET_BARS_PER_S,
                "informational: the API on another core, as in production")
        growth = b["memory"]["growth_last_vs_previous"]
        pts = b["memory"]["points"]
        if growth is not None:
            add("backfill", f"peak RSS growth, {pts[-1]['years']}y vs {pts[-2]['years']}y", growth,
                f"<= {config.TARGET_MEMORY_GROWTH}", growth <= config.TARGET_MEMORY_GROWTH,
                " / ".join(f"{p['years']}y {p['peak_rss_mb']:.0f} MB" for p in pts))
    if "nightly" in sc:
        for name, v in sc["nightly"].items():
            m = v["median"]
            if m.get("quota"):
                add("nightly", f"429 responses ({name}, enforced)", m["server_429"], "0", m["server_429"] == 0,
                    f"{m['calls']} calls at {m['quota']['calls_per_window']}/s (60x time compression)")
        m = sc["nightly"]["inprocess"]["median"]
        for plan, q in m["quota_plans"].items():
            add("nightly", f"fits one hour at plan {plan}", q["fits_window"], "yes", None,
                f"{m['calls']} calls = {q['quota_minutes']:.1f} min of quota")
    if "queries" in sc:
        for name, q in sc["queries"]["median"]["queries"].items():
            if "p99_ms" not in q:
                continue
            tgt = q.get("target_p99_ms")
            add("queries", f"{name} p99 ms", q["p99_ms"], "-" if tgt is None else f"<= {tgt:g}",
                None if tgt is None else q["p99_ms"] <= tgt, f"{q['rows']:,} rows, p50 {q['p50_ms']:.2f} ms")
    if "baseline" in sc:
        c = sc["baseline"]["comparison"]
        add("baseline", "speedup vs seed article (bars/s, same work)", c["speedup_bars_per_s"],
            f">= {config.TARGET_SPEEDUP:g}x", c["speedup_bars_per_s"] >= config.TARGET_SPEEDUP,
            f"{c['call_ratio']}x fewer calls")
        at_plan = c[f"speedup_at_{config.CONFIGURED_PLAN}"]
        add("baseline", f"speedup vs seed article at plan {config.CONFIGURED_PLAN} (quota-bound wall)", at_plan,
            f">= {config.TARGET_SPEEDUP:g}x", at_plan >= config.TARGET_SPEEDUP,
            "wall = max(local wall, calls / plan rate)")
    if "lakehouse" in sc:
        lakehouse_targets(sc["lakehouse"], add)
    if "golden" in sc:
        g = sc["golden"]["goal"]
        growth = " / ".join(f"{c['sessions']} sessions {c['bars_per_s_best'] / 1e6:.2f}M"
                            for c in sc["golden"]["growth_with_sessions"])
        sources = " / ".join(f"{c['sources']} source(s) {c['bars_per_s_best'] / 1e6:.2f}M"
                             for c in sc["golden"]["growth_with_sources"])
        add("golden", f"arbitration bars/s, {g['symbols']:,} x {g['sessions']} x 2 sources", g["bars_per_s_best"],
            f">= {g['target_bars_per_s']:,}", g["verdict"] == "PASS" if g["symbols"] >= 5000 else None,
            f"{growth}; {sources}" + ("" if g["symbols"] >= 5000 else "; the target is set at 5,000 symbols"))
    if "userpath" in sc:
        _userpath_targets(sc["userpath"], results["scale"], add)
    if "deliveries" in sc:
        d = sc["deliveries"]
        for name, c in d["cases"].items():
            add("deliveries", f"delivery rows/s, {name}, {d['symbols']:,} x {d['sessions']} ({c['rows']:,} rows)",
                c["rows_per_s_best"], "report", None,
                f"median {c['rows_per_s_median']:,}; {c['files']} files, {c['bytes'] / 1e6:.1f} MB; re-delivery "
                f"unchanged {c['unchanged_median_s']:.2f} s, one month restated {c['restated_month_median_s']:.2f} s")
    if "api" in sc:
        a = sc["api"]
        for name, best in a["goal"]["highest_rate_by_variant"].items():
            add("api", f"highest req/s with p99 <= 50 ms, {name}", best, ">= 500",
                None if a["lake"]["symbols"] < 500 else (best or 0) >= 500,
                f"{a['lake']['symbols']:,} symbols x {a['lake']['sessions']} sessions, {a['workers']} workers"
                + ("" if a["lake"]["symbols"] >= 500 else "; the target is set at 500+ symbols"))
    return out


def lakehouse_targets(lh: dict, add) -> None:
    """Issue 16's figures: query p99 (lake; native beside it), fresh attach, nightly growth, bytes, nights."""
    limit = config.TARGET_LAKE_QUERY_P99_MS
    for backend, r in lh["queries"].items():
        for shape in ("symbol_history", "cross_section"):
            m = r["lake"][shape]
            native = r.get("native", {}).get(shape)
            note = f"{m['rows']:,} rows, p50 {m['p50_ms']:.1f} ms, aim {config.TARGET_LAKE_QUERY_AIM_MS:g}"
            if native:
                note += f"; native DuckDB p50/p99 {native['p50_ms']:.1f}/{native['p99_ms']:.1f} ms"
            add("lakehouse", f"{shape} p99 ms ({backend}, {r['rows']:,} rows)", m["p99_ms"], f"<= {limit:g}",
                m["p99_ms"] <= limit, note)
        f = r["fresh_process"]
        add("lakehouse", f"fresh process connect + first query ms ({backend})", f["attach_and_first_query_ms"],
            f"<= {config.TARGET_FRESH_ATTACH_MS:g}", f["attach_and_first_query_ms"] <= config.TARGET_FRESH_ATTACH_MS,
            f"connect {f['attach_ms']:.0f} + query {f['first_query_ms']:.0f} ms; "
            f"imports apart {f['import_ms']:.0f} ms (+ pandas for .df() {f.get('pandas_import_ms', 0):.0f} ms); "
            f"whole process {f['process_wall_ms']:.0f} ms")
        if "bytes" in r:
            b = r["bytes"]
            add("lakehouse", "bytes on disk / one zstd Parquet copy", b["ratio"], f"<= {config.TARGET_LAKE_BYTES:g}",
                b["ratio"] <= config.TARGET_LAKE_BYTES,
                f"lake {b['lake_data'] / 1e6:.1f} MB + catalog {b['catalog'] / 1e6:.2f} MB vs "
                f"{b['one_zstd_parquet_copy'] / 1e6:.1f} MB")
    if "nightly" in lh:
        n = lh["nightly"]
        sizes = n["sizes"]
        add("lakehouse", f"nightly commit, {sizes[-1]['lake_rows']:,}-row lake / {sizes[0]['lake_rows']:,}-row",
            n["largest_vs_smallest"], f"<= {config.TARGET_NIGHTLY_GROWTH:g}",
            n["largest_vs_smallest"] <= config.TARGET_NIGHTLY_GROWTH,
            " / ".join(f"{x['lake_rows'] / 1e6:.1f}M rows {x['nightly_s']:.2f}s" for x in sizes))
    if "nights" in lh:
        g = lh["nights"]
        first, last = g["first_night"]["symbol_recent"], g["last_night"]["symbol_recent"]
        add("lakehouse", f"symbol's latest {g['history_sessions']} sessions, p99 after {g['nights']} nights / after 1",
            g["recent_p99_last_vs_first"], f"<= {config.TARGET_NIGHTS_SLOWDOWN:g}",
            g["recent_p99_last_vs_first"] <= config.TARGET_NIGHTS_SLOWDOWN,
            f"p50 {first['p50_ms']:.1f} -> {last['p50_ms']:.1f} ms, p99 {first['p99_ms']:.1f} -> {last['p99_ms']:.1f} "
            f"ms (the same rows' count); whole history {g['first_night']['symbol_history']['p99_ms']:.1f} -> "
            f"{g['last_night']['symbol_history']['p99_ms']:.1f} ms p99 for twice the rows; maintenance every "
            f"{g['maintenance_every']} nights")


def render_deliveries(d: dict) -> list[str]:
    rows = [[name, c["format"], c["currency"], _n(c["rows"]), _n(c["files"]), _n(c["bytes"] / 1e6, 1),
             _n(c["first_best_s"], 2), _n(c["rows_per_s_best"]), _n(c["rows_per_s_median"]),
             _n(c["unchanged_median_s"], 2), _n(c["restated_month_median_s"], 2)] for name, c in d["cases"].items()]
    return ["", f"Deliveries (issue 19) — {d['symbols']:,} symbols x {d['sessions']} sessions ({d['months']} months, "
                f"one region), {len(d['fields'])} fields, each case into a fresh target",
            _table(["case", "format", "currency", "rows", "files", "MB", "first s", "rows/s best", "rows/s median",
                    "unchanged s", "1 month restated s"], rows)]


def render_lakehouse(lh: dict) -> list[str]:
    rows = []
    for backend, r in lh["queries"].items():
        for engine in ("lake", "native"):
            if engine not in r:
                continue
            s, c = r[engine]["symbol_history"], r[engine]["cross_section"]
            rows.append([f"{engine} ({backend})" if engine == "lake" else "native DuckDB table", _n(r["rows"]),
                         _n(s["p50_ms"], 1), _n(s["p99_ms"], 1), _n(c["p50_ms"], 1), _n(c["p99_ms"], 1),
                         _n(r["fresh_process"]["attach_and_first_query_ms"], 0) if engine == "lake" else "-",
                         _n(r["files"]["files"]) if engine == "lake" else "-"])
    out = ["", "6. Lakehouse (issue 16) — lake written month by month through store.commit, then compacted; "
               "queries fetched as DataFrames",
           _table(["engine", "rows", "symbol p50", "symbol p99", "cross p50", "cross p99", "fresh ms", "files"], rows)]
    if "nightly" in lh:
        out += ["", "   Nightly (4 regions, 1 session each, store.commit of the current month) versus lake size",
                _table(["lake rows", "symbols/region", "sessions", "build s", "nightly s", "files"],
                       [[_n(x["lake_rows"]), _n(x["symbols_per_region"]), _n(x["sessions"]), _n(x["build_s"], 1),
                         _n(x["nightly_s"], 3), _n(x["files_after"])] for x in lh["nightly"]["sizes"]])]
    if "nights" in lh:
        g = lh["nights"]
        out += ["", f"   {g['nights']} nights of one-session appends, maintenance every {g['maintenance_every']}",
                _table(["after", "symbol p50", "symbol p99", "cross p50", "cross p99", "files"],
                       [[m["after"], _n(m["symbol_history"]["p50_ms"], 1), _n(m["symbol_history"]["p99_ms"], 1),
                         _n(m["cross_section"]["p50_ms"], 1), _n(m["cross_section"]["p99_ms"], 1),
                         _n(m["files"]["files"])] for m in (g["first_night"], g["last_night"])])]
    return out


def _userpath_targets(u: dict, scale: dict, add) -> None:
    c, cli = u["comparison"], u["cli"]["median"]
    small = scale["userpath_symbols"] >= 500 and scale["userpath_sessions"] >= 1000
    add("userpath", f"CLI materialize wall / seed article ({cli['symbols']:,} x {cli['sessions']:,})",
        c["cli_wall_vs_seed"], f"<= {config.TARGET_USERPATH_CLI_RATIO:g}x",
        c["cli_wall_vs_seed"] <= config.TARGET_USERPATH_CLI_RATIO,
        f"{cli['wall_s']:.1f}s vs {u['seed_article']['median']['wall_s']:.1f}s; same bars: {_n(c['same_bars'])}"
        + ("" if small else "; the target is set for 500 x 1,000 (--scale small)"))
    if "large" in u:
        m = u["large"]["median"]
        add("userpath", f"CLI materialize {m['symbols']:,} x {m['sessions']:,} ({m['sessions'] // 252} y) wall s",
            m["wall_s"], f"<= {config.TARGET_USERPATH_LARGE_S:g}", m["wall_s"] <= config.TARGET_USERPATH_LARGE_S,
            f"{m['bars_stored']:,} bars, {m['partitions']:,} partitions, run {m['run_s']:.0f}s, "
            f"step {_n(m['step_s'], 0)}s")
    n, b = u["dev"]["median"]["nightly"], u["dev"]["median"]["backfill"]
    add("userpath", "nightly Materialize under dagster dev, launch -> SUCCESS s", n["launch_to_success_s"],
        f"<= {config.TARGET_NIGHTLY_LAUNCH_S:g}", n["launch_to_success_s"] <= config.TARGET_NIGHTLY_LAUNCH_S,
        f"queued {n['queued_s']:.1f}s, run {n['run_s']:.1f}s (no step running {_n(n.get('outside_steps_s'), 1)}s), "
        f"step {_n(n['step_s'], 2)}s")
    add("userpath", "UI backfill end to end s (informational)", b["e2e_s"], "-", None,
        f"run {b['run_s']:.1f}s, daemon overhead {b['daemon_overhead_s']:.1f}s")


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths,
                                                                                            strict=True)))
    sep = "  ".join("-" * w for w in widths)
    body = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
            for r in rows]
    return "\n".join([line, sep, *body])


def render_api(a: dict) -> list[str]:
    rows = [[name, _n(st["rate"], 0), _n(st["achieved_rps"], 0), _n(st["p50_ms"], 1), _n(st["p99_ms"], 1),
             _n(st["hit_ratio"], 2), _n(st["unsent"]), ", ".join(f"{k}: {v}" for k, v in st["statuses"].items())]
            for name, v in a["variants"].items() for st in v["steps"]]
    best = ", ".join(f"{k} {_n(v, 0)}" for k, v in a["goal"]["highest_rate_by_variant"].items())
    return ["", f"Read API — {a['lake']['rows']:,} rows ({a['lake']['symbols']:,} symbols x {a['lake']['sessions']} "
                f"sessions), {a['workers']} workers, {a['clients']} clients, {a['duration_s']} s per rate; "
                f"{a['query']}",
            _table(["variant", "rate", "achieved", "p50 ms", "p99 ms", "hits", "unsent", "statuses"], rows),
            f"   highest rate with p99 <= 50 ms: {best}; goal {a['goal']['target']}: {a['goal']['verdict']}"]


def render(results: dict) -> str:
    sc, scale, meta = results["scenarios"], results["scale"], results["meta"]
    mach = meta["machine"]
    parts = [
        f"ticklake benchmarks — scale {scale['name']}, median of {meta['runs']} run(s), "
        f"{mach['cpu_count']} CPUs, Python {mach['python']}, duckdb {mach['packages']['duckdb']}, "
        f"pandas {mach['packages']['pandas']}, pyarrow {mach['packages']['pyarrow']}; took {meta['elapsed_s']}s; "
        f"load average at start {_load(mach.get('load_average_1_5_15'))}, end {_load(meta.get('load_average_at_end'))}",
    ]
    plans = list(config.PLANS)
    if "backfill" in sc:
        b = sc["backfill"]
        rows = []
        for t in _transports(b):
            m = b[t]["median"]
            rows.append([t, _n(m["symbols"]), _n(m["sessions"]), _n(m["bars"]), _n(m["wall_s"], 2),
                         _n(m["bars_per_s"]), _n(m["sim_cpu_s"], 2), _n(m["pipeline_bars_per_s"]),
                         _n(m["peak_rss_mb"]), _n(m["calls"]), _n(m["min_calls"]),
                         _n(m["call_ratio"], 3), _n(m["server_429"]),
                         *(_n(m["quota"][p]["quota_minutes"], 1) for p in plans)])
        parts += ["", f"1. Backfill — {config.BACKFILL_REGION}, {scale['backfill_symbols']:,} symbols x "
                      f"{scale['backfill_sessions']:,} sessions ({scale['backfill_years']} y); calls include "
                      "the symbol list; quota = minutes the plan alone imposes",
                  _table(["transport", "symbols", "sessions", "bars", "wall s", "bars/s", "sim CPU s",
                          "excl. sim bars/s", "peak MB", "calls",
                          "min", "ratio", "429", *(f"{p} min" for p in plans)], rows)]
        pts = b["memory"]["points"]
        parts += ["", "   Peak memory versus history length (in-process, fresh process each)",
                  _table(["years", "symbols", "sessions", "bars", "peak MB", "bars/s"],
                         [[_n(p["years"], 1), _n(p["symbols"]), _n(p["sessions"]), _n(p["bars"]),
                           _n(p["peak_rss_mb"]), _n(p["bars_per_s"])] for p in pts])]
    if "nightly" in sc:
        rows = []
        for name, v in sc["nightly"].items():
            m = v["median"]
            rows.append([name, _n(m["symbols"]), _n(m["bars"]), _n(m["wall_s"], 2), _n(m["sim_cpu_s"], 2),
                         _n(m["calls"]),
                         _n(m["min_calls"]), _n(m["server_429"]),
                         *(("yes " if m["quota_plans"][p]["fits_window"] else "NO ")
                           + f"({m['quota_plans'][p]['quota_minutes']:.1f}m)" for p in plans)])
        parts += ["", f"2. Nightly refresh — {', '.join(config.NIGHTLY_REGIONS)}, last completed session each, "
                      f"{scale['nightly_symbols']:,} symbols/region; per plan: fits a 1-hour window (quota minutes)",
                  _table(["transport", "symbols", "bars", "wall s", "sim CPU s", "calls", "min", "429",
                          *(f"{p}" for p in plans)], rows)]
    if "queries" in sc:
        q = sc["queries"]["median"]
        rows = [[name, v.get("description", ""), _n(v.get("rows")), _n(v.get("p50_ms"), 2), _n(v.get("p99_ms"), 2),
                 _n(v.get("target_p99_ms"), 0)] for name, v in q["queries"].items()]
        parts += ["", f"3. Analyst queries — the lake read-only (ticklake.connect), {q['warehouse_rows']:,} rows, "
                      f"result fetched as {q['fetch']}, {scale['query_iterations']} timed iterations per run",
                  _table(["query", "what", "rows", "p50 ms", "p99 ms", "target p99"], rows)]
    if "baseline" in sc:
        bl = sc["baseline"]
        c = bl["comparison"]
        rows = []
        for name in ("seed_article", "ticklake"):
            m = bl[name]["median"]
            rows.append([name, _n(m["symbols"]), _n(m["bars"]), _n(m["wall_s"], 2), _n(m["bars_per_s"]),
                         _n(m["calls"]), _n(m["peak_rss_mb"]), _n(c[f"wall_at_{config.CONFIGURED_PLAN}_s"][name], 1)])
        parts += ["", "4. Baseline — the seed article (requests per symbol, /stock/kline, SQLite table per code, "
                      "row-by-row INSERT) vs ticklake, loopback, same symbols and sessions",
                  _table(["approach", "symbols", "bars", "wall s", "bars/s", "calls", "peak MB",
                          f"wall s at {config.CONFIGURED_PLAN}"], rows),
                  f"   ticklake/seed: {c['speedup_bars_per_s']}x bars/s, {c['speedup_wall']}x wall, "
                  f"{c['call_ratio']}x fewer calls, {c[f'speedup_at_{config.CONFIGURED_PLAN}']}x faster at plan "
                  f"{config.CONFIGURED_PLAN}; same bars: {_n(c['same_bars'])}; the seed article would spend "
                  f"{c['full_universe_calls_seed_article']:,} calls on the full {scale['backfill_symbols']:,}-symbol "
                  f"backfill ({c['full_universe_quota_seed_article'][config.CONFIGURED_PLAN]['quota_minutes']:.0f} "
                  f"min at {config.CONFIGURED_PLAN})"]
    if "lakehouse" in sc:
        parts += render_lakehouse(sc["lakehouse"])
    if "userpath" in sc:
        parts += render_userpath(sc["userpath"])
    if "deliveries" in sc:
        parts += render_deliveries(sc["deliveries"])
    if "api" in sc:
        parts += render_api(sc["api"])
    t = results.get("targets") or []
    if t:
        parts += ["", "Targets (issue #3)",
                  _table(["scenario", "metric", "value", "target", "status", "note"],
                         [[x["scenario"], x["metric"], _n(x["value"], 3) if isinstance(x["value"], float)
                           else _n(x["value"]), x["target"], x["status"], x["note"]] for x in t])]
    return "\n".join(parts)


def render_userpath(u: dict) -> list[str]:
    """Scenario 5's tables: the CLI, the UI backfill, the nightly, and the instance's latency settings."""
    seed, c = u["seed_article"]["median"], u["comparison"]
    cli_rows = []
    for label, m in (("cli", u["cli"]["median"]), *((("cli large", u["large"]["median"]),) if "large" in u else ())):
        cli_rows.append([label, _n(m["symbols"]), _n(m["sessions"]), _n(m["partitions"]), _n(m["bars_stored"]),
                         _n(m["wall_s"], 1), _n(m["startup_s"], 1), _n(m["queued_s"], 1),
                         _n(m.get("planned_events_s"), 1), _n(m["run_s"], 1), _n(m["step_s"], 1),
                         _n(m.get("step_work_s"), 1), _n(m.get("materialization_events_s"), 1),
                         _n(m["steps_s"], 1), _n(m["teardown_s"], 1), _n(m["events"])])
    cli_rows.append(["seed article", _n(seed["symbols"]), _n(seed["sessions"]), "-", _n(seed["bars"]),
                     _n(seed["wall_s"], 1), *["-"] * 10])
    cli = u["cli"]["median"]
    d = u["dev"]["median"]
    b, n = d["backfill"], d["nightly"]
    out = ["", "5. User path — separate processes against `python -m itick_sim` on loopback, fresh homes; "
               "CLI = `dagster asset materialize --partition-range` (one single-run backfill)",
           _table(["path", "symbols", "sessions", "partitions", "bars", "wall s", "to run s", "to start s",
                   "planned ev s", "run s", "step s", "work s", "mat. ev s", "all steps s", "exit s", "events"],
                  cli_rows),
           f"   before it: securities {cli['securities_s']:.1f}s (`dagster asset materialize --select securities`); "
           f"a fresh `import definitions` takes {cli['definitions_import_s']:.1f}s",
           f"   CLI / seed article: {c['cli_wall_vs_seed']}x wall, seed {c['seed_bars_per_s_vs_cli']}x the bars/s; "
           f"same window: {_n(c['same_window'])}, same bars: {_n(c['same_bars'])} ({c['cli_bars']:,} vs "
           f"{c['seed_bars']:,})",
           "",
           f"   Under `dagster dev` (ready in {d['dev_ready_s']:.1f}s): UI backfill of the same range "
           "(launchPartitionBackfill as the UI sends it), then the nightly's Materialize (launchRun)",
           _table(["launch", "partitions", "runs", "end to end s", "pickup s", "to start s", "run s", "step s",
                   "work s", "done seen s", "daemon overhead s", "events"],
                  [["UI backfill", _n(b["partitions"]), _n(b["runs"]), _n(b["e2e_s"], 1), _n(b["pickup_s"], 1),
                    _n(b["queued_s"], 1), _n(b["run_s"], 1), _n(b["step_s"], 1), _n(b.get("step_work_s"), 1),
                    _n(b["completion_s"], 1), _n(b["daemon_overhead_s"], 1), _n(b["events"])],
                   [f"nightly {n['partition']}", "1", "1", _n(n["launch_to_success_s"], 1), "-",
                    _n(n["queued_s"], 1), _n(n["run_s"], 1), _n(n["step_s"], 1), _n(n.get("step_work_s"), 1),
                    _n(n["seen_done_s"], 1), _n(round(n["launch_to_success_s"] - n["run_s"], 3), 1),
                    _n(n["events"])]]),
           "",
           "   Instance settings that set the daemon/launch latency (this run's instance; read in "
           "site-packages/dagster/...)",
           _table(["setting", "value", "default", "dagster.yaml", "read in"],
                  [[r["setting"], _n(r["value"]), r["default"], r["dagster_yaml"], r["read_in"]]
                   for r in u["instance_settings"]])]
    return out
