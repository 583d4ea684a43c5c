"""The operations tables are in the catalog (issue 20, item 6): external assets grouped under `operations`, with the
dictionary's column schema, depending on the assets whose commits write them."""

from __future__ import annotations

import dagster as dg

from definitions import build_definitions
from ticklake.dictionary import DATASETS

TABLES = {"lake_partitions", "reconciliation_log", "quarantine", "klines_daily_history", "security_master_history",
          "fundamentals_daily_history"}


def test_operations_tables_are_external_assets_with_their_schemas():
    graph = build_definitions().resolve_asset_graph()
    for name in TABLES:
        node = graph.get(dg.AssetKey(name))
        assert node.group_name == "operations"
        assert not node.is_materializable  # written by the dataset assets' commits, never by Dagster
        schema = node.metadata["dagster/column_schema"]
        assert [c.name for c in schema.columns] == [f.name for f in DATASETS[name].fields]
        assert node.metadata["dagster/table_name"] == f"lake.{name}"
    assert graph.get(dg.AssetKey("klines_daily_history")).parent_keys == {dg.AssetKey("klines_daily")}
    assert dg.AssetKey("klines_daily") in graph.get(dg.AssetKey("reconciliation_log")).parent_keys
    # the jobs never select them (nothing to materialize)
    defs = build_definitions()
    assert dg.AssetKey("quarantine") not in defs.resolve_job_def("nightly_refresh").asset_layer.selected_asset_keys
