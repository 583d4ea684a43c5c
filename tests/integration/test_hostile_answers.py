"""Hostile answers (issue 21): bars a misbehaving source sends inside a well-formed batch kline answer, over real
loopback HTTP through the real client, source and ingest. Each case asserts what is stored, what the quarantine
holds and what the ledger records. June is stored from a clean simulator first ("before"); then May and June are
ingested from a server whose answers are rewritten.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from urllib.parse import parse_qs

import orjson
import pandas as pd
import pytest

from itick_sim import SimSettings, Simulator, serve
from tests.integration.test_fault_matrix import (
    BASE,
    JUNE,
    MAY_JUNE,
    _storage,
    assert_stored,
    ingest,
    prepare,
    stored,
)
from ticklake.datasets.klines import universe
from ticklake.dictionary.schemas import DataValidationError

pytestmark = pytest.mark.integration
DAY = dt.date(2024, 6, 27)  # stored before the hostile run
MAY_DAY = dt.date(2024, 5, 15)  # not stored before it
DAY_MS = 86_400_000


class Rewrite:
    """WSGI middleware: each batch kline answer's bars of `victim` passed through `change(bars, et_ms)`."""

    def __init__(self, app: Simulator, victim: str, change: Callable[[list[dict], int], list[dict]]):
        self.app, self.victim, self.change = app, victim, change

    def __call__(self, environ, start_response):
        captured = {}

        def keep(status, headers, exc_info=None):
            captured.update(status=status, headers=headers)

        body = b"".join(self.app(environ, keep))
        if environ.get("PATH_INFO", "").endswith("/klines") and captured["status"].startswith("200"):
            envelope = orjson.loads(body)
            et = int(parse_qs(environ["QUERY_STRING"])["et"][0])
            if envelope["data"].get(self.victim):
                envelope["data"][self.victim] = self.change(envelope["data"][self.victim], et)
            body = orjson.dumps(envelope)
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        start_response(captured["status"], [*headers, ("Content-Length", str(len(body)))])
        return [body]


