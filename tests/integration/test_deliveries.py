"""Tenant deliveries as Dagster runs them: the `tenant_deliveries` job materializes every tenant's delivery of a region
against a lake the library built, with its figures as metadata; a re-run rewrites nothing; a region outside a grant is
never delivered; the deliveries wait for their region's golden copy and adjusted bars; and a bad tenants file is
refused when the definitions load."""

from __future__ import annotations

import datetime as dt
import json
import textwrap
from pathlib import Path

import dagster as dg
import pytest

from assets.deliveries import GROUP, JOB, asset_key
from definitions import build_definitions
from resources.storage import StorageResource
from tests.products_lake import adjusted, bars, open_lake, put, sessions
from ticklake.products.tenants import TenantsFileError

pytestmark = pytest.mark.integration

NOW = "2024-06-28T23:00:00+00:00"
DAYS = sessions(dt.date(2024, 5, 1), dt.date(2024, 6, 28))
HKD = 0.128
KEY_HASH = "ab" * 32


def _tenants(path: Path, out: Path) -> Path:
    path.write_text(textwrap.dedent(f"""
        [tenants.research]
        regions = ["US", "HK"]
        prices = "adjusted"
        format = "parquet"
        target = "{out / 'research'}"
        [tenants.research.datasets]
        klines_daily = "all"

        [tenants.risk]
        regions = ["US", "HK"]
        currency = "USD"
        format = "csv"
        window = {{ last_years = 5 }}
        target = "{out / 'risk'}"
        [tenants.risk.datasets]
        klines_daily = ["trade_date", "symbol", "close", "volume"]
        [tenants.risk.api]
        key_sha256 = "{KEY_HASH}"
    """))
    return path


@pytest.fixture
def setup(tmp_path, monkeypatch):
    home = tmp_path / "home"
    lake = open_lake(home)
    us, hk = bars("US", ["AAPL", "MSFT"], DAYS), bars("HK", ["00700"], DAYS)
    put(lake, "klines_daily", us + hk)
    put(lake, "klines_daily_adjusted", adjusted(us + hk, 0.5))
    put(lake, "fx_daily", [{"region": "HK", "currency": "HKD", "trade_date": d, "usd_per_unit": HKD,
                            "pair": "USDHKD", "pair_close": 1 / HKD} for d in DAYS])
    lake.close()
    monkeypatch.setenv("TICKLAKE_TENANTS", str(_tenants(tmp_path / "tenants.toml", tmp_path / "out")))
    monkeypatch.setenv("TICKLAKE_HOME", str(home))
    return home, tmp_path / "out"


def _config(defs: dg.Definitions) -> dict:
    ops = {}
    for key in defs.resolve_asset_graph().get_all_asset_keys():
        if key.path[0] == GROUP:
            ops["__".join(key.path)] = {"config": {"now": NOW}}
    return {"ops": ops}


def _materializations(result) -> dict[str, dg.AssetMaterialization]:
    return {e.asset_key.to_user_string(): e.materialization for e in result.get_asset_materialization_events()}


