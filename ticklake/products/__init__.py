"""Tenant data products: who receives which governed data (the tenants file), the one query builder that enforces
each grant, the nightly deliveries cut from one lake snapshot, and the audit of every API request."""
