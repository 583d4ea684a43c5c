"""A plan read at a lake snapshot runs on the lake and answers as the lake was then (raw, and converted to USD)."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.products_lake import bars, open_lake, put, sessions
from ticklake.dictionary import DATASETS
from ticklake.products.query import Request, plan
from ticklake.products.tenants import Product, Tenant
from ticklake.storage import connect

DAYS = sessions(dt.date(2024, 6, 3), dt.date(2024, 6, 7))


@pytest.mark.parametrize("currency", ["local", "USD"])
def test_a_plan_at_a_snapshot_reads_the_lake_as_it_was(tmp_path, currency):
    lake = open_lake(tmp_path)
    put(lake, "klines_daily", bars("HK", ["00700"], DAYS))
    put(lake, "fx_daily", [{"region": "HK", "currency": "HKD", "trade_date": d, "usd_per_unit": 0.125,
                            "pair": "USDHKD", "pair_close": 8.0} for d in DAYS])
    before = lake.snapshot_id()
    put(lake, "klines_daily", bars("HK", ["00700"], DAYS, scale=2.0))  # a restatement after the snapshot
    tenant = Tenant("t", {"klines_daily": Product("klines_daily", DATASETS["klines_daily"],
                                                  ("symbol", "trade_date", "close"))}, ("HK",), currency=currency)
    query = plan(tenant, Request("klines_daily"), today=dt.date(2024, 6, 28), snapshot=before)
    assert f"AT (VERSION => {before})" in query.sql
    con = connect(tmp_path)
    try:
        closes = [r[2] for r in con.execute(query.sql, list(query.params)).fetchall()]
    finally:
        con.close()
    rate = 0.125 if currency == "USD" else 1.0
    assert closes == pytest.approx([(10.0 + j * 0.1) * rate for j in range(len(DAYS))])


def test_a_usd_plan_filters_the_table_before_its_joins():
    """The ASOF join keeps a WHERE above it from reaching the scan: every month of the region was read for one."""
    tenant = Tenant("t", {"klines_daily": Product("klines_daily", DATASETS["klines_daily"],
                                                  ("symbol", "trade_date", "close"))}, ("HK",), currency="USD")
    query = plan(tenant, Request("klines_daily", start=dt.date(2024, 6, 1), end=dt.date(2024, 6, 30)),
                 today=dt.date(2024, 6, 28), snapshot=7)
    assert query.sql.index('b."trade_date" >= ?') < query.sql.index("JOIN")
    assert query.params[:3] == ("HK", dt.date(2024, 6, 1), dt.date(2024, 6, 30))


@pytest.mark.parametrize(("dataset", "order"), [
    ("klines_daily", 'ORDER BY b."region", b."symbol", b."trade_date"'),  # the golden copy: one row per key
    ("klines_daily_by_source", 'ORDER BY b."region", b."symbol", b."trade_date", b."source"'),
    ("fundamentals_daily", 'ORDER BY b."region", b."symbol", b."as_of", b."source"'),
])
def test_rows_come_in_one_order_even_where_sources_share_a_key(dataset, order):
    table = DATASETS[dataset]
    tenant = Tenant("t", {dataset: Product(dataset, table, ("symbol",))}, ("US",))
    assert plan(tenant, Request(dataset), today=dt.date(2024, 6, 28)).sql.endswith(order)
