"""Documentation that runs: every example query of the data dictionary (docs/tables.md) and every statement of the
analysts' cookbook (docs/analyst.md) runs on a warehouse built by the jobs the schedules run, and returns rows."""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg
import pytest

import ticklake
from automation.jobs import run_partition_range
from definitions import build_definitions
from tests.conftest import FROZEN_NOW
from ticklake.dictionary import DATASETS, MACROS

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ANALYST_DOC = Path(__file__).resolve().parents[2] / "docs" / "analyst.md"
REGIONS = ("US", "HK")  # the regions the cookbook queries
# Queries that need more than one night of snapshots or a disagreement to return rows (still must run).
MAY_BE_EMPTY = ("is_session IS DISTINCT FROM source_is_session", "FROM reconciliation_log",
                "_as_of(TIMESTAMPTZ '2024-06-25")
# The cookbook names a code the demo's simulator (today's clock) lists; this warehouse's clock is 2024.
DEMO_SYMBOL = "'BAEW'"
SOME_SYMBOL = "(SELECT min(symbol) FROM klines_daily WHERE region = 'US')"


def _cookbook() -> list[str]:
    """The statements of the page's "Cookbook" section (up to the next section), comments removed."""
    text = ANALYST_DOC.read_text()
    section = text.split("\n## Cookbook\n", 1)[1].split("\n## ", 1)[0]
    sql = "\n".join(re.findall(r"```sql\n(.*?)```", section, flags=re.S))
    return [s.strip() for s in re.sub(r"--[^\n]*", "", sql).split(";") if s.strip()]


def _jobs_at(now) -> dict:
    config = {"config": {"now": now.isoformat()}}
    names = ("securities", "trading_calendar", "security_master", "corporate_actions", "klines_daily",
             "fundamentals_daily", "fx_daily", "valuation_daily", "klines_daily_adjusted")
    return {"ops": {name: config for name in names}}


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    from itick_sim import SimSettings, Simulator, serve
    from resources.itick import ITickResource
    from resources.storage import StorageResource
    from tests.conftest import TOKEN

    home = tmp_path_factory.mktemp("cookbook")
    with serve(Simulator(SimSettings(now=FROZEN_NOW, symbols_per_region=20))) as server:
        itick = ITickResource(base_url=server.url, token=TOKEN, home=str(home), plan="100000")
        defs = build_definitions(itick=itick, storage=StorageResource(home=str(home)))
        instance = dg.DagsterInstance.ephemeral()
        config = _jobs_at(FROZEN_NOW)

        def job(name: str, region: str) -> None:
            job_def = defs.resolve_job_def(name)
            ops = {n: c for n, c in config["ops"].items() if n in job_def.graph.node_dict}
            assert job_def.execute_in_process(instance=instance, partition_key=region,
                                              run_config={"ops": ops}).success

        for region in REGIONS:  # what the schedules run, in their order
            job("reference_refresh", region)
            result = run_partition_range(defs, region, "2023-01", "2024-06", instance=instance,
                                         run_config={"ops": {"klines_daily": config["ops"]["klines_daily"]}})
            assert result.success
            job("fundamentals_refresh", region)
            job("analytics_refresh", region)
    return home


def _rows(warehouse: Path, sql: str) -> int:
    with ticklake.connect(warehouse) as con:
        return len(con.execute(sql).fetchall())


def test_every_dictionary_example_runs(warehouse):
    examples = [d.example for d in DATASETS.values() if d.example] + [m.example for m in MACROS.values()]
    assert len(examples) == len(DATASETS) + len(MACROS)  # every table and macro shows how to query it
    for sql in examples:
        _rows(warehouse, sql)  # a renamed column or table fails here


def test_every_cookbook_query_runs_and_returns_rows(warehouse):
    statements = _cookbook()
    assert len(statements) >= 8
    for sql in statements:
        rows = _rows(warehouse, sql.replace(DEMO_SYMBOL, SOME_SYMBOL))
        assert rows > 0 or any(marker in sql for marker in MAY_BE_EMPTY), sql
