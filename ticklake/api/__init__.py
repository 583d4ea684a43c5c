"""The read API (`ticklake serve`): tenants query the lake over HTTP within their grants."""
