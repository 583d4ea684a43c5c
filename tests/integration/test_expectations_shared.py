"""The production profile's Great Expectations project: workers on different machines (here, different homes)
validate under one lock and keep one project in object storage, so every worker's validations are in the Data
Docs index anyone copies down, and each result names its page's stored copy."""

from __future__ import annotations

import threading

import dagster as dg
import pytest

from checks.expectations import CHECK_KEYS
from definitions import build_definitions
from resources.storage import StorageResource
from ticklake.quality import expectations
from ticklake.storage.object_store import location
from ticklake.storage.remote_tree import RemoteTree

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SUITE = "securities.expectations"


def _worker(tmp_path, name: str, storage_url: str, postgres_url: str) -> StorageResource:
    """A worker of the production profile: a home of its own, the lake's catalog (and its locks) in PostgreSQL."""
    return StorageResource(home=str(tmp_path / name), url=storage_url, catalog=f"postgres:{postgres_url}")


def _validate(storage: StorageResource) -> expectations.SuiteResult:
    shared, locks = storage.expectations_sharing()
    with storage.lakehouse().reader() as con:
        [result] = expectations.run(con, storage.paths.home, {SUITE}, shared=shared, locks=locks)
    return result


def _validation_pages(home) -> set[str]:
    root = expectations.docs_root(home) / expectations.VALIDATION_PAGES
    return {p.relative_to(root).as_posix() for p in root.rglob("*.html")}


def test_workers_share_one_project_and_one_data_docs_site(tmp_path, s3, postgres_url, monkeypatch):
    url = s3.url("ge")
    a, b = (_worker(tmp_path, name, url, postgres_url) for name in ("worker-a", "worker-b"))
    first = _validate(a)
    second = _validate(b)

    # b started from what a stored: its site lists both validations, and a's page is b's too
    assert len(_validation_pages(b.paths.home)) == 2
    assert _validation_pages(a.paths.home) < _validation_pages(b.paths.home)
    index = expectations.docs_index(b.paths.home).read_text()
    assert index.count(SUITE) >= 2
    # each result names its page's stored copy, which exists
    tree = RemoteTree(location(url), expectations.SHARED_PREFIX)
    for result in (first, second):
        assert result.docs_object.startswith(f"{url}/{expectations.SHARED_PREFIX}/{expectations.VALIDATION_PAGES}")
        key = result.docs_object.removeprefix("s3://")
        assert tree.where.filesystem.get_file_info(key).size > 0

    # an analyst's machine copies the whole site down with the documented command
    monkeypatch.setenv("TICKLAKE_HOME", str(tmp_path / "analyst"))
    monkeypatch.setenv("TICKLAKE_STORAGE_URL", url)
    assert expectations.main(["docs"]) == 0
    assert _validation_pages(tmp_path / "analyst") == _validation_pages(b.paths.home)


def test_validations_on_two_workers_at_once_wait_for_each_other(tmp_path, s3, postgres_url):
    url = s3.url("ge-concurrent")
    workers = [_worker(tmp_path, f"worker-{i}", url, postgres_url) for i in range(2)]
    _validate(workers[0])  # the project exists, so both now start from it
    errors: list[BaseException] = []

    def validate(storage: StorageResource) -> None:
        try:
            _validate(storage)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=validate, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert errors == []
    # whichever validated last pulled the other's result first: nothing one worker wrote was lost
    stored = RemoteTree(location(url), expectations.SHARED_PREFIX).listing()
    pages = {k for k in stored if k.startswith(expectations.VALIDATION_PAGES)}
    assert len(pages) == 3
    assert max(len(_validation_pages(w.paths.home)) for w in workers) == 3


def test_the_checks_name_the_stored_pages_not_the_workers_copy(tmp_path, s3, postgres_url, make_server,
                                                               resources_for):
    """In the UI, a check validated on a Celery worker links the shared copies (s3://...), never a file:// path on
    the worker that ran it."""
    url = s3.url("ge-checks")
    resources = {**resources_for(make_server()), "storage": _worker(tmp_path, "worker", url, postgres_url)}
    defs = build_definitions(**resources)
    result = defs.resolve_job_def("warehouse_checks").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    evaluations = [c for c in result.get_asset_check_evaluations() if "data_docs_object" in c.metadata]
    assert len(evaluations) == len(CHECK_KEYS)
    for evaluation in evaluations:
        metadata = evaluation.metadata
        assert "data_docs" not in metadata
        assert metadata["data_docs_index"].value == f"{url}/{expectations.SHARED_PREFIX}/{expectations.INDEX_PAGE}"
        assert metadata["data_docs_object"].value.startswith(f"{url}/{expectations.SHARED_PREFIX}/")
