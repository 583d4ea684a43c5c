"""`python -m ticklake.expectations`, the command scripts and the docs use; the code: ticklake.quality.expectations."""

import sys

from ticklake.quality.expectations import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
