"""The iTick token never leaks: not into files, Dagster's run storage, event logs, run config or the terminal.

A token that cannot travel as an HTTP header (a trailing newline from `echo` or a secrets file, a space, a
control character, more than 512 characters) fails the run while Dagster initialises the `itick` resource:
before any step, so no request is sent and nothing is retried, with a message that names ITICK_TOKEN and the
rule but never the value. Each test scans everything a run leaves behind for the secret, with and without its
line break and by its first 12 characters (a truncated echo is still a leak).
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest

from automation.jobs import run_partition_range
from definitions import build_definitions
from resources.itick import ITickResource
from resources.storage import StorageResource
from tests.conftest import TOKEN
from ticklake.settings import ConfigError
from ticklake.sources.itick.client import AuditLog, ITickClient
from ticklake.sources.itick.config import ITickConfig, build_client
from ticklake.sources.itick.errors import ITickLocalError
from ticklake.sources.quota import SlidingWindowLimiter

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# Each secret starts with 12 visible characters of its own, so an escaped echo (repr, JSON) is still found.
OUTSIDE_ASCII = "it contains characters other than visible ASCII"
MALFORMED = {
    "trailing-newline": ("tok-4c1d8e2f9a7b3e60\n", "it contains a line break"),
    "space": ("tok-8b2e5f1c7d3a 9e4f", "it contains whitespace"),
    "600-chars": (("tok-1f6a9c3e5b7d" + "0123456789abcdef" * 37)[:600], "it is 600 characters long (at most 512)"),
    "control-char": ("tok-6e3b0d9f2c5a\x1ben", OUTSIDE_ASCII),
}


def needles(secret: str) -> set[str]:
    """What counts as a leak: the value, the value without its line break, and its first 12 characters."""
    return {secret, secret.rstrip("\r\n"), secret[:12]}


def assert_nowhere(secret: str, texts: list[str], *dirs: Path) -> None:
    """No needle in any of `texts`, nor in any file (bytes, whatever its format) under `dirs`."""
    files = [p for d in dirs for p in d.rglob("*") if p.is_file()]
    assert files or not dirs, "nothing to scan: the run left no files behind"
    blobs = {str(p): p.read_bytes() for p in files}
    for needle in needles(secret):
        assert not [i for i, text in enumerate(texts) if needle in text], f"{needle[:4]}... echoed in output"
        assert not [p for p, blob in blobs.items() if needle.encode() in blob], f"{needle[:4]}... in a file"


@contextmanager
def sqlite_instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """A real, SQLite-backed instance (run storage, event log, compute logs) in its own directory."""
    root = tmp_path / "dagster"
    root.mkdir()
    with dg.instance_for_test(temp_dir=str(root)) as instance:
        yield instance


def run_texts(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """Everything the instance shows about a run: each event rendered, every error with its causes, the config."""
    texts = []
    for entry in instance.all_logs(run_id):
        texts.append(str(entry))
        data = entry.dagster_event.event_specific_data if entry.dagster_event else None
        if getattr(data, "error", None) is not None:
            texts.append(data.error.to_string())
    run = instance.get_run_by_id(run_id)
    assert run is not None
    texts += [repr(run.run_config), repr(run.tags)]
    return texts


def failure_text(instance: dg.DagsterInstance, run_id: str) -> str:
    """The run's failure with its whole cause chain, as the UI shows it."""
    failures = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    assert len(failures) == 1
    error = failures[0].dagster_event.event_specific_data.error
    assert error is not None
    return error.to_string()


def env_definitions(monkeypatch, server, home: Path, token: str) -> dg.Definitions:
    """Definitions built as `dagster dev` builds them: the token and URL come from the environment."""
    monkeypatch.setenv("ITICK_TOKEN", token)
    monkeypatch.setenv("ITICK_BASE_URL", server.url)
    return build_definitions(itick=ITickResource.from_env(plan="100000", home=str(home), backoff_base_s=0.01),
                             storage=StorageResource(home=str(home)))


def both_jobs(defs: dg.Definitions, instance: dg.DagsterInstance) -> list[dg.ExecuteInProcessResult]:
    reference = defs.resolve_job_def("reference_refresh").execute_in_process(
        instance=instance, partition_key="US", raise_on_error=False)
    nightly = run_partition_range(defs, "US", "2024-06", "2024-06", instance=instance, raise_on_error=False)
    return [reference, nightly]


def every_job(defs: dg.Definitions, instance: dg.DagsterInstance) -> list[dg.ExecuteInProcessResult]:
    """Every job a deployment runs, so every file they write (lake, audit, quarantine, ledger, Data
    Docs, failure records) and every event they log is scanned."""
    runs = both_jobs(defs, instance)
    for name in ("fundamentals_refresh", "analytics_refresh"):
        runs.append(defs.resolve_job_def(name).execute_in_process(instance=instance, partition_key="US",
                                                                   raise_on_error=False))
    runs.append(defs.resolve_job_def("warehouse_checks").execute_in_process(instance=instance, raise_on_error=False))
    return runs


@pytest.mark.parametrize(("token", "why"), list(MALFORMED.values()), ids=list(MALFORMED))
def test_a_malformed_token_fails_the_run_at_resource_init_without_a_request_or_an_echo(
        make_server, tmp_path, capfd, monkeypatch, token, why):
    server = make_server()
    home = tmp_path / "home"
    defs = env_definitions(monkeypatch, server, home, token)
    texts: list[str] = []
    with sqlite_instance(tmp_path) as instance:
        for result in both_jobs(defs, instance):
            assert not result.success
            failure = failure_text(instance, result.run_id)
            assert "ITICK_TOKEN is not a valid iTick token" in failure
            assert why in failure
            assert "1-512 visible ASCII characters" in failure  # the rule
            kinds = {e.event_type for e in result.all_events}
            assert dg.DagsterEventType.RESOURCE_INIT_FAILURE in kinds
            assert dg.DagsterEventType.STEP_START not in kinds  # refused before any step, so nothing to retry
            texts += run_texts(instance, result.run_id)
    assert server.simulator.counters.total == 0
    captured = capfd.readouterr()
    assert "ITICK_TOKEN is not a valid iTick token" in captured.err  # the terminal says what to fix...
    assert_nowhere(token, [*texts, captured.out, captured.err], tmp_path)  # ...and nothing, anywhere, shows it


