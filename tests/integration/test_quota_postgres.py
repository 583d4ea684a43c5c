"""One iTick quota shared through PostgreSQL by every worker process (and machine): the same budget, the same
adapted limit and the same Retry-After pause, on the database server's clock. Compressed time (a 1 s window).
Skipped where no PostgreSQL runs, failed under TICKLAKE_REQUIRE_SERVICES=1 (tests/services.py)."""

from __future__ import annotations

import multiprocessing
import time

import psycopg2

from tests.unit.test_rate_limit import _max_in_window
from ticklake.sources.quota import REFUSALS_IN_A_ROW, SlidingWindowLimiter
from ticklake.sources.quota_state import TABLE, FileStateStore, PostgresStateStore

KEY = "quota-test"
CALLS, WINDOW = 5, 1.0


class RecordingStore(PostgresStateStore):
    """Remembers the server's "now" of its last transaction: after acquire() returns, the instant the limiter
    granted the call, on the clock every process shares, free of any delay before the caller could record it."""

    last_now: float | None = None

    def transact(self, update):
        def recording(text, now):
            self.last_now = now
            return update(text, now)

        return super().transact(recording)


def _limiter(url: str, **kwargs) -> tuple[SlidingWindowLimiter, RecordingStore]:
    store = RecordingStore(url, KEY)
    return SlidingWindowLimiter(CALLS, WINDOW, margin_s=0.0, store=store, plan=str(CALLS), **kwargs), store


def _acquire_in_process(url, ready, go, out, n):
    limiter, store = _limiter(url)
    limiter.limit  # noqa: B018 - connect (and create the table) before the race starts
    ready.put(True)
    go.wait(60)
    for _ in range(n):
        limiter.acquire()
        out.put(store.last_now)
    limiter.close()


def test_processes_sharing_a_postgres_store_share_one_budget(postgres_url):
    ctx = multiprocessing.get_context("spawn")
    ready, out, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_acquire_in_process, args=(postgres_url, ready, go, out, 5)) for _ in range(3)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=60)
    go.set()
    grants = [out.get(timeout=60) for _ in range(15)]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert _max_in_window(grants, WINDOW) <= CALLS
    assert max(grants) - min(grants) >= 2 * WINDOW  # 15 calls at 5 per window: the third five wait two windows


def _refused_in_process(url, out):
    limiter, store = _limiter(url)
    for _ in range(3):
        limiter.acquire()
        limiter.record_success()
    limiter.record_rate_limited(retry_after=1.0)
    paused_until = store.last_now + 1.0
    for _ in range(REFUSALS_IN_A_ROW - 1):  # refusals in a row: the server's quota, not a stray 429
        limiter.record_rate_limited()
    out.put(paused_until)
    limiter.close()


def test_the_adapted_limit_and_a_retry_after_set_by_one_process_hold_for_another(postgres_url):
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_refused_in_process, args=(postgres_url, out))
    proc.start()
    paused_until = out.get(timeout=60)
    proc.join(timeout=30)
    assert proc.exitcode == 0
    limiter, store = _limiter(postgres_url)
    assert limiter.limit == 3  # what the server granted in the other process's window
    assert limiter.describe().startswith("the server granted about 3 calls per 1 s while ITICK_PLAN=5")
    waited = limiter.acquire()
    assert store.last_now >= paused_until  # not before the other process's Retry-After ends
    assert waited > 0
    limiter.close()


def test_workers_whose_clocks_disagree_by_hours_still_share_one_window(postgres_url):
    """Each limiter's own clock is an hour off, one ahead, one behind: with the file store the one behind would
    see the other's calls an hour in the future and wait two hours; the server's clock makes them agree."""
    ahead, ahead_store = _limiter(postgres_url, clock=lambda: time.time() + 3600)
    behind, behind_store = _limiter(postgres_url, clock=lambda: time.time() - 3600)
    grants, started = [], time.monotonic()
    for _ in range(5):
        for limiter, store in ((ahead, ahead_store), (behind, behind_store)):
            limiter.acquire(max_wait_s=5)
            grants.append(store.last_now)
    assert _max_in_window(grants, WINDOW) <= CALLS
    assert all(abs(t - time.time()) < 60 for t in grants)  # the server's clock, neither worker's
    assert time.monotonic() - started < 5  # 10 calls at 5 per window: about one window, never an hour
    ahead.close()
    behind.close()


def test_build_client_shares_the_quota_through_postgres_when_the_coordination_url_is_set(
    postgres_url, monkeypatch, tmp_path
):
    from ticklake.sources.itick.config import ITickConfig, build_client  # here: the worker processes need not import it

    monkeypatch.setenv("TICKLAKE_COORDINATION_URL", postgres_url)
    client = build_client(ITickConfig(home=str(tmp_path), plan="free"))
    store = client.limiter.store
    assert isinstance(store, PostgresStateStore)
    assert store.key.startswith("quota-")
    client.limiter.acquire()
    client.close()
    with psycopg2.connect(postgres_url) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT account, jsonb_array_length(state->'starts') FROM {TABLE}")
        assert cur.fetchall() == [(store.key, 1)]
    assert not list((tmp_path / "state").glob("quota-*"))  # no file store beside it

    monkeypatch.delenv("TICKLAKE_COORDINATION_URL")
    client = build_client(ITickConfig(home=str(tmp_path), plan="free"))
    assert isinstance(client.limiter.store, FileStateStore)
    assert client.limiter.store.path == tmp_path / "state" / f"{store.key}.txt"  # the same account key as before
    client.close()
