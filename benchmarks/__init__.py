"""ticklake's benchmark suite: `python -m benchmarks --help` (or `python3 dev.py bench`). See benchmarks/README.md."""
