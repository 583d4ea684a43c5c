"""`python -m demo` (what `python3 dev.py demo` runs)."""

from demo.run import main

if __name__ == "__main__":
    raise SystemExit(main())
