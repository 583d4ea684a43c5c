"""The tenants file: every grant checked against the data dictionary when it loads, every fault named by its key,
and an API key never kept (only its hash)."""

from __future__ import annotations

import datetime as dt
import textwrap

import pytest

from ticklake.products.query import GrantError, Request, RequestError, plan
from ticklake.products.tenants import Tenants, TenantsFileError, key_sha256

GOOD = """
[tenants.research]
regions = ["US", "HK"]
prices = "adjusted"
format = "parquet"
window = { last_years = 5 }
[tenants.research.datasets]
klines_daily = "all"
[tenants.research.api]
key_env = "KEY_RESEARCH"
requests_per_second = 50

[tenants.risk]
regions = ["US", "HK", "JP"]
currency = "USD"
format = "csv"
window = { start = 2020-01-01, end = 2024-12-31 }
[tenants.risk.datasets]
klines_daily = ["trade_date", "symbol", "close", "volume"]
[tenants.risk.api]
key_sha256 = "%s"
"""
RISK_KEY = "risk-key-0123456789"


def _load(tmp_path, text: str, **environ: str) -> Tenants:
    path = tmp_path / "tenants.toml"
    path.write_text(textwrap.dedent(text))
    return Tenants.load(path, environ=environ)


def _good(tmp_path) -> Tenants:
    return _load(tmp_path, GOOD % key_sha256(RISK_KEY), KEY_RESEARCH="research-secret-key")


def test_a_good_file_loads_in_dictionary_order_with_only_hashes(tmp_path):
    tenants = _good(tmp_path)
    research, risk = tenants.get("research"), tenants.get("risk")
    assert research.products["klines_daily"].table.name == "klines_daily_adjusted"  # adjusted prices
    assert "adjustment_factor" in research.products["klines_daily"].fields
    assert risk.products["klines_daily"].fields == ("symbol", "trade_date", "close", "volume")
    assert risk.products["klines_daily"].table.name == "klines_daily"
    assert tenants.by_key(RISK_KEY) is risk
    assert tenants.by_key("research-secret-key") is research
    assert tenants.by_key("nope") is None
    assert "research-secret-key" not in repr(research)
    assert research.api.key_hash not in repr(research)
    assert research.api.key_id == key_sha256("research-secret-key")[:12]
    assert str(research.target).endswith("deliveries/research")


@pytest.mark.parametrize(("edit", "key", "rule"), [
    (('klines_daily = "all"', 'klines_daily = ["*"]'), "tenants.research.datasets.klines_daily", "unknown field '*'"),
    (('klines_daily = "all"', 'klines_daily = ["close", "secret"]'), "tenants.research.datasets.klines_daily",
     "unknown field 'secret'"),
    (('klines_daily = "all"', 'klines = "all"'), "tenants.research.datasets.klines", "unknown dataset"),
    (('klines_daily = "all"', 'lake_partitions = "all"'), "tenants.research.datasets.lake_partitions",
     "unknown dataset"),
    (('klines_daily = "all"', 'klines_daily_history = "all"'), "tenants.research.datasets.klines_daily_history",
     "unknown dataset"),
    (('regions = ["US", "HK"]', 'regions = ["US", "XX"]'), "tenants.research.regions", "unknown region 'XX'"),
    (('prices = "adjusted"', 'prices = "adjustd"'), "tenants.research.prices", "not one of raw, adjusted"),
    (('format = "parquet"', 'format = "xlsx"'), "tenants.research.format", "not one of parquet, csv, jsonl"),
    (('key_env = "KEY_RESEARCH"', 'key = "plain-text-key"'), "tenants.research.api.key", "never goes in"),
    (('key_env = "KEY_RESEARCH"', 'key_env = "NOT_SET_ANYWHERE"'), "tenants.research.api.key_env", "is not set"),
    (('requests_per_second = 50', 'requests_per_second = 0'), "tenants.research.api.requests_per_second",
     "above 0"),
    (('window = { last_years = 5 }', 'window = { last_years = 5, start = 2020-01-01 }'), "tenants.research.window",
     "either rolling"),
    (('window = { last_years = 5 }', 'window = { start = "2020-01-01" }'), "tenants.research.window.start",
     "TOML date"),
    (('prices = "adjusted"', 'prices = "adjusted"\ncolour = "blue"'), "tenants.research.colour", "unknown key"),
])
def test_a_bad_file_is_refused_naming_the_key_and_rule(tmp_path, edit, key, rule):
    text = (GOOD % key_sha256(RISK_KEY)).replace(*edit, 1)
    with pytest.raises(TenantsFileError) as err:
        _load(tmp_path, text, KEY_RESEARCH="research-secret-key")
    assert key in str(err.value)
    assert rule in str(err.value)
    assert "research-secret-key" not in str(err.value)
    assert "plain-text-key" not in str(err.value)


