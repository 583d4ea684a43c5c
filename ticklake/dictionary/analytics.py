"""Analytics: derived for analysts, re-derivable at any time from the stored source data."""

from __future__ import annotations

from ticklake.dictionary.core import Dataset, Field, LakeKey, RowRule
from ticklake.dictionary.fields import LINEAGE, REGION, SYMBOL, TRADE_DATE

KLINES_DAILY_ADJUSTED = Dataset(
    name="klines_daily_adjusted",
    description=(
        "Split-adjusted (backward) daily bars derived from `klines_daily` and `corporate_actions`: prices times "
        "the product of the factors of every split after the trade date, volumes divided by it, so the latest "
        "prices equal the raw ones and a series is continuous across its ex-dates. Raw `klines_daily` is never "
        "changed. A split that arrives late re-derives only that symbol's rows; every other row keeps its lineage."
    ),
    domain="analytics",
    fields=(
        REGION,
        SYMBOL,
        TRADE_DATE,
        Field("open", "float64", "Split-adjusted first traded price of the session", unit="listing currency, "
              "latest share basis", strictly_positive=True),
        Field("high", "float64", "Split-adjusted highest price of the session", unit="listing currency, latest "
              "share basis", strictly_positive=True),
        Field("low", "float64", "Split-adjusted lowest price of the session", unit="listing currency, latest share "
              "basis", strictly_positive=True),
        Field("close", "float64", "Split-adjusted last price of the session", unit="listing currency, latest share "
              "basis", strictly_positive=True),
        Field("volume", "float64", "Quantity traded, in shares of the latest basis (raw volume / adjustment_factor)",
              unit="shares", min_value=0),
        Field("turnover", "float64", "Value traded in the session (a split does not change it: the raw value)",
              unit="listing currency", min_value=0),
        Field("adjustment_factor", "float64", "Product of the factors of every split with an ex-date after the "
              "trade date (1 after the last split): adjusted price = raw price x adjustment_factor", unit="ratio",
              strictly_positive=True),
        *LINEAGE,
    ),
    key=("region", "symbol", "trade_date"),
    lake_keys=(LakeKey("region", "region"), LakeKey("month", "trade_date", grain="month")),
    sort_by=("region", "symbol", "trade_date"),
    write_mode="replace",
    rules=(RowRule("low", "<=", ("open", "close")), RowRule("high", ">=", ("open", "close")),
           RowRule("low", "<=", ("high",))),
    date_column="trade_date",
    example="SELECT a.trade_date, a.close AS adjusted_close, k.close AS raw_close, a.adjustment_factor "
            "FROM klines_daily_adjusted a JOIN klines_daily k USING (region, symbol, trade_date, source) "
            "WHERE a.region = 'US' AND a.symbol = 'AAPL' ORDER BY a.trade_date",
)
