"""The golden copy in a real lake: iTick's month stored by a Dagster run, a vendor file of the same month (the
simulator's, with controlled divergences) parsed by its format module into the raw layer, then the month re-derived:
the golden bars, the exception queue, an override, its expiry, the history and the ledger."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pandas as pd
import pytest

from automation.jobs import run_partition_range
from definitions import build_definitions
from itick_sim.vendor_files import Divergences, vendor_file
from resources.storage import StorageResource
from ticklake.datasets.context import RunContext
from ticklake.datasets.golden import AGREED, OVERRIDE, PRIORITY, SINGLE
from ticklake.datasets.golden_copy import raw_bars, rederive
from ticklake.dictionary.market_data import KLINES_DAILY_BY_SOURCE
from ticklake.dictionary.operations import GOLDEN_OVERRIDES
from ticklake.sources.declared import Policy
from ticklake.sources.files.formats import quandl_eod

NOW = dt.datetime(2024, 6, 28, 23, 0, tzinfo=dt.UTC)  # tests/conftest.py's frozen clock
API, VENDOR = "itick", "quandl"  # the test servers are reached over HTTP: the real client's name
POLICY = Policy(priority=(API, VENDOR), price_tolerance_bps=5.0, volume_tolerance_pct=1.0)
MONTH = {"region": "US", "month": "2024-06", "source": VENDOR}


def _beyond(t) -> bool:
    return t.field != "bar" and abs(t.vendor_value - t.api_value) / abs(t.api_value) > POLICY.tolerance(t.field)


def _rows(con, sql: str, params=()) -> list[tuple]:
    return con.execute(sql, list(params)).fetchall()


@pytest.mark.slow
def test_a_vendor_file_is_arbitrated_overridden_and_restored(make_server, resources_for, home, tmp_path,
                                                             monkeypatch):
    server = make_server()
    defs = build_definitions(**resources_for(server))
    instance = dg.DagsterInstance.ephemeral()
    defs.resolve_job_def("reference_refresh").execute_in_process(instance=instance, partition_key="US")
    assert run_partition_range(defs, "US", "2024-06", "2024-06", instance=instance).success
    lake = StorageResource(home=str(home)).lakehouse()
    with lake.reader() as con:
        itick_only = _rows(con, "SELECT symbol, trade_date, close, rule, sources FROM klines_daily ORDER BY ALL")
    assert {(r[3], r[4]) for r in itick_only} == {(SINGLE, API)}

    vf = vendor_file(server.simulator, "US", "2024-06-03", "2024-06-28", divergences=Divergences(), seed=3)
    delivery = quandl_eod.FORMAT.read(vf.name, vf.data, {})
    assert len(delivery.rejected) == 0
    ctx = RunContext(lake, "vendor-run", NOW, log=print, policy=POLICY)
    no_instant = pd.Series(pd.NaT, index=delivery.bars.index, dtype="datetime64[ms, UTC]")  # a file has dates only
    bars = raw_bars(delivery.bars.assign(region="US", turnover=float("nan"), bar_ts=no_instant),
                    received_at=NOW, file=vf.name)
    ctx.write(KLINES_DAILY_BY_SOURCE, MONTH, bars.drop(columns=["split_ratio", "dividend"]).assign(
        split_ratio=delivery.bars["split_ratio"].to_numpy(), dividend=delivery.bars["dividend"].to_numpy()))
    [month] = rederive(ctx, "US", ["2024-06"])

    expected = {(t.symbol, pd.Timestamp(t.trade_date).date(), t.field) for t in vf.truth if _beyond(t)}
    with lake.reader() as con:
        opened = set(_rows(con, "SELECT symbol, trade_date, field FROM golden_exceptions WHERE status = 'open'"))
        rules = dict(_rows(con, "SELECT rule, count(*) FROM klines_daily GROUP BY 1"))
        raw_itick = _rows(con, "SELECT count(*) FROM klines_daily_by_source WHERE source = ?", [API])[0][0]
    assert opened == expected
    assert rules[PRIORITY] == len({(s, d) for s, d, _ in expected}) == month.counts[PRIORITY]
    assert rules[AGREED] > rules[PRIORITY]
    assert rules[SINGLE] > 0
    assert raw_itick == len(itick_only)  # arbitration never writes the raw layer

    # a person decides one disputed close for the vendor: the golden bar changes, through history and ledger
    disputed = next(t for t in vf.truth if t.kind == "off_tolerance" and _beyond(t))
    override = {"override_id": "ov-1", "region": "US", "symbol": disputed.symbol,
                "trade_date": pd.Timestamp(disputed.trade_date), "field": disputed.field, "chosen_source": VENDOR,
                "value": float("nan"), "reason": "the vendor's tape is right", "author": "analyst@example.com",
                "created_at": pd.Timestamp(NOW), "expires_on": pd.NaT, "status": "active",
                "status_at": pd.Timestamp(NOW)}
    _override(ctx, override)
    rederive(ctx, "US", ["2024-06"])
    key = [disputed.symbol, disputed.trade_date]
    with lake.reader() as con:
        [(value, rule, winner)] = _rows(con, f"SELECT {disputed.field}, rule, source FROM klines_daily WHERE "
                                        "symbol = ? AND trade_date = ?", key)
        status = _rows(con, "SELECT status, override_id FROM golden_exceptions WHERE symbol = ? AND trade_date = ? "
                       "AND field = ?", [*key, disputed.field])
        history = _rows(con, f"SELECT {disputed.field} FROM klines_daily_history WHERE symbol = ? AND trade_date = ?",
                        key)
        ledger = _rows(con, "SELECT field, stored_value, source_value, source FROM reconciliation_log WHERE "
                       "dataset = 'klines_daily' AND symbol = ? AND date = ?", key)
    assert (value, rule, winner) == (pytest.approx(disputed.vendor_value), OVERRIDE, VENDOR)
    assert status == [("overridden", "ov-1")]
    assert history == [(pytest.approx(disputed.api_value),)]
    assert (disputed.field, pytest.approx(disputed.api_value), pytest.approx(disputed.vendor_value), VENDOR) in ledger

    # the override expires: the bar is re-derived from the sources, the priority source's value again
    _override(ctx, {**override, "expires_on": pd.Timestamp(NOW.date())})
    rederive(ctx, "US", ["2024-06"])
    with lake.reader() as con:
        [(value, rule)] = _rows(con, f"SELECT {disputed.field}, rule FROM klines_daily WHERE symbol = ? AND "
                                "trade_date = ?", key)
        status = _rows(con, "SELECT status FROM golden_exceptions WHERE symbol = ? AND trade_date = ? AND field = ?",
                       [*key, disputed.field])
    assert (value, rule) == (pytest.approx(disputed.api_value), PRIORITY)
    assert status == [("open",)]

    # iTick's next run over the month keeps the vendor's bars and the queue: the golden copy is of every source
    sources = tmp_path / "sources.toml"
    sources.write_text(f'[sources.{VENDOR}]\nkind = "file_drop"\nformat = "quandl_eod"\nregions = ["US"]\n\n'
                       f'[arbitration]\npriority = ["{API}", "{VENDOR}"]\nprice_tolerance_bps = 5.0\n'
                       'volume_tolerance_pct = 1.0\n')
    monkeypatch.setenv("TICKLAKE_SOURCES", str(sources))
    assert run_partition_range(defs, "US", "2024-06", "2024-06", instance=instance).success
    with lake.reader() as con:
        assert dict(_rows(con, "SELECT rule, count(*) FROM klines_daily GROUP BY 1")) == rules
        assert set(_rows(con, "SELECT symbol, trade_date, field FROM golden_exceptions WHERE status = 'open'")) \
            == expected


def _override(ctx: RunContext, row: dict) -> None:
    frame = pd.DataFrame([row]).astype({"trade_date": "datetime64[ms]", "expires_on": "datetime64[ms]",
                                        "created_at": "datetime64[ms, UTC]", "status_at": "datetime64[ms, UTC]"})
    for column in ("override_id", "region", "symbol", "field", "chosen_source", "reason", "author", "status"):
        frame[column] = frame[column].astype("string")
    ctx.write(GOLDEN_OVERRIDES, {"region": "US", "source": "ticklake"}, frame)
