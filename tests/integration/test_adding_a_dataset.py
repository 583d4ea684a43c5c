"""docs/adding-a-dataset.md holds: a dataset is a dictionary entry, a fetcher and one line of registration. The
worked example (docs/examples/ipo_calendar.py) is registered the way its three files would register it, then
materialized by real Dagster against the simulator over loopback HTTP into a real lake."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import dagster as dg
import pytest

import ticklake
from ticklake.dictionary import DATASETS
from ticklake.sources.itick.fetchers import FETCHERS

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "ipo_calendar.py"


@pytest.fixture
def example(monkeypatch):
    spec = importlib.util.spec_from_file_location("ipo_calendar_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    # what declaring it in ticklake/dictionary/reference_data.py and listing it in FETCHERS do
    monkeypatch.setitem(DATASETS, module.IPO_CALENDAR.name, module.IPO_CALENDAR)
    monkeypatch.setitem(FETCHERS, module.IPO_CALENDAR.name, module.IpoCalendarFetcher)
    return module


def test_the_worked_example_lands_in_the_lake_and_a_rerun_changes_nothing(example, make_server, resources_for,
                                                                         home):
    server = make_server()
    resources = resources_for(server)
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([example.ipo_calendar], resources=resources, partition_key="JP", instance=instance)
    assert result.success
    expected = {(i.code, i.listed) for i in server.simulator.ipos("JP", "recent")}
    assert expected
    with ticklake.connect(home) as con:
        stored = {(s, d) for s, d in con.execute("SELECT symbol, listing_date FROM ipo_calendar WHERE region = 'JP'")
                  .fetchall()}
        described = con.execute("SELECT comment FROM duckdb_columns() WHERE table_name = 'ipo_calendar' AND "
                                "column_name = 'listing_date'").fetchone()[0]
        assert con.execute(example.IPO_CALENDAR.example).fetchall()
    assert stored == expected
    assert described == example.IPO_CALENDAR.field("listing_date").doc  # the DDL came from the dictionary
    [event] = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert metadata["dagster/row_count"].value == len(expected)
    assert metadata["rows_added"].value == len(expected)
    assert metadata["api_calls"].value == server.simulator.counters.count("/stock/ipo") >= 1

    again = dg.materialize([example.ipo_calendar], resources=resources, partition_key="JP", instance=instance)
    [event] = again.get_asset_materialization_events()
    assert event.materialization.metadata["rows_unchanged"].value == len(expected)
    assert event.materialization.metadata["rows_added"].value == 0


def test_a_factory_call_with_both_or_neither_pipeline_is_refused(example):
    from assets.factory import reference_asset

    with pytest.raises(ValueError, match="either refresh"):
        reference_asset(example.IPO_CALENDAR)
    with pytest.raises(ValueError, match="either refresh"):
        reference_asset(example.IPO_CALENDAR, lambda ctx, region: None, query=example.IpoQuery)