def _on(day: dt.date) -> Callable[[dict], bool]:
    start = int(pd.Timestamp(day, tz="America/New_York").value // 10**6)
    return lambda bar: start <= bar["t"] < start + DAY_MS


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    home = tmp_path_factory.mktemp("clean-may-june")
    prepare(home, MAY_JUNE)
    return {"may_june": stored(home)}


@pytest.fixture
def home(tmp_path):
    home = tmp_path / "home"
    prepare(home, JUNE)
    return home


def _victim(home) -> str:
    return universe(_storage(home).lakehouse(), "US")[0]


def _run(home, victim: str, change, run_id: str = "hostile"):
    with serve(Rewrite(Simulator(SimSettings(**BASE)), victim, change)) as server:  # type: ignore[arg-type]
        return ingest(server.url, home, MAY_JUNE, run_id)


def _sql(home, sql: str, params=()) -> list[tuple]:
    with _storage(home).lakehouse().reader() as con:
        return con.execute(sql, list(params)).fetchall()


def _without(expected: tuple[pd.DataFrame, pd.DataFrame], symbol: str, day: dt.date):
    """The expected bars without one, and no expected status rows (assert_stored then checks that they count the
    stored bars)."""
    bars = expected[0]
    gone = (bars["symbol"] == symbol) & bars["trade_date"].str.startswith(day.isoformat())
    return bars[~gone].reset_index(drop=True), None


def _ledger(home, symbol: str) -> list[tuple]:
    return _sql(home, "SELECT date, field FROM reconciliation_log WHERE symbol = ?", [symbol])


# ------------------------------------------------------------------ 1. a conflicting duplicate bar
def test_a_conflicting_duplicate_bar_is_quarantined_whole_and_the_stored_bar_stays(home, clean):
    victim = _victim(home)
    stored_close = _sql(home, "SELECT close FROM klines_daily WHERE symbol = ? AND trade_date = ?", [victim, DAY])

    def twice(bars: list[dict], _et: int) -> list[dict]:
        out = list(bars)
        for day in (DAY, MAY_DAY):
            bar = next(b for b in bars if _on(day)(b))
            other = dict(bar, c=bar["c"] * 1.5, h=max(bar["h"], bar["c"] * 1.5))  # valid alone: only the key clashes
            out += [dict(bar), other]  # an identical copy collapses; the other disagrees
        return out

    result = _run(home, victim, twice)
    rows = _sql(home, "SELECT date, rule, reason, raw FROM quarantine WHERE code = ? ORDER BY date, raw", [victim])
    assert [(r[0], r[1]) for r in rows] == [(MAY_DAY, "duplicate_key")] * 2 + [(DAY, "duplicate_key")] * 2
    on_day = [json.loads(r[3])["close"] for r in rows if r[0] == DAY]
    assert sorted(float(c) for c in on_day) == pytest.approx(sorted([stored_close[0][0], stored_close[0][0] * 1.5]))
    assert all(f"close={c}" in r[2] for c, r in zip(on_day, [r for r in rows if r[0] == DAY], strict=True))
    assert result.rejected_rows == 4
    # the stored bar stays, the unstored date gets no bar, every other row is what a clean run stores
    assert _sql(home, "SELECT close FROM klines_daily WHERE symbol = ? AND trade_date = ?", [victim, DAY]) == \
        stored_close
    assert_stored(home, _without(clean["may_june"], victim, MAY_DAY))
    assert _ledger(home, victim) == []  # nothing recorded as if the source had restated it


def test_identical_duplicate_bars_collapse_silently(home, clean):
    victim = _victim(home)
    result = _run(home, victim, lambda bars, _et: bars + [dict(b) for b in bars if _on(DAY)(b)])
    assert result.rejected_rows == 0
    assert_stored(home, clean["may_june"])


# ------------------------------------------------------------------ 2. a field that is not a number
def test_a_non_numeric_field_quarantines_its_bar_with_the_raw_value_and_the_rest_is_written(home, clean):
    victim = _victim(home)
    before = _sql(home, "SELECT * FROM klines_daily WHERE symbol = ? AND trade_date = ?", [victim, DAY])

    def garble(bars: list[dict], _et: int) -> list[dict]:
        return [dict(b, c="12.5abc") if _on(DAY)(b) or _on(MAY_DAY)(b) else b for b in bars]

    result = _run(home, victim, garble)
    rows = _sql(home, "SELECT date, rule, reason, raw FROM quarantine ORDER BY date")
    assert [(r[0], r[1]) for r in rows] == [(MAY_DAY, "close is a number"), (DAY, "close is a number")]
    assert all("close='12.5abc'" in r[2] and json.loads(r[3])["close"] == "12.5abc" for r in rows)
    assert all(json.loads(r[3])["symbol"] == victim for r in rows)
    assert result.rejected_rows == 2
    assert _sql(home, "SELECT * FROM klines_daily WHERE symbol = ? AND trade_date = ?", [victim, DAY]) == before
    assert_stored(home, _without(clean["may_june"], victim, MAY_DAY))
    assert _ledger(home, victim) == []


def test_non_numeric_fields_above_the_rejected_share_fail_the_step_and_keep_what_is_stored(home, monkeypatch):
    monkeypatch.setenv("TICKLAKE_MAX_REJECTED_SHARE", "0.01")  # the victim's 41 bars are ~10% of the page
    victim = _victim(home)
    before = stored(home)
    with pytest.raises(DataValidationError, match=r"\[close is a number\] broken by \d+ row\(s\): US/" + victim):
        _run(home, victim, lambda bars, _et: [dict(b, c="n/a") for b in bars])
    assert_stored(home, before)


# ------------------------------------------------------------------ 5. bars off the call's window
def test_bars_outside_the_requested_window_are_quarantined_and_counted(home, clean):
    victim = _victim(home)

    def outside(bars: list[dict], et: int) -> list[dict]:
        newest, oldest = max(b["t"] for b in bars), min(b["t"] for b in bars)
        late = dict(max(bars, key=lambda b: b["t"]), t=et + 3 * DAY_MS)  # after `et`: a session not asked for
        early = dict(min(bars, key=lambda b: b["t"]), t=oldest - 7 * DAY_MS)  # one bar more than `limit`
        assert newest <= et
        return [*bars, late, early]

    result = _run(home, victim, outside)
    rows = _sql(home, "SELECT code, date, rule FROM quarantine ORDER BY date")
    assert [(r[0], r[1]) for r in rows] == [(victim, dt.date(2024, 4, 24)), (victim, dt.date(2024, 7, 1))]
    assert all(r[2].startswith("trade_date inside the partition (") for r in rows)
    assert result.off_window_rows == result.rejected_rows == 2
    assert_stored(home, clean["may_june"])


# ------------------------------------------------------------------ 1 and 5 in the T+1 reconciliation
def test_the_reconciliation_records_a_restatement_but_not_what_ingest_would_quarantine(home):
    """The reconciliation sensor re-fetches the last sessions unvalidated: bars after the window's last session or
    before its first, and a key sent twice with different values, are what ingest quarantines, so no ledger row
    and no correction run; a genuine restatement in the same answer is recorded and requested."""
    import dagster as dg

    from assets.partitions import key
    from automation.reconciliation import RECONCILIATION_SENSORS
    from resources.clock import ClockResource
    from resources.itick import ITickResource
    from tests.integration.test_fault_matrix import NOW, TOKEN
    from ticklake.quality.reconciliation import correction_key

    [sensor] = [s for s in RECONCILIATION_SENSORS if s.name == "reconciliation_us"]
    victim = _victim(home)
    restated_day = dt.date(2024, 6, 26)  # inside the window, stored before: its volume is restated
    seen: list[int] = []

    def hostile(bars: list[dict], et: int) -> list[dict]:
        seen.append(len(bars))
        out = [dict(b, v=b["v"] + 1000) if _on(restated_day)(b) else b for b in bars]
        newest, oldest = max(bars, key=lambda b: b["t"]), min(bars, key=lambda b: b["t"])
        late = dict(newest, t=et + 3 * DAY_MS)  # a Monday after the window's last session
        early = dict(oldest, t=oldest["t"] - 7 * DAY_MS)  # a session before its first
        on_day = next(b for b in bars if _on(DAY)(b))
        other = dict(on_day, c=on_day["c"] * 1.5, h=max(on_day["h"], on_day["c"] * 1.5))  # DAY again, differently
        return [*out, late, early, other]

    with serve(Rewrite(Simulator(SimSettings(**BASE)), victim, hostile)) as server:  # type: ignore[arg-type]
        resources = {"itick": ITickResource(base_url=server.url, token=TOKEN, home=str(home), plan="100000",
                                            backoff_base_s=0.05),
                     "storage": _storage(home), "clock": ClockResource(now=NOW.isoformat())}
        with dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral(), sensor_name=sensor.name,
                                     resources=resources) as context:
            result = sensor(context)
    assert seen  # the victim's bars were in the answer the sensor got
    ledger = _sql(home, "SELECT symbol, date, field, stored_value, source_value FROM reconciliation_log")
    assert [row[:3] for row in ledger] == [(victim, restated_day, "volume")]  # neither the off-window nor DAY
    assert ledger[0][4] == pytest.approx(ledger[0][3] + 1000)
    # one correction run, for June, keyed by the restatement alone (a bar off the window or DAY would change the
    # key, and the late bar would request July)
    [request] = result.run_requests
    assert request.partition_key == key("2024-06", "US")
    rows = pd.DataFrame(ledger, columns=["symbol", "date", "field", "stored_value", "source_value"])
    assert request.run_key == f"correct:{correction_key('US', '2024-06', rows)}"
    assert request.tags["ticklake/restatement"].startswith("1 difference(s)")
    assert _sql(home, "SELECT count(*) FROM quarantine") == [(0,)]  # the sensor quarantines nothing itself


