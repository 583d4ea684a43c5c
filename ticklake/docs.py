"""`python -m ticklake.docs`, the command scripts and the docs use: the code is in `ticklake.dictionary.docs`."""

import sys

from ticklake.dictionary.docs import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
