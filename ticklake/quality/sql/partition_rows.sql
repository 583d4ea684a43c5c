-- Rows the lake holds per klines partition (region, month, source) beside what each commit recorded in
-- lake_partitions: they commit in one transaction, so the two always agree.
WITH stored AS (
    SELECT region, strftime(trade_date, '%Y-%m') AS month, source, count(*) AS n
    FROM klines_daily
    GROUP BY ALL
), recorded AS (
    SELECT region, partition AS month, source, rows AS n
    FROM lake_partitions
    WHERE dataset = 'klines_daily'
)
SELECT region, month, source, coalesce(s.n, 0) AS stored, coalesce(r.n, 0) AS recorded, r.n IS NOT NULL AS listed
FROM stored s
FULL OUTER JOIN recorded r USING (region, month, source)
ORDER BY region, month, source