# ------------------------------------------------------------------ 3. valid JSON that is not the envelope
class Answers:
    """WSGI middleware: the first `times` batch kline requests (None: every one) get `body` with HTTP 200 instead
    of the simulator's answer; the rest reach the simulator."""

    def __init__(self, app: Simulator, body: bytes, times: int | None):
        self.app, self.body, self.times, self.sent = app, body, times, 0

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO", "").endswith("/klines") and (self.times is None or self.sent < self.times):
            self.sent += 1
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(self.body)))])
            return [self.body]
        return self.app(environ, start_response)


NOT_ENVELOPES = {
    "a-list": b"[1,2,3]",
    "an-object-without-code": b'{"status": "ok", "bars": []}',
    "data-a-list": b'{"code": 0, "msg": null, "data": [{"t": 1, "o": 1}]}',
    "data-a-string": b'{"code": 0, "msg": null, "data": "AAPL"}',
}


@pytest.mark.parametrize("case", list(NOT_ENVELOPES))
def test_valid_json_that_is_not_the_envelope_is_asked_again_like_a_garbled_body(home, clean, case):
    app = Answers(Simulator(SimSettings(**BASE)), NOT_ENVELOPES[case], times=2)
    with serve(app) as server:  # type: ignore[arg-type]
        result = ingest(server.url, home, MAY_JUNE, "recovered")
    assert app.sent == 2
    assert result.fetch.retries >= 2
    assert_stored(home, clean["may_june"])


