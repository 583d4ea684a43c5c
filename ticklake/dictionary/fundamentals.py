"""Fundamentals: valuation snapshots and FX."""

from __future__ import annotations
