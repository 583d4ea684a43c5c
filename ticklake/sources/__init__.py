"""Source adapters and what they share: the fetcher contract, the query types, the quota and the adapters (itick/)."""
