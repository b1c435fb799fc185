"""A real PostgreSQL for every test: DATABASE_URL when set, else an embedded server for the session.

The schema is migrated once into a template database; each test gets a fresh copy of it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from shared import db, migrate
from shared.embedded import temporary_server


@pytest.fixture(scope="session")
def server_dsn() -> Iterator[str]:
    """A DSN to a maintenance database of the server the tests use."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    with temporary_server("duetime-test-pg-") as dsn:
        yield dsn


async def _admin(server_dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(server_dsn)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def template_db(server_dsn: str) -> AsyncIterator[str]:
    name = f"duetime_tpl_{uuid.uuid4().hex[:10]}"
    await _admin(server_dsn, f'CREATE DATABASE "{name}"')
    migrate.upgrade(db.with_database(server_dsn, name))
    yield name
    await _admin(server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def dsn(server_dsn: str, template_db: str) -> AsyncIterator[str]:
    """A fresh, migrated database for one test."""
    name = f"duetime_t_{uuid.uuid4().hex[:12]}"
    await _admin(server_dsn, f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    yield db.with_database(server_dsn, name)
    await _admin(server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await db.create_pool(dsn, size=10, application_name="duetime-test")
    yield pool
    await pool.close()
