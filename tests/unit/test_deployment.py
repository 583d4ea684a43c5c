"""The production profile's configuration: deploy/ files agree with the code, and load against real PostgreSQL."""

from __future__ import annotations

import shutil

import dagster as dg
import pytest
import yaml

from automation.executors import CELERY_SETTINGS, DEFAULT_QUEUE, executor_from_env
from resources.itick import ITickResource
from resources.storage import StorageResource
from tests.distributed import ROOT
from ticklake import settings
from ticklake.settings import ConfigError


def test_the_workers_celery_settings_are_the_executors():
    config = yaml.safe_load((ROOT / "deploy" / "celery.yaml").read_text())["execution"]["config"]
    assert config["config_source"] == {**CELERY_SETTINGS, "task_default_queue": DEFAULT_QUEUE}
    assert config["broker"] == {"env": "TICKLAKE_CELERY_BROKER"}
    assert config["backend"] == {"env": "TICKLAKE_CELERY_BACKEND"}


def test_the_executor_is_chosen_by_configuration(monkeypatch):
    monkeypatch.delenv("TICKLAKE_EXECUTOR", raising=False)
    assert executor_from_env() is dg.in_process_executor
    monkeypatch.setenv("TICKLAKE_EXECUTOR", "celery")
    assert executor_from_env().name == "ticklake_celery"
    monkeypatch.setenv("TICKLAKE_EXECUTOR", "dask")
    with pytest.raises(ConfigError, match="TICKLAKE_EXECUTOR='dask' is invalid: must be one of in_process, celery"):
        executor_from_env()


def test_the_production_instance_runs_on_postgres_with_a_queue(tmp_path, postgres_url, monkeypatch):
    shutil.copy(ROOT / "deploy" / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", postgres_url.replace("postgresql://", "postgresql+psycopg2://", 1))
    monkeypatch.setenv("TICKLAKE_MAX_CONCURRENT_RUNS", "3")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        coordinator = instance.run_coordinator
        assert type(coordinator).__name__ == "QueuedRunCoordinator"
        assert coordinator.get_run_queue_config().max_concurrent_runs == 3
        assert instance.run_retries_enabled
        assert instance.run_monitoring_enabled


def test_object_storage_needs_a_shared_catalog(monkeypatch, tmp_path):
    """Data on S3 with the embedded SQLite catalog would give every worker a lake of its own."""
    monkeypatch.setenv("TICKLAKE_STORAGE_URL", "s3://bucket/prefix")
    monkeypatch.delenv("TICKLAKE_CATALOG", raising=False)
    with pytest.raises(ConfigError, match="needs a shared catalog: set TICKLAKE_CATALOG=postgres:"):
        StorageResource(home=str(tmp_path)).setup_for_execution(dg.build_init_resource_context())


@pytest.mark.parametrize(("name", "value", "message"), [
    ("TICKLAKE_STORAGE_URL", "/var/lake", "use s3://bucket/prefix"),
    ("TICKLAKE_STORAGE_URL", "s3://", "use s3://bucket/prefix"),
    ("TICKLAKE_COORDINATION_URL", "mysql://u:hunter2@db/x", "use postgresql://"),
])
def test_bad_production_settings_are_refused_by_name(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    getter = settings.storage_url if name == "TICKLAKE_STORAGE_URL" else settings.coordination_url
    with pytest.raises(ConfigError, match=message) as raised:
        getter()
    assert name in str(raised.value)
    assert "hunter2" not in str(raised.value)


def test_a_partial_launchpad_override_keeps_the_environments_settings(monkeypatch):
    """A real run whose run config names one of the resource's fields: Dagster builds the resource with the
    *class* defaults of the others, not what `from_env` set. The server, token, plan and the other knobs must
    still be the environment's, never the embedded simulator or the `base` plan."""
    monkeypatch.setenv("ITICK_BASE_URL", "http://127.0.0.1:9/")
    monkeypatch.setenv("ITICK_TOKEN", "launchpad-test-token")
    monkeypatch.setenv("ITICK_PLAN", "free")
    monkeypatch.setenv("ITICK_MAX_CODES", "7")
    monkeypatch.setenv("ITICK_BAR_TIME", "utc")
    seen: list = []

    @dg.asset
    def probe(itick: ITickResource) -> None:
        seen.append(itick.config)

    result = dg.materialize([probe], resources={"itick": ITickResource.from_env()},
                            run_config={"resources": {"itick": {"config": {"window_seconds": 5.0}}}})
    assert result.success
    (config,) = seen
    assert config.window_seconds == 5.0  # the override took
    assert config.endpoint == "http://127.0.0.1:9/"
    assert config.source_name == "itick"
    assert config.token == "launchpad-test-token"
    assert (config.plan, config.max_codes_per_call, config.bar_time_convention) == ("free", 7, "utc")

