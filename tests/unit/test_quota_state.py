"""The quota state stores keep one contract: an atomic read-modify-write shared by everyone using the same store.
The file store needs nothing; the PostgreSQL store runs against the real server (skipped where none runs)."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable

import psycopg2
import pytest

from tests.services import free_port
from ticklake.sources.quota_state import TABLE, FileStateStore, PostgresStateStore, QuotaStateError, StateStore

KEY = "quota-0123456789abcdef"


@pytest.fixture(params=["file", "postgres"])
def open_store(request, tmp_path) -> Callable[[], StateStore]:
    """Open a store on one shared state: each call is another user of it (its own lock file handle or connection),
    as another process would be."""
    opened: list[StateStore] = []

    def open_file() -> StateStore:
        return FileStateStore(tmp_path / f"{KEY}.txt")

    def open_postgres() -> StateStore:
        return PostgresStateStore(url, KEY)

    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
    opener = open_postgres if request.param == "postgres" else open_file

    def open_one() -> StateStore:
        store = opener()
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()


def _write(data: bytes, result: object = None):
    return lambda text, now: (data, result)


def test_a_store_without_state_reads_none_then_what_was_written(open_store):
    store = open_store()
    seen = store.transact(lambda text, now: (b'{"limit": 3}', text))
    assert seen is None
    assert store.transact(lambda text, now: (text.encode(), text)) == '{"limit": 3}'
    assert open_store().transact(lambda text, now: (text.encode(), text)) == '{"limit": 3}'  # another user sees it


def test_a_failed_update_stores_nothing_and_the_store_stays_usable(open_store):
    store = open_store()
    store.transact(_write(b'{"limit": 1}'))

    def fail(text, now):
        raise ValueError("the limiter failed")

    with pytest.raises(ValueError, match="the limiter failed"):
        store.transact(fail)
    assert store.transact(lambda text, now: (text.encode(), text)) == '{"limit": 1}'


def test_concurrent_transactions_serialize_and_lose_no_update(open_store):
    """Four users each add one 25 times: a read-modify-write that interleaved would lose increments."""
    open_store().transact(_write(b'{"n": 0}'))

    def add(text, now):
        n = int(text.split(":")[1].strip(" }")) + 1
        return f'{{"n": {n}}}'.encode(), n

    def work(store: StateStore) -> None:
        for _ in range(25):
            store.transact(add)

    threads = [threading.Thread(target=work, args=(open_store(),)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert open_store().transact(lambda text, now: (text.encode(), text)) == '{"n": 100}'


def test_a_transaction_waits_for_the_one_in_progress_and_reads_its_result(open_store):
    first, second = open_store(), open_store()
    first.transact(_write(b'{"who": "nobody"}'))
    inside, seen, done = threading.Event(), [], []

    def slow(text, now):
        inside.set()
        time.sleep(0.3)
        done.append(time.monotonic())
        return b'{"who": "first"}', None

    holder = threading.Thread(target=first.transact, args=(slow,))
    holder.start()
    assert inside.wait(10)
    second.transact(lambda text, now: (text.encode(), seen.append((time.monotonic(), text))))
    holder.join()
    assert seen[0][0] >= done[0]
    assert seen[0][1] == '{"who": "first"}'


def test_only_the_postgres_store_keeps_a_clock(open_store):
    store = open_store()
    nows = [store.transact(lambda text, now: (b"{}", now)) for _ in range(3)]
    if isinstance(store, FileStateStore):
        assert nows == [None, None, None]
        return
    assert all(abs(now - time.time()) < 5 for now in nows)  # the server's clock: this machine's, here
    assert nows == sorted(nows)


# -- PostgreSQL only ------------------------------------------------------------------------------------------
def _backends(url: str) -> list[int]:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'ticklake-quota' "
            "AND datname = current_database()"
        )
        return [row[0] for row in cur.fetchall()]


def _terminate(url: str) -> None:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = "
            "'ticklake-quota' AND datname = current_database()"
        )


def test_the_postgres_store_creates_its_table_with_one_row_per_key(postgres_url):
    one, two = PostgresStateStore(postgres_url, "quota-a"), PostgresStateStore(postgres_url, "quota-b")
    one.transact(_write(b'{"limit": 1}'))
    two.transact(_write(b'{"limit": 2}'))
    with psycopg2.connect(postgres_url) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT account, state->>'limit', updated_at IS NOT NULL FROM {TABLE} ORDER BY account")
        assert cur.fetchall() == [("quota-a", "1", True), ("quota-b", "2", True)]
    one.close()
    two.close()


def test_a_deleted_row_reads_as_no_state(postgres_url):
    store = PostgresStateStore(postgres_url, KEY)
    store.transact(_write(b'{"limit": 1}'))
    with psycopg2.connect(postgres_url) as conn, conn.cursor() as cur:
        cur.execute(f"DELETE FROM {TABLE}")  # e.g. an operator resetting the quota
    assert store.transact(lambda text, now: (b"{}", text)) is None
    store.close()


def test_a_dropped_connection_is_reopened_once_and_the_transaction_run_again(postgres_url, caplog):
    url = postgres_url.replace("postgres@", "postgres:hunter2-not-shown@")  # trust auth ignores the password
    store = PostgresStateStore(url, KEY)
    store.transact(_write(b'{"limit": 1}'))
    before = _backends(postgres_url)
    _terminate(postgres_url)  # what a PostgreSQL restart does to every session
    with caplog.at_level(logging.WARNING, logger="ticklake.sources.quota_state"):
        assert store.transact(lambda text, now: (b'{"limit": 2}', text)) == '{"limit": 1}'
    assert _backends(postgres_url) != before
    assert "lost the connection to the quota state in PostgreSQL at postgresql://postgres:***@127.0.0.1" in caplog.text
    assert "hunter2" not in caplog.text
    store.close()


class Proxy:
    """A TCP relay to PostgreSQL whose `stop()` plays the server going away: every session cut, the port closed."""

    def __init__(self, port: int = 5432):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.target, self.sockets = port, []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            self.sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() in progress (close alone would not)
        self.listener.close()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def test_a_connection_that_cannot_be_reopened_fails_naming_host_and_database_never_the_password(postgres_url):
    proxy = Proxy()
    database = postgres_url.rsplit("/", 1)[1]
    store = PostgresStateStore(f"postgresql://postgres:hunter2-not-shown@127.0.0.1:{proxy.port}/{database}", KEY)
    store.transact(_write(b"{}"))
    proxy.stop()  # the server goes away and stays away
    with pytest.raises(QuotaStateError) as err:
        store.transact(_write(b"{}"))
    message = str(err.value)
    assert (
        f"lost the connection to the quota state in PostgreSQL at postgresql://postgres:***@127.0.0.1:"
        f"{proxy.port}/{database} and could not reconnect: " in message
    )
    assert "check that the server is up and TICKLAKE_COORDINATION_URL" in message
    assert "hunter2" not in message
    assert err.value.__suppress_context__  # the driver's own exception is not shown under it


def test_a_server_unreachable_from_the_start_is_named_without_the_password():
    store = PostgresStateStore(f"postgresql://ticklake:hunter2-not-shown@127.0.0.1:{free_port()}/quota_db", KEY)
    with pytest.raises(
        QuotaStateError, match=r"cannot connect .* at postgresql://ticklake:\*\*\*@127\.0\.0\.1:\d+/quota_db"
    ) as err:
        store.transact(_write(b"{}"))
    assert "hunter2" not in str(err.value)


def test_a_forked_child_opens_its_own_connection_and_leaves_the_parents_alone(postgres_url):
    store = PostgresStateStore(postgres_url, KEY)
    store.transact(_write(b'{"by": "parent"}'))
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            seen = store.transact(lambda text, now: (b'{"by": "child"}', text))
            store.close()  # closes the child's own connection, never the parent's
            os.write(write, seen.encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(read) as pipe:
        assert pipe.read() == '{"by": "parent"}'
    assert os.waitstatus_to_exitcode(status) == 0
    parents = store._conn
    assert store.transact(lambda text, now: (b"{}", text)) == '{"by": "child"}'
    assert store._conn is parents  # the parent's session survived the child: no reconnect
    store.close()


def test_one_account_shares_one_quota_whatever_address_reaches_the_server(tmp_path):
    """iTick counts calls per token: workers reaching it through different URLs (a relay, a proxy, another host
    name) must share the one window, and the state's name must not reveal the token."""
    from ticklake.sources.itick.config import ITickConfig, build_client

    def store_of(url: str, token: str) -> StateStore:
        client = build_client(ITickConfig(base_url=url, token=token, home=str(tmp_path)))
        client.close()
        return client.limiter.store

    direct = store_of("http://127.0.0.1:8080/", "account-one-token")
    relayed = store_of("http://10.200.0.1:8080/", "account-one-token")
    other = store_of("http://127.0.0.1:8080/", "account-two-token")
    assert direct.path == relayed.path
    assert other.path != direct.path
    assert "account-one-token" not in direct.path.name
