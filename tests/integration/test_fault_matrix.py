"""The fault matrix (issue #9, item 4): the index of every fault the pipeline must survive. Each row drives the real
client over loopback HTTP against the simulator (or a real process), asserts what is stored before and after, and
that the error is clear. Rows already covered elsewhere name that test in a comment instead of repeating it.

Shape of a row: June is stored from a clean simulator ("before"); then May and June are ingested from a simulator
with the fault. A fault the client recovers from must leave exactly what a fault-free run stores; a fault it cannot
recover from must fail with a clear error and leave "before" untouched.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import multiprocessing
import os
import signal
import subprocess
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import orjson
import pandas as pd
import pytest

from itick_sim import SimSettings, Simulator, serve
from resources.itick import ITickResource
from resources.storage import StorageResource
from ticklake.datasets.context import RunContext
from ticklake.datasets.klines import ingest_daily_bars, universe
from ticklake.datasets.security_master import refresh_securities
from ticklake.dictionary import KLINES_DAILY
from ticklake.sources.itick.errors import ITickAuthError, ITickProtocolError, ITickRequestError
from ticklake.storage import CatalogError, LakeStorageError
from ticklake.storage.frames import fetch_frame

pytestmark = [pytest.mark.integration, pytest.mark.slow]
NOW = dt.datetime(2024, 6, 28, 23, 0, tzinfo=dt.UTC)
TOKEN = "test-token-not-a-secret"
JUNE = [dt.date(2024, 6, d) for d in range(1, 29)]
MAY_JUNE = [dt.date(2024, 5, d) for d in range(1, 32)] + JUNE
LINEAGE = ("ingested_at", "run_id")
KEPT = [c for c in KLINES_DAILY.columns if c not in LINEAGE]
BASE = {"now": NOW, "symbols_per_region": 8, "regions": ("US",)}


# ------------------------------------------------------------------ stored data
def stored(home: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(klines_daily rows, their lake_partitions rows), sorted, lineage columns left out (they differ run to run)."""
    with _storage(home).lakehouse().reader() as con:
        bars = fetch_frame(con.execute("SELECT * FROM klines_daily"))
        status = fetch_frame(con.execute(
            "SELECT region, partition, source, rows, symbols, sessions, sessions_with_rows, complete, missing_codes "
            "FROM lake_partitions WHERE dataset = 'klines_daily' ORDER BY ALL"))
    return _canonical(bars), status


