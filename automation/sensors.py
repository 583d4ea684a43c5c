"""Sensors: T+1 reconciliation per region, declarative automation for the derived assets, and a record of every
failed run.

All ship stopped, like the schedules: turn them on in the UI (Automation) once the nightly runs work.
"""

import dagster as dg

from assets.adjusted import klines_daily_adjusted
from assets.fundamentals import valuation_daily
from automation.failures import record_run_failures
from automation.reconciliation import RECONCILIATION_SENSORS

# Named, not Dagster's implicit `default_automation_condition_sensor`: that one would be created for these assets
# and could ship running; this one ships stopped and says what it is for.
derived_assets_automation = dg.AutomationConditionSensorDefinition(
    "derived_assets_automation",
    target=dg.AssetSelection.assets(klines_daily_adjusted, valuation_daily),
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Evaluates the derived assets' automation conditions on each daemon tick: re-derives a region's "
                "klines_daily_adjusted when its raw months or splits update, and its valuation_daily when "
                "fundamentals_daily or fx_daily update outside fundamentals_refresh",
)

SENSORS = [*RECONCILIATION_SENSORS, derived_assets_automation, record_run_failures]


def deliveries_automation(deliveries: list[dg.AssetsDefinition]) -> list[dg.AutomationConditionSensorDefinition]:
    """`tenant_deliveries_automation` (stopped, like the others): delivers a region to each tenant once its golden
    copy and adjusted bars (and, for a tenant on USD, its FX and currencies) update. None without tenants."""
    if not deliveries:
        return []
    return [dg.AutomationConditionSensorDefinition(
        "tenant_deliveries_automation",
        target=dg.AssetSelection.assets(*deliveries),
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Evaluates the deliveries' automation conditions on each daemon tick: re-delivers a tenant "
                    "product's region when the tables it reads update (its golden copy and adjusted bars, and for a "
                    "tenant on USD the security master, fundamentals and FX); unchanged months are not rewritten",
    )]
