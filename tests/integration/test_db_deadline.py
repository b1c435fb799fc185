"""Every statement has a deadline (shared.db.TimedPool): a database that stops answering without
closing the connection, as a frozen network path does, is a 503 at the API after the deadline, not
a request held until the kernel gives up on the socket. The freeze is made by a proxy
(tests/integration/db_switch.py) that forwards nothing and closes nothing until it thaws."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from shared import db
from shared.settings import Settings
from tests.integration.db_switch import DatabaseSwitch
from tests.integration.test_api import WHEN
from tests.integration.test_api_failures import assert_unavailable

DEADLINE = 1.0
MARGIN = 2.0  # scheduling noise on a busy machine; the freeze itself lasts far longer


@pytest.fixture
async def timed(dsn: str) -> AsyncIterator[db.TimedPool]:
    pool = await db.open_pool(dsn, deadline=0.5, size=1, application_name="duetime-test")
    yield pool
    await pool.close()


async def within(seconds: float, awaitable: Any) -> tuple[Any, float]:
    """Await it, failing (not hanging) if it takes longer than `seconds`; its time."""
    started = time.monotonic()
    async with asyncio.timeout(seconds):
        result = await awaitable
    return result, time.monotonic() - started


async def test_a_statement_past_its_deadline_is_given_up_and_the_pool_goes_on(
    timed: db.TimedPool,
) -> None:
    with pytest.raises(db.DatabaseTimeout, match=r"did not answer within 0\.5s"):
        await within(5, timed.fetchval("SELECT pg_sleep(30)"))
    # Its connection was dropped, not returned busy: the next statement gets a new one at once.
    assert (await within(3, timed.fetchval("SELECT 41 + 1")))[0] == 42
    assert timed.timeouts == 1


async def test_the_wait_for_a_connection_has_the_same_deadline(timed: db.TimedPool) -> None:
    held = await timed.raw.acquire()  # the pool's only connection
    try:
        with pytest.raises(db.DatabaseTimeout, match=r"no database connection within 0\.5s"):
            await within(5, timed.fetchval("SELECT 1"))
    finally:
        await timed.raw.release(held)
    assert await timed.fetchval("SELECT 1") == 1


async def test_a_statement_cancelled_on_a_frozen_path_does_not_hold_its_caller(dsn: str) -> None:
    """Cancelled from outside (a caller's own timeout), the statement's connection is dropped:
    asyncpg would otherwise send a cancel request over the same frozen path and wait on it."""
    with DatabaseSwitch(dsn) as switch:
        pool = await db.open_pool(switch.dsn, deadline=30, size=1, application_name="t")
        try:
            assert await pool.fetchval("SELECT 1") == 1
            switch.freeze()
            with pytest.raises(TimeoutError):
                await within(5, asyncio.wait_for(pool.fetchval("SELECT 2"), 0.3))
            switch.thaw()
            assert (await within(5, pool.fetchval("SELECT 3")))[0] == 3
        finally:
            switch.thaw()
            await pool.close()


async def timed_request(client: AsyncTestClient[Any], method: str, path: str, **kw: Any):
    started = time.monotonic()
    async with asyncio.timeout(DEADLINE + MARGIN + 10):  # a failure, not a hang, without deadlines
        response: httpx.Response = await client.request(method, path, **kw)
    return response, time.monotonic() - started


async def test_the_api_answers_503_within_the_deadline_while_the_database_is_frozen(
    dsn: str, pool: asyncpg.Pool
) -> None:
    settings = Settings(db_timeout_seconds=DEADLINE)
    with DatabaseSwitch(dsn) as switch:
        async with AsyncTestClient(app=create_app(settings, dsn=switch.dsn)) as client:
            task = {"task_type": "noop", "execution_time": WHEN}
            created = await client.post("/task", json=task)
            assert created.status_code == 201, created.text
            task_id = created.json()["task_id"]

            switch.freeze()
            try:
                for method, path, body in [
                    ("GET", f"/task/{task_id}", None),  # on the connection that froze
                    ("POST", "/task", task),
                    ("GET", "/task?status=submitted", None),  # on new connections
                    ("DELETE", f"/task/{task_id}", None),
                    ("GET", "/stats", None),
                ]:
                    response, took = await timed_request(client, method, path, json=body)
                    assert_unavailable(response)
                    assert f"within {DEADLINE:g}s" in response.json()["detail"]
                    assert DEADLINE - 0.1 < took < DEADLINE + MARGIN, (method, path, took)
                health = await client.head("/health")  # the process itself is fine
                assert health.status_code == 200
            finally:
                switch.thaw()

            # No restart: the frozen connections were dropped and new ones serve at once.
            response, took = await timed_request(client, "GET", f"/task/{task_id}")
            assert response.status_code == 200, response.text
            assert took < MARGIN
    # What was held on the frozen path may have landed after the thaw (the DELETE, the POST):
    # a 503 on a write promises nothing either way, as after a connection reset. An
    # Idempotency-Key makes the retry safe.
    statuses = await pool.fetchval(
        "SELECT array_agg(status::text) FROM tasks WHERE id = $1", task_id
    )
    assert statuses in (["submitted"], ["deleted"])
