"""Connections: where the database is (DATABASE_URL or the embedded server) and the pool."""

from __future__ import annotations

import asyncio
import contextlib
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from shared.settings import Settings

EMBEDDED_DATABASE = "duetime"
T = TypeVar("T")

# Worker connections: with statistics taken while the table was small (fresh deploy, bulk load)
# the planner answers the claim with a bitmap scan that sorts every due row, 18x slower at 50k due
# rows. Without bitmap scans the ordered walk of tasks_due_idx, which stops after LIMIT rows, is
# always chosen: the claim's cost no longer depends on the statistics.
WORKER_SERVER_SETTINGS = {"enable_bitmapscan": "off"}
# API connections: every query the API runs finds its rows through an index (by id, by key, or a
# page in id order). Behind stale statistics the planner would answer a page of one status with a
# sequential scan, or a bitmap scan that sorts every row in that status, per page; with both
# priced out it walks an index in order and stops after the page.
API_SERVER_SETTINGS = {"enable_seqscan": "off", "enable_bitmapscan": "off"}


def with_database(dsn: str, database: str) -> str:
    """The same server, another database (works for host:port and ?host=/socket URLs)."""
    parts = urllib.parse.urlsplit(dsn)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{database}"))


def database_name(dsn: str) -> str:
    return urllib.parse.urlsplit(dsn).path.lstrip("/") or "postgres"


def embedded_dsn(settings: Settings) -> str:
    """The DSN of the embedded server under settings.data_dir (which must be running)."""
    from shared.embedded import EmbeddedPostgres

    server = EmbeddedPostgres(settings.data_dir)
    if not server.is_running():
        raise RuntimeError(
            f"no DATABASE_URL and no embedded PostgreSQL running in {server.pgdata}: "
            "start one with `duetime dev` (or set DATABASE_URL)"
        )
    return with_database(server.dsn(), EMBEDDED_DATABASE)


def resolve_dsn(settings: Settings) -> str:
    return settings.database_url or embedded_dsn(settings)


async def ensure_database(server_dsn: str, database: str) -> None:
    """CREATE DATABASE if it does not exist (a race with another creator is fine)."""
    conn = await asyncpg.connect(with_database(server_dsn, "postgres"))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if not exists:
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await conn.execute(f'CREATE DATABASE "{database}"')
    finally:
        await conn.close()


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release without asyncpg's reset query: duetime never changes session state on a pooled
    connection (no SET outside a transaction, LISTEN, advisory lock or cursor), and the reset is
    a round trip per statement: on the worker's hot path it doubles the round trips."""


async def create_pool(
    dsn: str,
    *,
    size: int,
    application_name: str,
    min_size: int = 1,
    server_settings: dict[str, str] | None = None,
    **kwargs: Any,
) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=size,
        server_settings={"application_name": application_name, **(server_settings or {})},
        reset=_keep_session,
        **kwargs,
    )
    assert pool is not None
    return pool


class DatabaseTimeout(TimeoutError):
    """The database did not hand out a connection, or answer a statement, within the deadline."""


class TimedPool:
    """A pool whose every statement, with the wait for its connection, has a deadline.

    A database that stops answering without closing the connection (a frozen network path, a
    stalled proxy or server) would otherwise hold each caller until the kernel gives up on the
    socket, minutes later. Past the deadline the connection is dropped (terminated: no cancel
    request, which would wait on the same frozen path) and the pool opens a new one on a later
    acquire. The statement may still have reached the server and committed: a caller that gets
    DatabaseTimeout knows as little as after a connection reset, and must be safe either way.
    """

    def __init__(self, pool: asyncpg.Pool, seconds: float) -> None:
        self.raw = pool
        self.seconds = seconds
        self.timeouts = 0  # statements or acquires given up on

    async def _run(self, call: Callable[[asyncpg.pool.PoolConnectionProxy], Awaitable[T]]) -> T:
        end = asyncio.get_running_loop().time() + self.seconds
        try:
            async with asyncio.timeout_at(end):
                conn = await self.raw.acquire()
        except TimeoutError as exc:
            self.timeouts += 1
            raise DatabaseTimeout(f"no database connection within {self.seconds:g}s") from exc
        try:
            async with asyncio.timeout_at(end):
                return await call(conn)
        except TimeoutError as exc:
            self.timeouts += 1
            conn.terminate()  # frees its place in the pool; release below is then a no-op
            raise DatabaseTimeout(f"the database did not answer within {self.seconds:g}s") from exc
        except asyncio.CancelledError:
            # Cancelled from outside mid-statement: the answer is still due on this socket, and
            # the pool would wait for it on release (for ever, on a frozen path).
            conn.terminate()
            raise
        finally:
            await self.raw.release(conn)

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        return await self._run(lambda conn: conn.fetch(query, *args))

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        return await self._run(lambda conn: conn.fetchrow(query, *args))

    async def fetchval(self, query: str, *args: Any) -> Any:
        return await self._run(lambda conn: conn.fetchval(query, *args))

    async def execute(self, query: str, *args: Any) -> str:
        return await self._run(lambda conn: conn.execute(query, *args))

    async def transaction(self, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """`work` on one connection inside a transaction, all within the deadline."""

        async def inside(conn: asyncpg.pool.PoolConnectionProxy) -> T:
            async with conn.transaction():
                return await work(conn)  # type: ignore[arg-type]

        return await self._run(inside)

    async def close(self) -> None:
        await self.raw.close()


async def open_pool(dsn: str, *, deadline: float, **kwargs: Any) -> TimedPool:
    """create_pool's pool behind a deadline of `deadline` seconds per statement (TimedPool)."""
    return TimedPool(await create_pool(dsn, **kwargs), deadline)


# No usable connection to Postgres right now, never "this statement is wrong": worth retrying
# later (the pools reconnect by themselves). Statement errors (a constraint, a cancelled query,
# bad SQL) are not among them.
CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    OSError,  # refused, reset, unreachable, DNS; TimeoutError (a connect timeout, a deadline)
    asyncpg.InterfaceError,  # "connection is closed", "pool is closing"
    asyncpg.InternalClientError,  # the protocol lost its place with its connection
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08: connection exceptions
    asyncpg.CannotConnectNowError,  # the server is starting up or recovering
    asyncpg.AdminShutdownError,  # the server is shutting down, or our backend was terminated
    asyncpg.CrashShutdownError,  # another backend crashed; every session is reset
    asyncpg.IdleSessionTimeoutError,  # the server closed a session it found idle
    asyncpg.TooManyConnectionsError,
)
# Anything a statement can raise that a background loop should log and retry, not die of.
DB_ERRORS: tuple[type[BaseException], ...] = (*CONNECTION_ERRORS, asyncpg.PostgresError)
