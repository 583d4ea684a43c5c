"""`python -m ticklake.sql`, the command scripts and the docs use: the code is in `ticklake.storage.sql`."""

import sys

from ticklake.storage.sql import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
