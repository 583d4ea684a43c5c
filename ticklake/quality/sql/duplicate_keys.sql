-- klines_daily rows sharing a (region, symbol, trade_date) key: none may exist.
SELECT region, symbol, trade_date, count(*) AS n
FROM klines_daily
GROUP BY region, symbol, trade_date
HAVING n > 1
ORDER BY region, symbol, trade_date
LIMIT 20