def test_tenant_deliveries_materializes_each_tenants_region_with_its_figures(setup):
    home, out = setup
    defs = build_definitions(storage=StorageResource(home=str(home)))
    job = defs.resolve_job_def(JOB)
    assert job.partitions_def.get_partition_keys() == ["US", "HK", "SH", "JP"]
    instance = dg.DagsterInstance.ephemeral()
    result = job.execute_in_process(instance=instance, partition_key="HK", run_config=_config(defs))
    assert result.success
    done = _materializations(result)
    assert sorted(done) == ["deliveries/research/klines_daily", "deliveries/risk/klines_daily"]
    risk = done["deliveries/risk/klines_daily"].metadata
    assert risk["dagster/row_count"].value == len(DAYS)
    assert risk["files_written"].value == 2
    assert risk["months_changed_list"].value == "2024-05, 2024-06"
    assert risk["format"].value == "csv"
    assert risk["bytes"].value > 0
    assert risk["seconds"].value > 0
    manifest = json.loads(Path(risk["manifest"].value).read_text())
    assert manifest["snapshot"]["id"] == risk["lake_snapshot_id"].value
    assert manifest["currency"] == "USD"
    # the window ends on the exchange-local date of the run's instant: 23:00 UTC is 07:00 on the 29th in Hong Kong
    assert manifest["window"] == {"rule": "the last 5 years", "start": "2019-06-29", "end": "2024-06-29"}
    assert Path(risk["manifest"].value) == out / "risk" / "klines_daily" / "region=HK" / "manifest.json"
    first_close = (out / "risk" / "klines_daily" / "region=HK" / manifest["files"][0]["path"]).read_text() \
        .splitlines()[1].split(",")[2]
    assert float(first_close) == pytest.approx(10.0 * HKD)
    research = json.loads(Path(done["deliveries/research/klines_daily"].metadata["manifest"].value).read_text())
    assert research["table"] == "klines_daily_adjusted"
    shown = " ".join(str(v.value) for v in risk.values())
    shown += " ".join(str(v) for v in defs.resolve_assets_def(asset_key("risk", "klines_daily")).specs_by_key[
        asset_key("risk", "klines_daily")].metadata.values())
    assert KEY_HASH not in shown  # the key's hash never (nor its id)
    assert KEY_HASH[:12] not in shown

    again = job.execute_in_process(instance=instance, partition_key="HK", run_config=_config(defs))
    meta = _materializations(again)["deliveries/risk/klines_daily"].metadata
    assert meta["files_written"].value == 0
    assert meta["files_unchanged"].value == 2
    assert meta["months_changed"].value == 0
    assert meta["manifest_written"].value is False

    outside = job.execute_in_process(instance=instance, partition_key="SH", run_config=_config(defs))
    assert outside.success
    assert _materializations(outside) == {}  # outside both grants: nothing delivered, nothing materialized
    assert not (out / "risk" / "klines_daily" / "region=SH").exists()


def test_a_delivery_waits_for_its_regions_golden_copy_and_adjusted_bars(setup):
    home, _ = setup
    defs = build_definitions(storage=StorageResource(home=str(home)))
    graph = defs.resolve_asset_graph()
    risk = asset_key("risk", "klines_daily")
    parents = {p.to_user_string() for p in graph.get(risk).parent_keys}
    assert parents == {"klines_daily", "klines_daily_adjusted", "fx_daily", "security_master", "fundamentals_daily"}
    upstream = graph.get_parents_partitions(risk, "HK").parent_partitions
    assert {p.partition_key.split("|")[-1] for p in upstream} == {"HK"}  # klines' months of HK, and HK elsewhere
    assert {p.asset_key.to_user_string() for p in upstream if "|" not in p.partition_key} == \
        {"klines_daily_adjusted", "fx_daily", "security_master", "fundamentals_daily"}
    sensor = next(s for s in defs.sensors if s.name == "tenant_deliveries_automation")
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED

    instance = dg.DagsterInstance.ephemeral()
    evaluation = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    instance.report_runless_asset_event(dg.AssetMaterialization("klines_daily_adjusted", partition="HK"))
    evaluation = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=evaluation.cursor)
    requested = {(r.key.to_user_string(), tuple(r.true_subset.expensively_compute_partition_keys()))
                 for r in evaluation.results if r.key.path[0] == GROUP and r.true_subset.size}
    assert requested == {("deliveries/research/klines_daily", ("HK",)), ("deliveries/risk/klines_daily", ("HK",))}


def test_a_bad_tenants_file_is_refused_when_the_definitions_load(tmp_path, monkeypatch):
    path = tmp_path / "tenants.toml"
    path.write_text('[tenants.risk]\nregions = ["US"]\n[tenants.risk.datasets]\nklines_daily = ["close", "secret"]\n')
    monkeypatch.setenv("TICKLAKE_TENANTS", str(path))
    with pytest.raises(TenantsFileError, match=r"tenants\.risk\.datasets\.klines_daily: unknown field 'secret'"):
        build_definitions(storage=StorageResource(home=str(tmp_path / "home")))
