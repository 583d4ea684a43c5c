"""The Data Docs read with no network and are served over http (issue 20, item 2): `make_offline` strips remote
scripts and styles, swaps GX's remote logo for the packaged one and lists every stored validation in the index;
`python -m ticklake.expectations serve` serves the site on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ticklake.quality import expectations

CDN = ('<link rel="stylesheet" href="https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css">'
       '<script src="https://code.jquery.com/jquery-3.7.1.min.js"></script>')
LOGO = '<img src="https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png?d=1&dataContextId=x">'


def _site(home: Path) -> Path:
    root = expectations.docs_root(home)
    site = root / expectations.SITE
    for suite, ok in (("klines_daily.expectations", True), ("securities.expectations", False)):
        table, kind = suite.split(".")
        rel = Path(table) / kind / "__none__" / f"2024062{int(ok)}T000000Z" / f"ticklake_warehouse-{suite}"
        (root / "uncommitted" / "validations" / rel).parent.mkdir(parents=True)
        (root / "uncommitted" / "validations" / f"{rel}.json").write_text(json.dumps({
            "suite_name": suite, "success": ok, "meta": {"run_time": f"2024-06-2{int(ok)}T00:00:00+00:00"},
            "statistics": {"evaluated_expectations": 3, "unsuccessful_expectations": 0 if ok else 1}}))
        page = site / "validations" / f"{rel}.html"
        page.parent.mkdir(parents=True)
        page.write_text(f"<html><head>{CDN}</head><body>{LOGO}<p>values must never be null</p></body></html>")
    (site / "index.html").write_text(f"<html><head>{CDN}</head><body>{LOGO}<table data-toggle=\"table\"></table>"
                                     "</body></html>")
    return site


def test_make_offline_lists_every_validation_and_loads_nothing_remote(tmp_path):
    site = _site(tmp_path)
    assert expectations.make_offline(expectations.docs_root(tmp_path)) == 3
    assert expectations.make_offline(expectations.docs_root(tmp_path)) == 0  # idempotent
    index = (site / "index.html").read_text()
    assert "https://" not in index
    assert index.count('<tr><td><a href="validations/') == 2
    assert index.index("klines_daily.expectations") < index.index("securities.expectations")  # newest first
    assert '<td class="failed">failed</td>' in index
    assert 'src="static/images/logo-long.png"' in index
    page = next((site / "validations").rglob("*klines_daily.expectations.html")).read_text()
    assert "https://" not in page
    assert 'href="../../../../../static/styles/ticklake_offline.css"' in page


@pytest.mark.slow
def test_serve_answers_over_http_on_loopback(tmp_path):
    _site(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "TICKLAKE_HOME": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "ticklake.expectations", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=2).read().decode()
                break
            except OSError:
                assert time.monotonic() < deadline
                assert proc.poll() is None
                time.sleep(0.3)
        assert body.count('<tr><td><a href="validations/') == 2
        assert "https://" not in body
    finally:
        proc.terminate()
        proc.wait(timeout=10)
