"""Analytics: derived for analysts, re-derivable at any time from the stored source data."""

from __future__ import annotations