@pytest.mark.slow
def test_a_valid_token_reaches_only_the_token_header(make_server, tmp_path, capfd, monkeypatch):
    secret = "tok-3f9a7c1e5b2d4a6c8e0f1a2b3c4d5e6f"
    server = make_server(tokens=frozenset({secret}))
    home = tmp_path / "home"
    defs = env_definitions(monkeypatch, server, home, secret)
    texts: list[str] = []
    with sqlite_instance(tmp_path) as instance:
        for result in every_job(defs, instance):
            assert result.success
            texts += run_texts(instance, result.run_id)
    assert (home / "docs" / "great_expectations").is_dir()  # the Data Docs were scanned too
    counters = server.simulator.counters
    assert counters.total > 1
    assert counters.by_status == {200: counters.total}  # it authenticated on every call
    captured = capfd.readouterr()
    assert (home / "audit").is_dir()
    assert_nowhere(secret, [*texts, captured.out, captured.err, repr(defs.resources["itick"])], tmp_path)


def test_a_rejected_token_fails_after_one_request_without_an_echo(make_server, tmp_path, capfd, monkeypatch):
    secret = "tok-9d4b1e7a2c6f0e3b5a8d"
    server = make_server(tokens=frozenset({"the-only-good-token"}))
    home = tmp_path / "home"
    defs = env_definitions(monkeypatch, server, home, secret)
    texts: list[str] = []
    with sqlite_instance(tmp_path) as instance:
        reference = defs.resolve_job_def("reference_refresh").execute_in_process(
            instance=instance, partition_key="US", raise_on_error=False)
        assert not reference.success
        failure = failure_text(instance, reference.run_id)
        assert "ITickAuthError" in failure
        assert "Check ITICK_TOKEN" in failure
        texts += run_texts(instance, reference.run_id)
    steps = sum(1 for e in reference.all_events if e.event_type == dg.DagsterEventType.STEP_START)
    assert steps >= 1
    assert server.simulator.counters.snapshot()["by_status"] == {200: steps}  # one call per step: 401s not retried
    captured = capfd.readouterr()
    assert_nowhere(secret, [*texts, captured.out, captured.err], tmp_path)


@pytest.mark.parametrize("token", ["tok-5b8e1a4d7c0f\x00en", "tok-0c7f4b9e2d6a\u00e9"])
def test_a_token_no_environment_can_hold_is_refused_before_any_request(make_server, home, token):
    """A NUL byte cannot be in an environment variable, but code or a launchpad can pass one; so can non-ASCII."""
    server = make_server()
    config = ITickConfig(base_url=server.url, token=token, home=str(home))
    with pytest.raises(ConfigError, match=OUTSIDE_ASCII) as err:
        build_client(config)
    assert server.simulator.counters.total == 0
    assert not home.exists()  # refused before any state or audit file
    assert_nowhere(token, [str(err.value), repr(config)])


def test_a_header_value_http_refuses_is_not_retried_nor_echoed(make_server, tmp_path):
    """Defence in depth below the token check: h11 refuses the value while sending, quoting it."""
    server = make_server()
    audit = tmp_path / "audit.jsonl"
    client = ITickClient(server.url, TOKEN, limiter=SlidingWindowLimiter(100_000, 60.0), max_retries=5,
                         backoff_base_s=0.01, audit=AuditLog(audit))
    secret = "tok-2a7e5c9b1d4f\n"
    # The client refuses such a token when built; only a header changed afterwards can reach the wire.
    client._http.headers["token"] = secret
    with pytest.raises(ITickLocalError, match="check ITICK_TOKEN") as err:
        client.symbol_list("US")
    assert err.value.__cause__ is None  # the httpx error, which quotes the value, is not chained
    assert err.value.__context__ is None
    assert client.stats.attempts == 1  # not retried
    assert server.simulator.counters.total == 0
    assert_nowhere(secret, [str(err.value), repr(client)], tmp_path)


@pytest.mark.slow
def test_the_cli_refuses_a_malformed_token_by_name(make_server, tmp_path):
    """`dagster asset materialize` prints run failures to stderr: the message must be there, the value not."""
    server = make_server()
    secret = MALFORMED["trailing-newline"][0]
    (tmp_path / "dagster").mkdir()
    env = {**os.environ, "ITICK_TOKEN": secret, "ITICK_BASE_URL": server.url, "ITICK_PLAN": "100000",
           "TICKLAKE_HOME": str(tmp_path / "home"), "DAGSTER_HOME": str(tmp_path / "dagster"),
           "TICKLAKE_REGIONS": "US"}
    started = dt.datetime.now(dt.UTC)
    out = subprocess.run([str(Path(sys.executable).with_name("dagster")), "asset", "materialize", "-m", "definitions",
                          "--select", "securities", "--partition", "US"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode != 0
    assert "ITICK_TOKEN is not a valid iTick token: it contains a line break" in out.stderr
    assert server.simulator.counters.total == 0
    assert (dt.datetime.now(dt.UTC) - started).total_seconds() < 60
    assert_nowhere(secret, [out.stdout, out.stderr], tmp_path)

