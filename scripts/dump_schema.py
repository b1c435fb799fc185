"""Writes migrations/schema.sql: the schema the migrations make, dumped from a migrated database.

    uv run python -m scripts.dump_schema          # rewrite migrations/schema.sql
    uv run python -m scripts.dump_schema --check  # exit 1 if it differs from the migrations

The migrations are the source of truth; this file is the schema in one readable place, kept in
step by tests/integration/test_schema_dump.py. It migrates a fresh database on a throwaway
embedded server (always that one, whatever DATABASE_URL says: the same PostgreSQL and pg_dump
make the same text) and dumps it, minus what changes from run to run (the version banner,
pg_dump's random \\restrict key, session SETs).
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import re
import subprocess
import sys
from pathlib import Path

from shared import db, migrate
from shared.embedded import _bin_path, temporary_server

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "migrations" / "schema.sql"
HEADER = (
    "-- The schema the migrations make (migrations/versions), dumped by scripts/dump_schema.py:\n"
    "-- do not edit; change a migration and run `uv run python -m scripts.dump_schema`.\n"
)
# Lines that say when, where and with which key it was dumped, not what the schema is.
_NOISE = re.compile(r"^(--.*|\\(un)?restrict .*|SET .*|SELECT pg_catalog\.set_config\(.*)$")


def dump(dsn: str) -> str:
    """The schema of the database at `dsn`, as pg_dump writes it, without the noise."""
    result = subprocess.run(
        [
            str(_bin_path() / "pg_dump"),
            "--schema-only",
            "--no-owner",
            "--no-privileges",
            "--exclude-table=alembic_version",
            "--dbname",
            dsn,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"pg_dump failed: {result.stderr.strip()}")
    lines = [line for line in result.stdout.splitlines() if not _NOISE.match(line)]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return f"{HEADER}\n{text}\n"


def migrated_dump() -> str:
    """Migrate a fresh database on a throwaway server and dump it."""
    with temporary_server("duetime-schema-pg-") as server_dsn:
        asyncio.run(db.ensure_database(server_dsn, "duetime"))
        dsn = db.with_database(server_dsn, "duetime")
        migrate.upgrade(dsn)
        return dump(dsn)


def diff(expected: str, actual: str) -> str:
    return "".join(
        difflib.unified_diff(
            expected.splitlines(keepends=True),
            actual.splitlines(keepends=True),
            "migrations/schema.sql",
            "the migrations",
        )
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="compare only; exit 1 if they differ")
    args = p.parse_args(argv)
    fresh = migrated_dump()
    if args.check:
        written = SCHEMA_FILE.read_text() if SCHEMA_FILE.exists() else ""
        if written != fresh:
            print(diff(written, fresh), end="")
            return 1
        print("migrations/schema.sql matches the migrations")
        return 0
    SCHEMA_FILE.write_text(fresh)
    print(f"wrote {SCHEMA_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