@pytest.mark.parametrize(("research", "risk", "rule"), [
    ("/srv/out", "/srv/out", "/srv/out is the same as tenant research's target"),
    ("/srv/out", "/srv/out/risk", "/srv/out/risk is inside tenant research's target"),
    ("s3://b/deliveries", "s3://b/deliveries/", "s3://b/deliveries is the same as tenant research's target"),
])
def test_two_tenants_cannot_share_a_delivery_target(tmp_path, research, risk, rule):
    text = (GOOD % key_sha256(RISK_KEY)).replace('prices = "adjusted"', f'prices = "adjusted"\ntarget = "{research}"')
    text = text.replace('currency = "USD"', f'currency = "USD"\ntarget = "{risk}"')
    with pytest.raises(TenantsFileError) as err:
        _load(tmp_path, text, KEY_RESEARCH="research-secret-key")
    assert "tenants.risk.target" in str(err.value)
    assert rule in str(err.value)


def test_two_tenants_cannot_share_a_key(tmp_path):
    with pytest.raises(TenantsFileError, match="same API key"):
        _load(tmp_path, GOOD % key_sha256("same"), KEY_RESEARCH="same")


TODAY = dt.date(2024, 6, 28)


def test_a_plan_selects_only_granted_fields_regions_and_dates(tmp_path):
    risk = _good(tmp_path).get("risk")
    query = plan(risk, Request.parse("klines_daily", {"fields": "close,volume", "symbols": "AAPL"}), today=TODAY)
    assert query.names == ["close", "volume"]
    assert query.regions == ("US", "HK", "JP")
    assert (query.start, query.end) == (dt.date(2020, 1, 1),
                                                                                dt.date(2024, 12, 31))
    assert "AAPL" not in query.sql
    assert "AAPL" in query.params
    assert [c.unit for c in query.columns] == ["USD", "shares"]
    research = _good(tmp_path).get("research")
    q = plan(research, Request("klines_daily"), today=TODAY)
    assert q.start == dt.date(2019, 6, 28)
    assert q.end == TODAY
    assert '"klines_daily_adjusted"' in q.sql


@pytest.mark.parametrize(("params", "error", "rule"), [
    ({"fields": "*"}, RequestError, "'*' is not one of field names"),
    ({"fields": "close,"}, RequestError, "no empty entries"),
    ({"fields": "close; DROP TABLE x"}, RequestError, "is not one of field names"),
    ({"fields": "nonsense"}, RequestError, "has no field 'nonsense'"),
    ({"fields": "open"}, GrantError, "field 'open' of klines_daily is not in tenant risk's grant"),
    ({"symbols": "AAPL' OR 1=1 --"}, RequestError, "is not one of instrument codes"),
    ({"regions": "SH"}, GrantError, "region SH is outside tenant risk's grant"),
    ({"start": "2019-12-31"}, GrantError, "start 2019-12-31 is outside tenant risk's window"),
    ({"end": "2025-01-01"}, GrantError, "end 2025-01-01 is outside"),
    ({"start": "yesterday"}, RequestError, "is not a date"),
    ({"start": "2024-02-01", "end": "2024-01-01"}, RequestError, "after end"),
    ({"symbols": ",".join(f"S{i}" for i in range(201))}, RequestError, "at most 200 symbols"),
])
def test_hostile_requests_are_refused_before_any_sql_exists(tmp_path, params, error, rule):
    risk = _good(tmp_path).get("risk")
    with pytest.raises(error) as err:
        plan(risk, Request.parse("klines_daily", params), today=TODAY)
    assert type(err.value) is error
    assert rule in err.value.rule


def test_a_dataset_outside_the_grant_is_403(tmp_path):
    with pytest.raises(GrantError, match="dataset 'fx_daily' is not in tenant risk's grant"):
        plan(_good(tmp_path).get("risk"), Request("fx_daily"), today=TODAY)


@pytest.mark.parametrize("tenant", ["research", "risk"])
def test_a_plan_at_a_snapshot_is_valid_sql(tmp_path, tenant):
    import duckdb

    query = plan(_good(tmp_path).get(tenant), Request.parse("klines_daily", {"symbols": "AAPL"}), today=TODAY,
                 snapshot=42)
    [statement] = duckdb.extract_statements(query.sql)  # parses: DuckDB takes `t b AT (...)`, never `t AT (...) b`
    assert statement.query.count("AT (VERSION => 42)") == (4 if tenant == "risk" else 1)
