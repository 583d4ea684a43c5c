"""`trading_calendar`: sessions per region (exchange_calendars, authoritative) beside the source's holidays."""


import dagster as dg

from assets.clock import RunClock
from assets.metadata import dataset_asset, fetch_metadata, preview, snapshot_metadata
from assets.partitions import region_partitions
from resources.itick import ITickResource
from resources.storage import StorageResource
from ticklake.datasets.trading_calendar import CalendarResult, refresh_trading_calendar
from ticklake.dictionary.reference_data import TRADING_CALENDAR
from ticklake.storage.ddl import partition_address

CALENDAR_MATCHES_SOURCE = "calendar_matches_source"


@dg.asset(
    partitions_def=region_partitions,
    **dataset_asset(TRADING_CALENDAR),
    check_specs=[dg.AssetCheckSpec(
        CALENDAR_MATCHES_SOURCE, asset="trading_calendar",
        description="The source's holidays agree with the authoritative calendar on every day both cover; "
                    "a warning lists every day they disagree on")],
)
def trading_calendar(context: dg.AssetExecutionContext, config: RunClock,
                     itick: ITickResource, storage: StorageResource):
    region, run_id = context.partition_key, context.run.run_id
    source = itick.source(tags={"run_id": run_id, "asset": "trading_calendar"})
    lake = storage.lakehouse()
    result = refresh_trading_calendar(source, lake, region=region, run_id=run_id,
                                      now=config.instant(), log=context.log.info)
    frame = result.frame
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(frame)),
            "sessions": dg.MetadataValue.int(result.sessions),
            "first_date": dg.MetadataValue.text(f"{frame['date'].min():%Y-%m-%d}"),
            "last_date": dg.MetadataValue.text(f"{frame['date'].max():%Y-%m-%d}"),
            "source_years": dg.MetadataValue.text(_years(result.source_years)),
            "disagreements": dg.MetadataValue.int(len(result.disagreements)),
            **{f"rows_{k}": dg.MetadataValue.int(v) for k, v in result.diff.items()},
            **fetch_metadata(result.fetch),
            "source": dg.MetadataValue.text(source.name),
            "lake_path": dg.MetadataValue.text(partition_address(TRADING_CALENDAR, dict(region=region,
                                                                                source=source.name))),
            "preview": preview(frame[frame["is_session"]].tail(10)),
            **snapshot_metadata(lake),
        }
    )
    yield _matches_source(result)


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


def _years(years: list[int]) -> str:
    return f"{years[0]}-{years[-1]} ({len(years)} years)" if years else "none"
