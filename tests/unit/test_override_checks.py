"""The checks an override passes before anything is read or written (no lake needed: a mistake in the arguments is
refused first), the bar check, and the command line's own refusals and suggestions."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from ticklake import cli
from ticklake.datasets.context import RunContext
from ticklake.datasets.overrides import OverrideError, check_bar, make_override

NOW = dt.datetime(2024, 6, 28, 23, 0, tzinfo=dt.UTC)  # US local today: 2024-06-28
CTX = RunContext(None, "unit", NOW)  # type: ignore[arg-type]  # every case below is refused before the lake
GOOD = {"region": "US", "symbol": "AAPL", "trade_date": "2024-06-12", "field": "close", "source": "quandl",
        "reason": "the vendor's tape is right", "author": "analyst@example.com"}


@pytest.mark.parametrize(("changes", "message"), [
    ({"region": "XX"}, "region='XX': unknown region"),
    ({"symbol": " "}, "symbol must not be empty"),
    ({"trade_date": "2024-13-01"}, "trade_date='2024-13-01' is not a date"),
    ({"field": "closing"}, "field='closing' is not one of open, high, low, close, volume, bar"),
    ({"value": 12.5}, "not both"),
    ({"source": None}, "not neither"),
    ({"source": None, "value": 1.0, "field": "bar"}, "field='bar' needs a source"),
    ({"source": None, "value": "abc"}, "value='abc' is not a number"),
    ({"source": None, "value": float("inf")}, "must be a finite number"),
    ({"source": None, "value": 0}, "must be > 0 for a price (close)"),
    ({"source": None, "value": -1, "field": "volume"}, "must be >= 0 for volume"),
    ({"reason": ""}, "reason must not be empty"),
    ({"author": "  "}, "author must not be empty"),
    ({"until": "2024-06-28"}, "until=2024-06-28 must be after US's local today (2024-06-28)"),
    ({"until": "soon"}, "until='soon' is not a date"),
])
def test_a_mistake_is_refused_naming_the_argument(changes, message):
    with pytest.raises(OverrideError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_override(CTX, **{**GOOD, **changes})


def test_the_bar_must_stay_possible():
    bar = {"open": 10.0, "high": 11.0, "low": 9.0, "close": 10.5, "volume": 100.0}
    assert check_bar(bar, "close", 10.9) is None
    assert check_bar(bar, "volume", 0.0) is None
    assert "high >= max(open, close)" in check_bar(bar, "close", 11.5)
    assert "low <= min(open, close)" in check_bar(bar, "open", 8.5)
    assert "low <= high" in check_bar(bar, "low", 11.5)
    assert check_bar(bar, "high", 10.5) is None
    assert "high >= max(open, close)" in check_bar(bar, "high", 10.4)


@pytest.mark.parametrize(("argv", "message"), [
    (["override", "US", "AAPL", "2024-06-12", "close", "--source", "q", "--value", "1", "--reason", "r",
      "--author", "a"], "give --source NAME or --value X, not both"),
    (["override", "US", "AAPL", "2024-06-12", "close", "--reason", "r", "--author", "a"], "give --source NAME"),
    (["override", "US", "AAPL", "--source", "q", "--reason", "r", "--author", "a"], "DATE FIELD missing"),
    (["override", "US", "AAPL", "2024-06-12", "close", "--source", "q", "--author", "a"], "--reason is required"),
    (["override", "--revoke", "ov-0123456789ab", "--reason", "r"], "--author is required"),
    (["override", "--list", "--status", "gone"], "--status 'gone' is not one of active, expired, revoked"),
    (["override", "--list", "--source", "q"], "--source does not go with --list"),
    (["override", "--expire", "--region", "XX"], "--region: unknown region 'XX'"),
    (["override", "--revoke", "ov-0123456789ab", "--reason", "r", "--author", "a", "--now", "2024-06-28"],
     "needs a time zone"),
])
def test_the_command_refuses_a_mistake_in_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("TICKLAKE_HOME", str(tmp_path))
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert message in err, err


def test_argparse_mistakes_are_one_line_with_status_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["override", "--list", "--revoke", "ov-1"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "not allowed with argument" in err


def test_the_command_without_a_lake_says_so(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("TICKLAKE_HOME", str(tmp_path / "nowhere"))
    monkeypatch.delenv("TICKLAKE_CATALOG", raising=False)
    assert cli.main(["override", "--list"]) == 2
    assert "no lake at" in capsys.readouterr().err
    assert not (tmp_path / "nowhere" / "catalog.sqlite").exists()


def test_an_exception_is_resolved_with_the_source_that_is_not_the_winner():
    row = SimpleNamespace(region="US", symbol="AAPL", trade_date=dt.date(2024, 6, 12), field="close",
                          source_values='{"itick": 190.1, "quandl": 191.0}', chosen_source="itick")
    assert cli.resolving_command(row) == ("ticklake override US AAPL 2024-06-12 close --source quandl "
                                          "--reason TEXT --author NAME")
    split = SimpleNamespace(region="US", symbol="AAPL", trade_date=dt.date(2024, 6, 10), field="split_ratio",
                            source_values='{"corporate_actions": 4.0, "quandl": 1.0}', chosen_source="itick")
    assert cli.resolving_command(split) == ("ticklake override US AAPL 2024-06-10 bar --source quandl "
                                            "--reason TEXT --author NAME")
    alone = SimpleNamespace(region="US", symbol="AAPL", trade_date=dt.date(2024, 6, 12), field="close",
                            source_values='{"itick": 190.1, "quandl": null}', chosen_source="itick")
    assert cli.resolving_command(alone) is None
