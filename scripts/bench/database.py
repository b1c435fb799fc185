"""The bench's database: its own, freshly migrated, on an embedded server or DATABASE_URL's."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import asyncpg

from shared import db, migrate
from shared.embedded import temporary_server

# Due noop tasks, oldest first, all in the past; the API would give them the same default payload.
LOAD_DUE_NOOP = """
INSERT INTO tasks (id, task_type, execution_time)
SELECT gen_random_uuid(), 'noop', now() - interval '1 day' + n * interval '1 millisecond'
FROM generate_series(1, $1::int) AS n
"""
# The run as the table saw it: from the first claim to the last completion (both stamped now(),
# their transaction's start), over the rows `rows` picks.
WINDOW = """
SELECT count(*) FILTER (WHERE status = 'done') AS done,
       extract(epoch FROM max(finished_at) - min(started_at))::float8 AS seconds
FROM {table}
WHERE {rows}
"""


@contextlib.contextmanager
def server(database_url: str | None) -> Iterator[str]:
    """A DSN to the server: DATABASE_URL's, or an embedded one in a temp dir, deleted after."""
    if database_url:
        yield database_url
        return
    with temporary_server("duetime-bench-pg-") as dsn:
        yield dsn


@contextlib.contextmanager
def fresh_database(server_dsn: str) -> Iterator[str]:
    """A new migrated database on the server (its DSN), dropped afterwards."""
    name = f"duetime_bench_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(server_dsn, f'CREATE DATABASE "{name}"'))
    try:
        dsn = db.with_database(server_dsn, name)
        migrate.upgrade(dsn)
        yield dsn
    finally:
        asyncio.run(_admin(server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.asynccontextmanager
async def connected(
    dsn: str, server_settings: dict[str, str] | None = None
) -> AsyncIterator[asyncpg.Connection]:
    """One connection for an `async with` block, closed however the block ends."""
    conn = await asyncpg.connect(dsn, server_settings=server_settings)
    try:
        yield conn
    finally:
        await conn.close()


async def _admin(server_dsn: str, statement: str) -> None:
    async with connected(server_dsn) as conn:
        await conn.execute(statement)


async def reload_due_noop(dsn: str, count: int) -> None:
    """An empty tasks table, then `count` due noop tasks in one statement, then ANALYZE."""
    async with connected(dsn) as conn:
        await conn.execute("TRUNCATE tasks")
        await conn.execute(LOAD_DUE_NOOP, count)
        await conn.execute("ANALYZE tasks")


async def truncate(dsn: str) -> None:
    async with connected(dsn) as conn:
        await conn.execute("TRUNCATE tasks")


async def server_version(dsn: str) -> str:
    async with connected(dsn) as conn:
        version: str = await conn.fetchval("SELECT version()")
        return version


async def done_window(
    conn: asyncpg.Connection, table: str = "tasks", rows: str = "true"
) -> tuple[int, float]:
    """(tasks done, seconds from the first claim to the last completion) in `table`, of the rows
    the condition `rows` picks."""
    row = await conn.fetchrow(WINDOW.format(table=table, rows=rows))
    assert row is not None
    done: int = row["done"]
    seconds: float = row["seconds"]
    return done, seconds


async def poll_count(
    conn: asyncpg.Connection,
    query: str,
    *args: object,
    until: Callable[[int], bool],
    what: Callable[[int], str],
    deadline: float,
    check: Callable[[], None],
    every: float = 0.2,
) -> None:
    """Run `query` (one count) every `every` s until `until(count)`, calling `check()` between
    polls (it raises if a child died). Past `deadline` (a time.monotonic() value), TimeoutError
    saying `what(count)`."""
    while not until(n := await conn.fetchval(query, *args)):
        check()
        if time.monotonic() > deadline:
            raise TimeoutError(what(n))
        await asyncio.sleep(every)
