"""A scripted tour of the Dagster UI and the Data Docs in headless Chromium (issue 20, items 2 and 8).

    .venv/bin/python scripts/ui_tour.py docs    # the Data Docs, offline: every validation listed, a page readable
    .venv/bin/python scripts/ui_tour.py tour    # the UI pages after `python3 dev.py demo`, then the Data Docs

Needs Debian's Chromium (`apt-get install chromium`, used through playwright's `executable_path`) and playwright in
the venv (`.venv/bin/pip install playwright`; a dev tool, not in the lock). Reads the demo's home (TICKLAKE_HOME,
default `data/`) and instance (DAGSTER_HOME, default `data/dagster`). Every request that would leave loopback is
refused and counted, and the Data Docs must make none: that is what "offline" means here (run it under
`unshare -rn sh -c 'ip link set lo up; ...'` for a machine with no network at all). Each page's assertion names what
it must show; screenshots go to docs/screenshots/.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if urllib.request.urlopen(url, timeout=2).status == 200:
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


@contextlib.contextmanager
def _browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    refused: list[str] = []

    def only_loopback(route) -> None:
        host = urlparse(route.request.url).hostname or ""
        if route.request.url.startswith(("data:", "blob:")) or host in LOOPBACK:
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort("internetdisconnected")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        context.route("**/*", only_loopback)
        try:
            yield context, refused
        finally:
            browser.close()


@contextlib.contextmanager
def _docs_server(home: Path) -> Iterator[str]:
    """The site served the way `python -m ticklake.expectations serve` serves it, on a free port."""
    import functools
    import http.server

    from ticklake.quality import expectations

    site = expectations.docs_root(home) / expectations.SITE
    expectations.make_offline(expectations.docs_root(home))
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def check_docs(context, refused: list[str], base: str, home: Path, shot: bool) -> list[str]:
    """The index lists every stored validation; the first validation page shows its expectations; no request left
    loopback."""
    from ticklake.quality import expectations

    stored = sorted((expectations.docs_root(home) / "uncommitted" / "validations").rglob("*.json"))
    page = context.new_page()
    page.goto(f"{base}/index.html", wait_until="load")
    rows = page.locator("#ticklake-validations tbody tr")
    assert rows.count() == len(stored) > 0, f"index lists {rows.count()} validations, {len(stored)} stored"
    if shot:
        page.screenshot(path=str(SHOTS / "data_docs_index.png"), full_page=False)
    target = page.locator("#ticklake-validations a", has_text="klines_daily.expectations")
    (target.first if target.count() else rows.first.locator("a")).click()
    page.wait_for_load_state("load")
    text = page.inner_text("body")
    evaluated = int(text.split("Evaluated Expectations", 1)[1].split()[0])
    shown = text.count("must ")  # every rendered expectation reads "values must ...", "... must be unique ..."
    assert 0 < evaluated <= shown, f"{shown} expectations shown of {evaluated} evaluated"
    expectation_rows = shown
    if shot:
        page.get_by_text("Table-Level Expectations").first.scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / "great_expectations.png"), full_page=False)
    assert not refused, f"requests that would have left loopback: {refused[:5]}"
    return [f"Data Docs: index lists {len(stored)} validations; {page.url.split('/')[-1]} shows "
            f"{expectation_rows} expectation rows; 0 requests left loopback"]


def docs(home: Path, shot: bool) -> list[str]:
    with _docs_server(home) as base, _browser() as (context, refused):
        return check_docs(context, refused, base, home, shot)


def tour(home: Path, dagster_home: Path) -> list[str]:
    """Start `python3 dev.py ui` on free ports, visit the pages a newcomer visits, assert what each shows."""
    port, docs_port = _free_port(), _free_port()
    env = {**os.environ, "TICKLAKE_HOME": str(home), "DAGSTER_HOME": str(dagster_home),
           "TICKLAKE_DATA_DOCS_URL": f"http://127.0.0.1:{docs_port}"}
    log = (dagster_home / "ui_tour.log").open("w")
    proc = subprocess.Popen([sys.executable, str(ROOT / "dev.py"), "ui", "-p", str(port)], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    seen: list[str] = []
    try:
        _wait(f"{base}/server_info", 120)
        _wait(f"http://127.0.0.1:{docs_port}/index.html", 30)
        with _browser() as (context, refused):
            page = context.new_page()
            page.set_default_timeout(45_000)

            def visit(path: str, must_show: list[str], shot: str, tab: str | None = None,
                      must_not_show: tuple[str, ...] = ()) -> None:
                page.goto(f"{base}{path}", wait_until="domcontentloaded")
                skip = page.get_by_role("button", name="Skip")  # "Join the Dagster community", on a first visit
                with contextlib.suppress(Exception):
                    skip.wait_for(state="visible", timeout=4000)
                    skip.click()
                if tab:
                    page.get_by_role("tab", name=tab).or_(page.get_by_text(tab, exact=True)).first.click()
                try:
                    for text in must_show:
                        page.get_by_text(text, exact=False).first.wait_for(state="visible")
                except Exception as error:
                    page.screenshot(path=str(dagster_home / "ui_tour_failed.png"))
                    failed = dagster_home / "ui_tour_failed.png"
                    raise AssertionError(f"{path} does not show {text!r} (see {failed})") from error
                time.sleep(1.5)  # let the page settle before the screenshot
                body = page.inner_text("body")
                shown = [t for t in must_not_show if t.lower() in body.lower()]
                if shown:
                    page.screenshot(path=str(dagster_home / "ui_tour_failed.png"))
                    raise AssertionError(f"{path} shows {shown}")
                page.screenshot(path=str(SHOTS / shot))
                seen.append(f"{path}: shows {', '.join(must_show)} -> docs/screenshots/{shot}")

            visit("/asset-groups", ["market_data", "reference_data", "operations"], "asset_graph.png")
            visit("/locations/ticklake/asset-groups/operations", ["lake_partitions", "reconciliation_log",
                                                                  "quarantine", "klines_daily_history"],
                  "operations_group.png", tab="List")
            latest, stored = _partitions(home)
            visit("/assets/klines_daily?view=partitions", [f"Materialized ({stored})", "Missing", latest.split("|")[0]],
                  "partitions.png")
            # the month in progress: its own figures, and the job that wrote it (not __ASSET_JOB, not None)
            visit("/assets/klines_daily?view=partitions&partition=" + latest.replace("|", "%7C"),
                  ["nightly_refresh", "complete", "data_lag_hours", "run_api_latency_ms", "sessions_not_closed"],
                  "partition_now.png", must_not_show=("__ASSET_JOB",))
            visit("/assets/klines_daily?view=checks", ["month_complete", "klines_daily_expectations",
                                                        "stored_rows_match_lake"], "klines_checks.png",
                  must_not_show=("Not evaluated",))
            visit("/automation", ["nightly_us", "warehouse_checks_daily", "reconciliation_us"], "automation.png")
            visit("/locations/ticklake/jobs/nightly_refresh/runs", ["nightly_refresh", "Success"],
                  "nightly_refresh_runs.png", must_not_show=("No runs found",))
            seen += check_docs(context, refused, f"http://127.0.0.1:{docs_port}", home, shot=True)
    finally:
        proc.terminate()  # dev.py stops its webserver, daemon and docs server
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    return seen


def _partitions(home: Path) -> tuple[str, int]:
    """The latest klines partition stored (`2026-12|US`) and how many are."""
    import ticklake

    with ticklake.connect(home) as con:
        rows = con.execute("SELECT DISTINCT partition, region FROM lake_partitions WHERE dataset = 'klines_daily' "
                           "ORDER BY 1 DESC, 2 DESC").fetchall()
    return f"{rows[0][0]}|{rows[0][1]}", len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["docs", "tour"])
    parser.add_argument("--no-screenshots", action="store_true", help="docs: assert only")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from ticklake import settings

    home = settings.home()
    dagster_home = Path(os.environ.get("DAGSTER_HOME") or home / "dagster")
    SHOTS.mkdir(parents=True, exist_ok=True)
    lines = docs(home, not args.no_screenshots) if args.command == "docs" else tour(home, dagster_home)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
