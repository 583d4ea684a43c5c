"""`python -m ticklake.sql`: an SQL session on the lake, attached read-only exactly as `ticklake.connect()` does.

    python -m ticklake.sql                                  # interactive: end a statement with ';', quit with .quit
    python -m ticklake.sql "SELECT count(*) FROM klines_daily"   # run statements and print their results
    python -m ticklake.sql --files klines_daily             # the Parquet files that hold a table now

TICKLAKE_HOME, TICKLAKE_CATALOG and TICKLAKE_STORAGE_URL choose the lake, as for the pipeline.
"""

from __future__ import annotations

import argparse
import sys

import duckdb

from ticklake.storage import CatalogError, connect

PROMPT, MORE = "ticklake> ", "     ...> "


def _run(con: duckdb.DuckDBPyConnection, sql: str) -> bool:
    try:
        result = con.sql(sql)
    except duckdb.Error as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return False
    if result is not None:
        result.show(max_rows=40, max_width=200)
    return True


def _interactive(con: duckdb.DuckDBPyConnection) -> int:
    print("ticklake lake (read-only). End statements with ';'. .tables lists tables, .quit leaves.")
    buffer: list[str] = []
    while True:
        try:
            line = input(MORE if buffer else PROMPT)
        except EOFError:
            print()
            return 0
        if not buffer and line.strip() in (".quit", ".exit"):
            return 0
        if not buffer and line.strip() == ".tables":
            _run(con, "SELECT table_name, comment FROM duckdb_tables() WHERE database_name = 'lake' ORDER BY 1")
            continue
        buffer.append(line)
        if line.rstrip().endswith(";"):
            _run(con, "\n".join(buffer))
            buffer.clear()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ticklake.sql", description=__doc__.split("\n\n")[0])
    parser.add_argument("sql", nargs="*", help="statements to run; none: an interactive session")
    parser.add_argument("--files", metavar="TABLE", help="list the Parquet files that hold TABLE now (for readers "
                        "that take a file list: pandas, polars, Spark)")
    args = parser.parse_args(argv)
    try:
        con = connect()
    except CatalogError as exc:
        print(f"ticklake.storage.sql: {exc}", file=sys.stderr)
        return 2
    with con:
        if args.files:
            table = args.files.replace("'", "")
            return 0 if _run(con, f"SELECT data_file FROM ducklake_list_files('lake', '{table}') ORDER BY 1") else 1
        if args.sql:
            return 0 if all(_run(con, statement) for statement in args.sql) else 1
        return _interactive(con)


if __name__ == "__main__":
    sys.exit(main())
