-- Stored bars per region and trade date (the calendar check compares the dates with the exchange's sessions).
SELECT region, trade_date, count(*) AS n
FROM klines_daily
GROUP BY ALL
