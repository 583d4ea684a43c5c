"""What is checked about stored data: the warehouse suites, anomalies, freshness and the T+1 reconciliation."""