@pytest.mark.parametrize(("case", "needle"), [
    ("a-list", r"not the \{code, msg, data\} envelope: '\[1,2,3\]' \(gave up after 3 attempts\)"),
    ("data-a-list", r"`data` is a list where an object was expected: "
                    r"'\{\"code\": 0, \"msg\": null, \"data\": \[\{\"t\": 1.*\(gave up after 3 attempts\)"),
])
def test_an_answer_that_stays_off_the_envelope_fails_quoting_its_start_and_keeps_what_is_stored(home, case, needle):
    from tests.integration.test_fault_matrix import TOKEN
    from ticklake.sources.itick.errors import ITickProtocolError

    before = stored(home)
    app = Answers(Simulator(SimSettings(**BASE)), NOT_ENVELOPES[case], times=None)
    with serve(app) as server, pytest.raises(ITickProtocolError, match=needle):  # type: ignore[arg-type]
        ingest(server.url, home, MAY_JUNE, "off-envelope", max_retries=2)
    assert app.sent == 3
    assert_stored(home, before)
    # a server that echoes the token in such an answer: the quoted start of the body masks it
    echo = Answers(Simulator(SimSettings(**BASE)), orjson.dumps(["your token", TOKEN, "x" * 500]), times=None)
    with serve(echo) as server, pytest.raises(ITickProtocolError) as err:  # type: ignore[arg-type]
        ingest(server.url, home, MAY_JUNE, "echo", max_retries=1)
    assert TOKEN not in str(err.value)
    assert "'[\"your token\",\"***\",\"xxx" in str(err.value)
    assert len(str(err.value)) < 600


# ------------------------------------------------------------------ 4. a full disk under TICKLAKE_HOME (quota state)
@pytest.fixture
def full_state_dir(tmp_path):
    """home/state on a real 64 KiB filesystem (tmpfs) filled to the last block; yields (home, filler). Root only
    (as the read-only data directory test): skipped where no filesystem can be mounted."""
    import os
    import subprocess

    home = tmp_path / "home"
    state = home / "state"
    state.mkdir(parents=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(state)], capture_output=True,
                             check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode()[:200]}")
    try:
        filler = state / "filler"
        _fill(filler)
        yield home, filler
    finally:
        subprocess.run(["umount", str(state)], capture_output=True, check=False)


def _fill(path) -> None:
    """Append to `path` until its filesystem has no block left."""
    import errno
    import os

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        with pytest.raises(OSError, match="No space left") as full:
            _write_forever(fd)
        assert full.value.errno == errno.ENOSPC
    finally:
        os.close(fd)


def _write_forever(fd: int) -> None:
    import os

    while True:
        os.write(fd, b"x" * 1024)


def test_a_full_disk_under_the_quota_state_names_the_file_and_setting_and_leaves_no_temp_file(full_state_dir):
    from resources.itick import ITickResource
    from tests.integration.test_fault_matrix import TOKEN
    from ticklake.sources.itick.config import quota_key
    from ticklake.sources.quota_state import QuotaStateError

    home, filler = full_state_dir
    state = home / "state"
    leftover = state / f"{quota_key(TOKEN)}.txt.4194999.tmp"  # a writer that died mid-write, long ago
    filler.write_bytes(filler.read_bytes()[:-8192])  # room for the leftover only
    leftover.write_bytes(b"{")
    _fill(filler)
    with serve(Simulator(SimSettings(**BASE))) as server:
        client = ITickResource(base_url=server.url, token=TOKEN, home=str(home), plan="100000").client()
        with pytest.raises(QuotaStateError) as err:
            client.symbol_list("US")
        message = str(err.value)
        assert str(state / f"{quota_key(TOKEN)}.txt") in message
        assert "No space left on device" in message
        assert "TICKLAKE_HOME" in message
        assert TOKEN not in message
        assert not list(state.glob("*.tmp"))  # its own temp file, and the dead writer's
        filler.unlink()  # space freed: the next call stores the state
        assert client.symbol_list("US")
        assert (state / f"{quota_key(TOKEN)}.txt").read_bytes().startswith(b"{")
        assert not list(state.glob("*.tmp"))
