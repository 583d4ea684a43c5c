-- Bars before a symbol's listing date or on/after its delisting date, by the security master's latest state.
WITH latest AS (
    SELECT region, symbol, listing_date, delisting_date
    FROM security_master
    QUALIFY row_number() OVER (PARTITION BY region, symbol ORDER BY valid_from DESC, ingested_at DESC) = 1
)
SELECT k.region, k.symbol, count(*) AS bars, min(k.trade_date) AS first, max(k.trade_date) AS last,
       any_value(l.listing_date) AS listing_date, any_value(l.delisting_date) AS delisting_date
FROM klines_daily k
JOIN latest l USING (region, symbol)
WHERE k.trade_date < l.listing_date OR k.trade_date >= l.delisting_date
GROUP BY ALL
ORDER BY 1, 2
