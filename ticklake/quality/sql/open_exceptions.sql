-- The golden copy's open exceptions in some regions, newest session first: where sources disagree beyond
-- tolerance and nobody has decided yet.
SELECT region, symbol, trade_date, field, source_values, rel_diff, chosen_source
FROM golden_exceptions
WHERE status = 'open' AND list_contains($regions, region)
ORDER BY trade_date DESC, region, symbol, field
