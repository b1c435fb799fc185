"""migrations/schema.sql is what the migrations make: a fresh database on a throwaway embedded
server, migrated to head and dumped, must read the same (else: `uv run python -m
scripts.dump_schema` and commit the file with the migration)."""

from __future__ import annotations

from scripts.dump_schema import SCHEMA_FILE, diff, migrated_dump


def test_schema_sql_matches_the_migrations() -> None:
    written = SCHEMA_FILE.read_text()
    fresh = migrated_dump()
    assert written == fresh, "migrations/schema.sql is stale:\n" + diff(written, fresh)
    assert "CREATE TABLE public.tasks (" in fresh  # and it is a schema, not an empty dump
