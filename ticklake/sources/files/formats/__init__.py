"""Vendor file formats: one module per layout, each exposing `FORMAT` (a ticklake.sources.files.FileFormat)."""
