"""Where a run's steps execute: in the run's own process (the embedded default) or on Celery workers.

TICKLAKE_EXECUTOR=celery (the production profile, docs/deployment.md) sends every step to a Celery queue on a
RabbitMQ broker; any machine with the code, the configuration and `dagster-celery worker start` takes steps
from it. Why Celery over Dask: the broker holds a step until a worker acknowledges it *finished*
(`task_acks_late`), so a worker killed mid-step hands the step back and another worker runs it again (ticklake's
writes are idempotent); a worker on another machine needs nothing but the broker's address; and RabbitMQ, Redis
and PostgreSQL are services operators already run. Dask would add a scheduler process of its own whose loss
loses the run's state, for parallelism ticklake's I/O-bound steps do not need.
"""

from __future__ import annotations

import os

import dagster as dg

from ticklake.settings import ConfigError, env_choice

EXECUTORS = ("in_process", "celery")
DEFAULT_BROKER = "pyamqp://guest:guest@127.0.0.1:5672//"
DEFAULT_BACKEND = "redis://127.0.0.1:6379/0"
DEFAULT_QUEUE = "ticklake"

# What every Celery worker and the run's executor must agree on (dagster-celery writes it into the workers'
# configuration module from deploy/celery.yaml, which holds the same values).
CELERY_SETTINGS = {
    "task_acks_late": True,  # acknowledge a step when it ends, not when it starts: a killed worker's step returns
    "task_reject_on_worker_lost": True,  # ... to the queue, for another worker, instead of failing the run
    "worker_prefetch_multiplier": 1,  # a worker holds one step at a time: idle workers take the others
    "broker_connection_retry_on_startup": True,  # a worker started before the broker waits for it
    "result_expires": 86400,
}


def executor_from_env() -> dg.ExecutorDefinition:
    """TICKLAKE_EXECUTOR: in_process (default) or celery (TICKLAKE_CELERY_BROKER / _BACKEND / _QUEUE)."""
    choice = env_choice("TICKLAKE_EXECUTOR", "in_process", EXECUTORS)
    if choice == "in_process":
        # One process per run: a step's work is seconds of Arrow/DuckDB, so a subprocess per step (Dagster's
        # multiprocess default) would cost more than the work. The steps of a run share the DuckDB writer anyway.
        return dg.in_process_executor
    try:
        from dagster_celery import celery_executor
    except ImportError:  # pragma: no cover - the lock installs it; a hand-made environment may not
        raise ConfigError(
            "TICKLAKE_EXECUTOR=celery needs the `distributed` extra: pip install 'ticklake[distributed]'") from None
    queue = os.environ.get("TICKLAKE_CELERY_QUEUE") or DEFAULT_QUEUE
    return celery_executor.configured(
        {
            "broker": {"env": "TICKLAKE_CELERY_BROKER"} if os.environ.get("TICKLAKE_CELERY_BROKER") else DEFAULT_BROKER,
            "backend": {"env": "TICKLAKE_CELERY_BACKEND"} if os.environ.get("TICKLAKE_CELERY_BACKEND")
            else DEFAULT_BACKEND,
            "config_source": {**CELERY_SETTINGS, "task_default_queue": queue},
        },
        name="ticklake_celery",
    )