def _canonical(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame[KEPT].astype(str).sort_values(["region", "symbol", "trade_date"])
    return out.reset_index(drop=True)


def assert_stored(home: Path, expected: tuple[pd.DataFrame, pd.DataFrame | None]) -> None:
    """The bars are the expected ones, and so are their status rows (or, where `expected` gives none, the status rows
    count exactly the stored bars)."""
    bars, status = stored(home)
    pd.testing.assert_frame_equal(bars, expected[0])
    if expected[1] is not None:
        pd.testing.assert_frame_equal(status, expected[1])
    assert int(status["rows"].sum()) == len(bars)


# ------------------------------------------------------------------ a store, a run
def _storage(home: Path) -> StorageResource:
    return StorageResource(home=str(home))


def _source(url: str, home: Path, **overrides):
    return ITickResource(base_url=url, token=TOKEN, home=str(home),
                         **{"plan": "100000", "backoff_base_s": 0.05, **overrides}).source()


def ingest(url: str, home: Path, dates: list[dt.date], run_id: str, lake=None, client_home: Path | None = None,
           **overrides):
    """One real ingest of US daily bars for `dates` through the iTick source at `url` (into `lake` when given: a
    lake this process already has open; the client's quota state under `client_home` when given)."""
    lake = lake or _storage(home).lakehouse()
    return ingest_daily_bars(RunContext(lake, run_id, NOW, _source(url, client_home or home, **overrides)),
                             "US", dates=dates, codes=universe(lake, "US"))


def prepare(home: Path, dates: list[dt.date]) -> None:
    """Security master and `dates` stored from a clean simulator."""
    with serve(Simulator(SimSettings(**BASE))) as server:
        storage = _storage(home)
        refresh_securities(RunContext(storage.lakehouse(), "ref", NOW, _source(server.url, home)), "US")
        ingest(server.url, home, dates, "before")


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """What fault-free runs store: June alone, and May with June."""
    out = {}
    for name, dates in (("june", JUNE), ("may_june", MAY_JUNE)):
        home = tmp_path_factory.mktemp(f"clean-{name}")
        prepare(home, dates)
        out[name] = stored(home)
    return out


@pytest.fixture
def home(tmp_path) -> Path:
    home = tmp_path / "home"
    prepare(home, JUNE)
    return home


# ------------------------------------------------------------------ transport faults (simulator fault_rate)
# (kind, faults in a row) the client recovers from by retrying: the run stores exactly the fault-free data.
RECOVERED = [
    pytest.param("429", 2, id="429-with-retry-after"),
    pytest.param("429_bare", 2, id="429-without-retry-after"),  # also test_itick_client::test_429_is_retried_until...
    pytest.param("500", 2, id="http-500"),
    pytest.param("503", 2, id="http-503"),
    pytest.param("timeout", 1, id="timeout"),
    pytest.param("reset", 2, id="reset-mid-body"),
    pytest.param("malformed_json", 2, id="malformed-json-once"),
    pytest.param("envelope_error", 2, id="envelope-undocumented-code"),  # 200 + code 5001: upstream briefly down
]


@pytest.mark.parametrize(("kind", "times"), RECOVERED)
def test_transient_faults_are_retried_and_store_what_a_clean_run_stores(home, clean, kind, times):
    assert_stored(home, clean["june"])
    settings = SimSettings(**BASE, fault_rate=1.0, fault_kinds=(kind,), fault_max=times, fault_retry_after_s=0.2,
                           fault_timeout_s=1.5)
    with serve(Simulator(settings)) as server:
        started = time.monotonic()
        result = ingest(server.url, home, MAY_JUNE, "faulty", timeout_s=0.5)
        assert server.simulator.counters.snapshot()["faults"] == {kind: times}
    assert result.fetch.retries >= times
    if kind == "429":
        assert time.monotonic() - started >= times * 0.2  # Retry-After was honoured
    assert_stored(home, clean["may_june"])


# Faults that outlive every retry: the run fails naming the source's answer, and nothing stored changes.
# (429 after the last retry: test_itick_client::test_quota_errors_surface_after_the_last_retry;
#  connection refused: test_itick_client::test_connection_failures_are_retried_then_reported)
@pytest.mark.parametrize(("kind", "error", "needle"), [
    pytest.param("500", Exception, r"HTTP 500 from the source \(gave up after 3 attempts\)", id="http-500-persistent"),
    pytest.param("malformed_json", ITickProtocolError, r"body that is not JSON.*\(gave up after 3 attempts\)",
                 id="malformed-json-persistent"),
    pytest.param("envelope_error", ITickRequestError,
                 r"code=5001 msg='injected fault: upstream data service.*\(gave up after 3 attempts\)",
                 id="envelope-undocumented-code-persistent"),
])
def test_unrecovered_faults_fail_clearly_and_keep_what_is_stored(home, clean, kind, error, needle):
    settings = SimSettings(**BASE, fault_rate=1.0, fault_kinds=(kind,))
    with serve(Simulator(settings)) as server, pytest.raises(error, match=needle):
        ingest(server.url, home, MAY_JUNE, "faulty", max_retries=2)
    assert_stored(home, clean["june"])


def test_a_rejected_token_fails_clearly_and_keeps_what_is_stored(home, clean):
    # Client-level view (no token in any message): test_itick_client::test_rejected_token_is_an_auth_error_that...
    # and test_secrets::test_a_rejected_token_fails_after_one_request_without_an_echo.
    with serve(Simulator(SimSettings(**BASE, tokens=frozenset({"another"})))) as server, \
            pytest.raises(ITickAuthError, match="token was rejected"):
        ingest(server.url, home, MAY_JUNE, "faulty")
    assert_stored(home, clean["june"])


# Unknown instrument (E001): test_itick_client::test_unknown_code_is_a_typed_error and
# test_unknown_code_in_a_batch_yields_no_bars.
# Partial batches (codes left out, null, empty, answered on the second ask, unrequested codes):
# test_source_partial_answers (every test) and test_partial_answers_pipeline (stored data before and after).
# Descending bars: test_itick_client::test_source_matches_ground_truth_under_every_protocol_variant.
# A full lake disk: test_drift::test_a_full_disk_during_the_load_stops_the_run_and_the_next_run_repairs_the_drift.
# A writer that died leaving a temp file: test_drift::test_the_next_run_removes_temp_files_of_a_writer_that_died.


# ------------------------------------------------------------------ schema drift, duplicates, order (bars rewritten)
class RewriteBars:
    """WSGI middleware: the simulator's batch kline answers with every code's bars passed through `rewrite`."""

    def __init__(self, app: Simulator, rewrite: Callable[[list[dict]], list[dict]]):
        self.app, self.rewrite = app, rewrite

    def __call__(self, environ, start_response):
        captured = {}

        def keep(status, headers, exc_info=None):
            captured.update(status=status, headers=headers)

        body = b"".join(self.app(environ, keep))
        if environ.get("PATH_INFO", "").endswith("/klines") and captured["status"].startswith("200"):
            envelope = orjson.loads(body)
            envelope["data"] = {c: self.rewrite(b) if b else b for c, b in envelope["data"].items()}
            body = orjson.dumps(envelope)
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        start_response(captured["status"], [*headers, ("Content-Length", str(len(body)))])
        return [body]


def _each(change: Callable[[dict], None]) -> Callable[[list[dict]], list[dict]]:
    def rewrite(bars: list[dict]) -> list[dict]:
        for bar in bars:
            change(bar)
        return bars
    return rewrite


DRIFT = {
    "missing-field": _each(lambda b: b.pop("v")),
    "nulls": _each(lambda b: b.update(c=None)),
}
HARMLESS = {
    "extra-field": _each(lambda b: b.update(vwap=b["c"])),
    "numbers-as-strings": _each(lambda b: b.update(o=str(b["o"]), c=str(b["c"]), v=str(b["v"]))),
    "duplicate-bars": lambda bars: bars + bars[:3],
    "out-of-order-bars": lambda bars: bars[1::2] + bars[::2][::-1],
}


def _rewritten(rewrite) -> object:
    return serve(RewriteBars(Simulator(SimSettings(**BASE)), rewrite))  # type: ignore[arg-type]


@pytest.mark.parametrize("case", list(HARMLESS))
def test_harmless_changes_store_what_a_clean_run_stores(home, clean, case):
    with _rewritten(HARMLESS[case]) as server:
        ingest(server.url, home, MAY_JUNE, "rewritten")
    assert_stored(home, clean["may_june"])


@pytest.mark.parametrize("case", list(DRIFT))
def test_schema_drift_fails_clearly_and_keeps_what_is_stored(home, clean, case):
    with _rewritten(DRIFT[case]) as server, pytest.raises(Exception) as failure:  # noqa: PT011 - the message is checked
        ingest(server.url, home, MAY_JUNE, "drifted")
    assert DRIFT_MESSAGES[case] in str(failure.value), str(failure.value)
    assert_stored(home, clean["june"])


DRIFT_MESSAGES = {"missing-field": "bar without field 'v'", "nulls": "[close: not_nullable] broken by"}


# ------------------------------------------------------------------ two runs on the same partitions
def test_two_sequential_runs_on_the_same_partitions_store_the_same(home, clean):
    with serve(Simulator(SimSettings(**BASE))) as server:
        ingest(server.url, home, MAY_JUNE, "first")
        first = stored(home)
        ingest(server.url, home, MAY_JUNE, "second")
    assert_stored(home, first)
    assert_stored(home, clean["may_june"])


def _ingest_in_process(url: str, home: str, run_id: str) -> None:
    ingest(url, Path(home), MAY_JUNE, run_id)


def test_two_concurrent_processes_on_the_same_partitions_store_the_same(home, clean):
    ctx = multiprocessing.get_context("spawn")
    with serve(Simulator(SimSettings(**BASE))) as server:
        procs = [ctx.Process(target=_ingest_in_process, args=(server.url, str(home), f"p{i}")) for i in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=240)
    assert [p.exitcode for p in procs] == [0, 0]
    assert_stored(home, clean["may_june"])


# ------------------------------------------------------------------ the disk
def leftover_files(home: Path) -> list[str]:
    """Files under the lake's data path that no snapshot references (a failed or killed commit's)."""
    with _storage(home).lakehouse().connection() as con:
        return [p for (p, *_) in con.execute("SELECT * FROM ducklake_delete_orphaned_files('lake', dry_run => true, "
                                             "older_than => now() + INTERVAL 1 DAY)").fetchall()]


@contextmanager
def small_disk(folder: Path, megabytes: int = 48):
    """A filesystem of its own at `folder` (tmpfs), so that it really fills up; skipped where it cannot be mounted."""
    folder.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(folder)],
                             capture_output=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here: {mounted.stderr.decode()[:200]}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)


