"""DELETE racing 10 worker processes over 1,000 tasks falling due: a 200 means it never ran."""

from __future__ import annotations

import asyncio
import random
import time
from uuid import UUID

import asyncpg
import httpx
import pytest

from shared import queries
from tests.e2e.fleet import CREATE_EXECUTIONS, Fleet, fetchval, wait_until

pytestmark = pytest.mark.e2e
COUNT = 1000
DUE_IN = 2.0  # seconds: the DELETEs start just before the tasks fall due and end after


async def insert_due_soon(dsn: str) -> list[UUID]:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(CREATE_EXECUTIONS)
        ids: list[UUID] = await conn.fetchval(
            """
            WITH ins AS (
                INSERT INTO tasks (id, task_type, execution_time)
                SELECT gen_random_uuid(), 'record', now() + make_interval(secs => $1)
                FROM generate_series(1, $2)
                RETURNING id
            ) SELECT array_agg(id) FROM ins""",
            DUE_IN,
            COUNT,
        )
        await queries.notify_due(conn, DUE_IN)  # as the API would
        return ids
    finally:
        await conn.close()


async def delete_all(
    url: str, ids: list[UUID], start_at: float, senders: int = 32
) -> dict[UUID, httpx.Response]:
    """DELETE every id, in random order, starting at monotonic time `start_at`."""
    todo = iter(random.sample(ids, len(ids)))
    answers: dict[UUID, httpx.Response] = {}
    ready = 0
    go = asyncio.Event()

    async def sender() -> None:
        nonlocal ready
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            # Connect (and let the API open its pool connections) before the clock starts.
            assert (await client.get("/task", params={"limit": 1})).status_code == 200
            ready += 1
            if ready == senders:
                go.set()
            await go.wait()
            for task_id in todo:
                answers[task_id] = await client.delete(f"/task/{task_id}")

    async def starter() -> None:
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        go.set()

    await asyncio.gather(starter(), *(sender() for _ in range(senders)))
    assert ready == senders
    return answers


def test_a_deleted_task_never_runs_and_a_running_one_is_never_deleted(
    fleet: Fleet, dsn: str
) -> None:
    url = fleet.api()
    workers = fleet.workers(10)
    fleet.wait_listening(10)
    ids = asyncio.run(insert_due_soon(dsn))
    # Start deleting a little before the tasks fall due, so both sides of the race happen.
    answers = asyncio.run(delete_all(url, ids, start_at=time.monotonic() + DUE_IN - 0.3))

    def settled() -> bool:
        assert all(w.poll() is None for w in workers), "a worker died"
        left = "SELECT count(*) FROM tasks WHERE status NOT IN ('done', 'deleted')"
        return fetchval(dsn, left) == 0

    wait_until(settled, 60, "every task to be done or deleted")

    codes = {task_id: r.status_code for task_id, r in answers.items()}
    assert set(codes.values()) <= {200, 409}, {c for c in codes.values() if c not in (200, 409)}
    deleted = {task_id for task_id, code in codes.items() if code == 200}
    refused = {task_id for task_id, code in codes.items() if code == 409}
    ran = set(fetchval(dsn, "SELECT coalesce(array_agg(task_id), '{}') FROM executions"))  # type: ignore[arg-type]

    assert not deleted & ran, "a task answered 200 to DELETE and ran anyway"
    assert ran == refused, "every execution had a 409, and every 409 was a task that ran"
    assert fetchval(dsn, "SELECT count(*) FROM executions") == len(ran), "a task ran twice"
    for task_id in refused:
        assert answers[task_id].json()["status"] in ("started_executing", "done")
    assert fetchval(dsn, "SELECT count(*) FROM tasks WHERE status = 'deleted'") == len(deleted)
    # Both sides of the race happened (the DELETEs straddle the due time).
    assert deleted, "no DELETE won: the race was not exercised"
    assert refused, "every DELETE won: the race was not exercised"
