-- Rows the lake holds per klines partition (region, month) beside what each commit recorded in lake_partitions:
-- they commit in one transaction, so the two always agree. The golden copy is one partition per region and month
-- whichever source won each bar (lake_partitions says `golden`; a month not re-derived since the golden copy
-- existed still carries its one source's name).
WITH stored AS (
    SELECT region, strftime(trade_date, '%Y-%m') AS month, count(*) AS n
    FROM klines_daily
    GROUP BY ALL
), recorded AS (
    SELECT region, partition AS month, string_agg(source, ',' ORDER BY source) AS source, sum(rows) AS n
    FROM lake_partitions
    WHERE dataset = 'klines_daily'
    GROUP BY ALL
)
SELECT region, month, coalesce(r.source, '-') AS source, coalesce(s.n, 0) AS stored, coalesce(r.n, 0) AS recorded,
       r.n IS NOT NULL AS listed
FROM stored s
FULL OUTER JOIN recorded r USING (region, month)
ORDER BY region, month