def fill(folder: Path) -> Path:
    """Take every free byte of `folder`'s filesystem with one file; return it (delete it to free the space)."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as fh:
        for size in (1 << 20, 4096, 1):  # down to the last byte
            with contextlib.suppress(OSError):
                while True:
                    fh.write(b"\0" * size)
    return filler


@pytest.mark.parametrize("when", ["mid-run", "at-start"])
def test_a_full_disk_fails_clearly_keeps_the_last_snapshot_and_the_next_run_stores_everything(tmp_path, clean, when):
    """Mid-run: the lake is open when the disk fills, and the commit's Parquet write fails. At start: the catalog
    itself cannot be opened. Either way the error names where and the setting, and nothing stored is lost."""
    with small_disk(tmp_path / "disk") as disk:
        home = disk / "home"
        prepare(home, JUNE)
        lake = _storage(home).lakehouse() if when == "mid-run" else None
        if lake is not None:
            lake.snapshot_id()  # attached and in use before the disk fills
        filler = fill(disk)
        with serve(Simulator(SimSettings(**BASE))) as server:
            with pytest.raises((LakeStorageError, CatalogError)) as failure:
                # the client's quota state elsewhere: this is about the lake (its own full disk: test_quota_state)
                ingest(server.url, home, MAY_JUNE, "full", lake=lake, client_home=tmp_path / "client")
            message = str(failure.value)
            assert "TICKLAKE_HOME" in message, message
            assert str(home) in message, message
            filler.unlink()
            assert_stored(home, clean["june"])  # the last snapshot, readable and whole
            ingest(server.url, home, MAY_JUNE, "freed", lake=lake)
        assert_stored(home, clean["may_june"])
        assert leftover_files(home) == []


@contextmanager
def read_only(folder: Path):
    """`folder` read-only for this process: by permissions, or (as root, who ignores them) by a read-only bind
    mount of it; skipped where neither is possible."""
    if os.geteuid() != 0:
        folders = [folder, *(p for p in folder.rglob("*") if p.is_dir())]
        for f in folders:
            f.chmod(0o555)
        try:
            yield
        finally:
            for f in folders:
                f.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"root ignores permissions and cannot bind-mount here: {mounted.stderr.decode()[:200]}")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], capture_output=True, check=True)
        yield
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True, check=False)


def test_a_read_only_data_directory_fails_clearly_and_keeps_what_is_stored(home, clean):
    with read_only(home / "lake"), serve(Simulator(SimSettings(**BASE))) as server, \
            pytest.raises(LakeStorageError, match=r"TICKLAKE_HOME.*(Permission denied|Read-only file system)"):
        ingest(server.url, home, MAY_JUNE, "read-only")
    assert_stored(home, clean["june"])


# ------------------------------------------------------------------ SIGKILL mid-commit
def _ingest_until_killed(url: str, home: str, marker: str) -> None:
    """Ingest, but stall inside the first commit, after its rows are inserted (their Parquet files written) and
    before COMMIT, until the parent kills us."""
    import ticklake.storage.lakehouse as lakehouse

    real = lakehouse._delete_insert

    def stall(con, dataset, *args) -> None:
        real(con, dataset, *args)
        if dataset is KLINES_DAILY:
            Path(marker).touch()
            time.sleep(600)

    lakehouse._delete_insert = stall
    ingest(url, Path(home), MAY_JUNE, "killed")


def test_sigkill_mid_commit_leaves_the_last_snapshot_and_the_next_run_converges(home, clean, tmp_path):
    marker = tmp_path / "writing"
    with serve(Simulator(SimSettings(**BASE))) as server:
        proc = multiprocessing.get_context("spawn").Process(target=_ingest_until_killed,
                                                            args=(server.url, str(home), str(marker)))
        proc.start()
        deadline = time.monotonic() + 120
        while not marker.exists() and proc.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), "the child never reached the commit"
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(timeout=30)
        assert proc.exitcode == -signal.SIGKILL
        assert_stored(home, clean["june"])  # nothing of the unfinished commit is visible
        assert leftover_files(home)  # the killed commit's files, referenced by no snapshot
        ingest(server.url, home, MAY_JUNE, "after-kill")  # its commit lock died with it; it removes them first
    assert_stored(home, clean["may_june"])
    assert leftover_files(home) == []
