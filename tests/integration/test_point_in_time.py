"""Point in time: a restatement never overwrites history. Every superseded version is kept (in its `_history`, in
the same commit as what supersedes it) and `<dataset>_as_of(T)` answers what was known at T."""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import pytest

from resources.storage import StorageResource
from ticklake.dictionary import HISTORY
from ticklake.dictionary.frames import with_lineage
from ticklake.dictionary.fundamentals import FUNDAMENTALS_DAILY
from ticklake.storage import LakeStorageError
from ticklake.storage.writes import write

pytestmark = pytest.mark.integration
MONDAY = dt.datetime(2024, 6, 24, 23, 0, tzinfo=dt.UTC)
VALUES = {"region": "US", "month": "2024-06", "source": "itick"}


def _snapshot(market_cap: dict[str, float], as_of: str = "2024-06-24") -> pd.DataFrame:
    symbols = sorted(market_cap)
    return pd.DataFrame({
        "region": pd.array(["US"] * len(symbols), dtype="string"),
        "symbol": pd.array(symbols, dtype="string"),
        "as_of": pd.to_datetime([as_of] * len(symbols)).astype("datetime64[ms]"),
        "market_cap": [market_cap[s] for s in symbols],
        "shares_outstanding": [1e6] * len(symbols),
        "pe": [15.0] * len(symbols),
        **{c: pd.array([None] * len(symbols), dtype="string") for c in ("name", "exchange", "sector", "industry")},
        "currency": pd.array(["USD"] * len(symbols), dtype="string"),
    })[[c for c in FUNDAMENTALS_DAILY.columns if c not in FUNDAMENTALS_DAILY.lineage_columns]]


def _write(storage: StorageResource, frame: pd.DataFrame, now: dt.datetime, run_id: str):
    lake = storage.lakehouse()
    return write(lake, FUNDAMENTALS_DAILY, VALUES, with_lineage(frame, "itick", run_id, now),
                 run_id=run_id, now=now)


def _as_of(storage: StorageResource, ts: dt.datetime) -> dict[str, float]:
    with storage.lakehouse().reader() as con:
        rows = con.execute("SELECT symbol, market_cap FROM fundamentals_daily_as_of(?)", [ts]).fetchall()
    return dict(rows)


def test_a_restated_value_keeps_its_old_version_and_as_of_answers_what_was_known(tmp_path):
    storage = StorageResource(home=str(tmp_path))
    _write(storage, _snapshot({"AAA": 100.0, "BBB": 200.0}), MONDAY, "run-1")
    wednesday = MONDAY + dt.timedelta(days=2)
    _write(storage, _snapshot({"AAA": 101.0, "BBB": 200.0}), wednesday, "run-2")  # the source restated AAA

    with storage.lakehouse().reader() as con:
        latest = dict(con.execute("SELECT symbol, market_cap FROM fundamentals_daily").fetchall())
        history = con.execute("SELECT symbol, market_cap, ingested_at, superseded_at, superseded_by "
                              "FROM fundamentals_daily_history").fetchall()
    assert latest == {"AAA": 101.0, "BBB": 200.0}  # analysts' table: the latest
    assert history == [("AAA", 100.0, MONDAY, wednesday, "run-2")]  # only the restated row, once
    assert _as_of(storage, MONDAY + dt.timedelta(days=1)) == {"AAA": 100.0, "BBB": 200.0}
    assert _as_of(storage, wednesday) == {"AAA": 101.0, "BBB": 200.0}
    assert _as_of(storage, MONDAY - dt.timedelta(hours=1)) == {}  # nothing was known before the first run

    # the history's own partition holds the superseded version, with its status row like any partition
    stored = storage.lakehouse().read_table(HISTORY["fundamentals_daily"], **VALUES)
    assert stored.column("market_cap").to_pylist() == [100.0]

    # the same write again changes nothing and adds no history
    _write(storage, _snapshot({"AAA": 101.0, "BBB": 200.0}), wednesday + dt.timedelta(days=1), "run-3")
    with storage.lakehouse().reader() as con:
        assert con.execute("SELECT count(*) FROM fundamentals_daily_history").fetchall()[0][0] == 1


def test_history_and_rows_commit_together_or_not_at_all(tmp_path, monkeypatch):
    storage = StorageResource(home=str(tmp_path))
    _write(storage, _snapshot({"AAA": 100.0}), MONDAY, "run-1")
    from ticklake.storage import lakehouse

    real = lakehouse._delete_insert

    def fail_on_the_rows(con, dataset, *args):  # the history goes in first, then this fails
        if dataset.name == "fundamentals_daily":
            raise duckdb.IOException("IO Error: No space left on device")
        return real(con, dataset, *args)

    monkeypatch.setattr(lakehouse, "_delete_insert", fail_on_the_rows)
    with pytest.raises(LakeStorageError, match="No space left on device"):
        _write(storage, _snapshot({"AAA": 101.0}), MONDAY + dt.timedelta(days=1), "run-2")
    monkeypatch.undo()
    with storage.lakehouse().reader() as con:
        assert con.execute("SELECT market_cap FROM fundamentals_daily").fetchall() == [(100.0,)]
        assert con.execute("SELECT count(*) FROM fundamentals_daily_history").fetchall()[0][0] == 0
    # nothing of the failed commit is visible; the next write supersedes the stored version as if it never ran
    later = MONDAY + dt.timedelta(days=2)
    _write(storage, _snapshot({"AAA": 101.0}), later, "run-3")
    assert _as_of(storage, MONDAY + dt.timedelta(hours=12)) == {"AAA": 100.0}
    assert _as_of(storage, later) == {"AAA": 101.0}
