"""The object store answering 500 or "slow down" (issue 16's fault list): a few such answers are retried and the
commit lands; an outage that outlasts the retries fails clearly, naming the data path and the setting, never a
secret, with the last snapshot intact, and the re-run after it completes. Real DuckLake on a PostgreSQL catalog,
data on moto's S3 server behind a proxy that answers S3's own errors."""

from __future__ import annotations

import os

import pytest

from tests.integration.test_lake_on_postgres_s3 import _commit_month, _machine
from tests.s3_faults import Faults, faulty_s3
from tests.services import environment
from ticklake.storage import LakeStorageError

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _rows(lake) -> int:
    with lake.connection() as con:
        return con.execute("SELECT count(*) FROM klines_daily").fetchone()[0]


@pytest.mark.parametrize("status", [503, 500])
def test_a_few_error_answers_are_retried_and_the_commit_lands(tmp_path, s3, postgres_url, status):
    faults = Faults(status=status)
    with faulty_s3(s3.endpoint, faults) as endpoint, environment({"AWS_ENDPOINT_URL": endpoint,
                                                                  "TICKLAKE_S3_MAX_ATTEMPTS": "4"}):
        lake = _machine(tmp_path, "a", postgres_url, s3.url("retried"))
        _commit_month(lake, "US", "2024-01", 1.0)
        faults.fail_next = 2  # the next two writes are refused; the third attempt of the first one succeeds
        _commit_month(lake, "US", "2024-02", 2.0)
        assert faults.injected == 2
        assert _rows(lake) == 80


@pytest.mark.parametrize("status", [503, 500])
def test_an_outage_past_the_retries_fails_clearly_and_the_rerun_completes(tmp_path, s3, postgres_url, status):
    faults = Faults(status=status)
    with faulty_s3(s3.endpoint, faults) as endpoint, environment({"AWS_ENDPOINT_URL": endpoint,
                                                                  "TICKLAKE_S3_MAX_ATTEMPTS": "3"}):
        lake = _machine(tmp_path, "a", postgres_url, s3.url("outage"))
        _commit_month(lake, "US", "2024-01", 1.0)
        before = lake.snapshot_id()
        faults.fail_always = True
        with pytest.raises(LakeStorageError) as failure:
            _commit_month(lake, "US", "2024-02", 2.0)
        assert faults.injected >= 3  # every attempt was made before giving up
        faults.fail_always = False
        message = str(failure.value)
        assert "s3://ticklake/outage/lake/" in message
        assert "TICKLAKE_STORAGE_URL" in message
        assert os.environ["AWS_SECRET_ACCESS_KEY"] not in message
        assert lake.snapshot_id() == before  # nothing half-visible
        assert _rows(lake) == 40
        _commit_month(lake, "US", "2024-02", 2.0)  # the store is back: the re-run completes
        assert _rows(lake) == 80
