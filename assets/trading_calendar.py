"""`trading_calendar`: sessions per region (exchange_calendars, authoritative) beside the source's holidays."""

import dagster as dg

from assets.factory import Shown, reference_asset
from ticklake.datasets.trading_calendar import CalendarResult, refresh_trading_calendar
from ticklake.dictionary.reference_data import TRADING_CALENDAR

CALENDAR_MATCHES_SOURCE = "calendar_matches_source"


def _years(years: list[int]) -> str:
    return f"{years[0]}-{years[-1]} ({len(years)} years)" if years else "none"


def _matches_source(result: CalendarResult) -> dg.AssetCheckResult:
    found = result.disagreements
    lines = [f"{d:%Y-%m-%d} calendar: {'session' if s else 'closed'}, source: {'session' if o else 'closed'}"
             for d, s, o in zip(found["date"], found["is_session"], found["source_is_session"], strict=True)]
    return dg.AssetCheckResult(
        check_name=CALENDAR_MATCHES_SOURCE,
        passed=found.empty,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "disagreements": dg.MetadataValue.int(len(found)),
            "dates": dg.MetadataValue.text("\n".join(lines) or "none"),
            "sessions": dg.MetadataValue.int(result.sessions),
            "source_years": dg.MetadataValue.text(_years(result.source_years)),
            "authoritative": dg.MetadataValue.text("exchange_calendars (ticklake.markets)"),
        },
    )


def _show(result: CalendarResult) -> Shown:
    frame = result.frame
    return Shown(len(frame), frame[frame["is_session"]].tail(10), {
        "sessions": dg.MetadataValue.int(result.sessions),
        "first_date": dg.MetadataValue.text(f"{frame['date'].min():%Y-%m-%d}"),
        "last_date": dg.MetadataValue.text(f"{frame['date'].max():%Y-%m-%d}"),
        "source_years": dg.MetadataValue.text(_years(result.source_years)),
        "disagreements": dg.MetadataValue.int(len(result.disagreements)),
    }, checks=[_matches_source(result)])


trading_calendar = reference_asset(
    TRADING_CALENDAR, refresh_trading_calendar, _show,
    check_specs=[dg.AssetCheckSpec(
        CALENDAR_MATCHES_SOURCE, asset=TRADING_CALENDAR.name,
        description="The source's holidays agree with the authoritative calendar on every day both cover; "
                    "a warning lists every day they disagree on")],
)
