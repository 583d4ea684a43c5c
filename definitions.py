"""The ticklake code location: what `dagster dev` (via workspace.yaml) loads."""

from __future__ import annotations

import dagster as dg

from assets.adjusted import klines_daily_adjusted
from assets.corporate_actions import corporate_actions
from assets.deliveries import deliveries_job, delivery_assets
from assets.fundamentals import fundamentals_daily, fx_daily, valuation_daily
from assets.klines import klines_daily
from assets.listings import listings
from assets.operations import operations_specs
from assets.trading_calendar import trading_calendar
from assets.vendor_klines import asset_name, vendor_klines_asset
from automation.executors import executor_from_env
from automation.jobs import (
    analytics_refresh,
    fundamentals_refresh,
    klines_freshness,
    nightly_refresh,
    reference_refresh,
    warehouse_checks,
)
from automation.maintenance import lake_maintenance
from automation.overrides import expire_golden_overrides, golden_override, golden_override_expiry
from automation.schedules import SCHEDULES
from automation.sensors import SENSORS, deliveries_automation
from automation.vendor_drops import vendor_drop_sensor, vendor_job
from checks.asset_checks import ASSET_CHECKS
from checks.expectations import ASSET_CHECKS as EXPECTATION_CHECKS
from checks.freshness import FRESHNESS_CHECKS
from resources.clock import ClockResource
from resources.itick import ITickResource
from resources.storage import StorageResource
from ticklake.products.tenants import Tenants
from ticklake.sources.declared import Sources


def build_definitions(itick: ITickResource | None = None, storage: StorageResource | None = None,
                      clock: ClockResource | None = None) -> dg.Definitions:
    """Definitions with resources from the environment, or the given ones (tests point them elsewhere).

    A bad TICKLAKE_SOURCES file is refused here, when the definitions load, naming its key and the rule it breaks;
    each vendor file drop it declares adds its raw asset, its load job and its `vendor_drop_<vendor>` sensor. A bad
    TICKLAKE_TENANTS file is refused here the same way (TenantsFileError naming the tenant and key); each tenant
    product it grants adds its `deliveries/<tenant>/<dataset>` asset, and the `tenant_deliveries` job runs them."""
    vendors = Sources.from_env(api_name="itick").vendors
    deliveries = delivery_assets(Tenants.from_env())
    vendor_assets = [vendor_klines_asset(spec) for spec in vendors]
    vendor_jobs = [vendor_job(spec, asset) for spec, asset in zip(vendors, vendor_assets, strict=True)]
    assets = [listings, trading_calendar, corporate_actions, klines_daily, klines_daily_adjusted, fundamentals_daily,
              fx_daily, valuation_daily, *vendor_assets]
    return dg.Definitions(
        # the operations tables (lake_partitions, reconciliation_log, quarantine, *_history) as external assets
        assets=[*assets, *operations_specs({k.to_user_string() for a in assets for k in a.keys},
                                           vendors=[asset_name(spec) for spec in vendors]), *deliveries],
        asset_checks=ASSET_CHECKS + FRESHNESS_CHECKS + EXPECTATION_CHECKS,
        jobs=[nightly_refresh, reference_refresh, analytics_refresh, fundamentals_refresh, warehouse_checks,
              klines_freshness, lake_maintenance, golden_override, expire_golden_overrides, *vendor_jobs,
              *deliveries_job(deliveries)],
        schedules=[*SCHEDULES, golden_override_expiry],
        sensors=[*SENSORS, *(vendor_drop_sensor(spec, job) for spec, job in zip(vendors, vendor_jobs, strict=True)),
                 *deliveries_automation(deliveries)],
        resources={"itick": itick or ITickResource.from_env(), "storage": storage or StorageResource(),
                   "clock": clock or ClockResource()},
        executor=executor_from_env(),  # in the run's process, or on Celery workers (TICKLAKE_EXECUTOR=celery)
    )


defs = build_definitions()
