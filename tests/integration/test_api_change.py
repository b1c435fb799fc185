"""PATCH /task/{id}: a submitted task rescheduled or given a new payload, one guarded UPDATE like
DELETE; and scheduled_time, which keeps the time a task was submitted for when retries, requeues
and redrives move execution_time."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest

from shared import queries
from shared.task import TaskStatus
from tests.integration.test_api import (
    JSON,
    PAST,
    TYPES,
    WHEN,
    Client,
    assert_error,
    claim_all,
    instant,
    row_of,
    submit,
    table,
)
from tests.integration.test_api_failures import listen

LATER = "2031-06-01T08:00:00+02:00"


async def test_a_new_time_is_the_only_one_used(client: Client, pool: asyncpg.Pool) -> None:
    task_id = await submit(client, execution_time=PAST)
    response = await client.patch(f"/task/{task_id}", json={"execution_time": LATER})
    assert response.status_code == 200, response.text
    task = response.json()
    assert (task["status"], task["payload"]) == ("submitted", {})
    assert instant(task["execution_time"]) == instant(LATER)
    assert instant(task["scheduled_time"]) == instant(LATER)
    # Due at PAST before the PATCH, not after: a claim now finds nothing.
    assert await claim_all(pool) == []
    assert (await row_of(pool, task_id))["execution_time"] == instant(LATER)


async def test_a_task_moved_to_now_is_claimed_and_wakes_the_workers(
    client: Client, pool: asyncpg.Pool, dsn: str
) -> None:
    task_id = await submit(client)  # due in 2030
    conn, heard = await listen(dsn)
    try:
        response = await client.patch(f"/task/{task_id}", json={"execution_time": PAST})
        assert response.status_code == 200, response.text
        assert await asyncio.wait_for(heard.get(), 5) == 0.0
    finally:
        await conn.close()
    assert await claim_all(pool) == [task_id]


async def test_a_new_payload_alone_keeps_the_time(client: Client, pool: asyncpg.Pool) -> None:
    task_id = await submit(client, payload={"v": 1})
    response = await client.patch(f"/task/{task_id}", json={"payload": {"v": 2, "s": "é"}})
    assert response.status_code == 200, response.text
    assert response.json()["payload"] == {"v": 2, "s": "é"}
    row = await row_of(pool, task_id)
    assert (row["payload"], row["execution_time"]) == ('{"s": "é", "v": 2}', instant(WHEN))
    both = await client.patch(f"/task/{task_id}", json={"payload": {}, "execution_time": LATER})
    assert (both.json()["payload"], instant(both.json()["execution_time"])) == ({}, instant(LATER))


async def put_in(pool: asyncpg.Pool, client: Client, state: TaskStatus) -> UUID:
    task_id = await submit(client, execution_time=PAST)
    if state is TaskStatus.DELETED:
        assert (await client.delete(f"/task/{task_id}")).status_code == 200
        return task_id
    assert await claim_all(pool) == [task_id]
    outcome = {TaskStatus.DONE: "done", TaskStatus.FAILED: "fail"}.get(state)
    if outcome is not None:
        await queries.finish_many(pool, [queries.Finish(task_id, 1, outcome, error="x")])
    return task_id


@pytest.mark.parametrize(
    "state",
    [TaskStatus.STARTED_EXECUTING, TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.DELETED],
)
async def test_a_task_that_is_not_submitted_is_409_naming_its_state(
    client: Client, pool: asyncpg.Pool, state: TaskStatus
) -> None:
    task_id = await put_in(pool, client, state)
    before = await table(pool)
    response = await client.patch(f"/task/{task_id}", json={"execution_time": LATER})
    error = assert_error(response, 409)
    assert error["status"] == state.value
    assert state.value in error["detail"]
    assert await table(pool) == before


async def test_a_change_that_meets_a_claim_waits_and_then_refuses(
    client: Client, pool: asyncpg.Pool
) -> None:
    """A claim holds the row when the change comes: the change must wait for it, then see that
    the task started, and change nothing (the API then answers 409: never a 200 for a time that
    will not be used). At the query: the in-process API client blocks its caller's loop."""
    task_id = await submit(client, execution_time=PAST)
    async with pool.acquire() as conn, conn.transaction():
        # The claim's lock, held open: what a worker's claim statement does while it runs.
        await conn.execute("SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE", task_id)
        change = asyncio.create_task(
            queries.reschedule_submitted(pool, task_id, instant(LATER), None)
        )
        # Until the change is seen waiting on that lock, the race has not been set up.
        waiting = (
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND datname = current_database()"
        )
        async with asyncio.timeout(10):
            while not await pool.fetchval(waiting):  # noqa: ASYNC110 - the server's state
                await asyncio.sleep(0.01)
        await conn.execute(
            """UPDATE tasks SET status = 'started_executing', attempts = 1, started_at = now(),
               worker_id = 'w1', lease_expires_at = now() + interval '30 s' WHERE id = $1""",
            task_id,
        )
    assert await change is None
    assert (await row_of(pool, task_id))["execution_time"] == instant(PAST)
    response = await client.patch(f"/task/{task_id}", json={"execution_time": LATER})
    assert assert_error(response, 409)["status"] == "started_executing"


async def test_unknown_and_malformed_ids(client: Client, pool: asyncpg.Pool) -> None:
    await submit(client)
    assert_error(await client.patch(f"/task/{uuid4()}", json={"payload": {}}), 404)
    assert_error(await client.patch("/task/nope", json={"payload": {}}), 400, "task_id")


BAD_CHANGES: list[Any] = [
    pytest.param(b"{}", 400, None, id="nothing-to-change"),
    pytest.param(b'{"execution_time": null}', 400, "execution_time", id="time-null"),
    pytest.param(b'{"execution_time": "2031-01-01T00:00:00"}', 400, "execution_time", id="naive"),
    pytest.param(b'{"execution_time": 1893499200}', 400, "execution_time", id="unix-time"),
    pytest.param(
        b'{"execution_time": "0001-01-01T00:00:00Z"}', 400, "execution_time", id="first-day"
    ),
    pytest.param(b'{"payload": [1]}', 400, "payload", id="payload-array"),
    pytest.param(b'{"payload": {"s": "\\u0000"}}', 400, "payload", id="payload-nul"),
    pytest.param(b'{"payload": {"s": "\xff"}}', 400, None, id="not-utf-8"),
    pytest.param(b'{"task_type": "baz"}', 400, "task_type", id="type-cannot-change"),
    pytest.param(b"[]", 400, None, id="array"),
    pytest.param(b"not json", 400, None, id="malformed"),
]


@pytest.mark.parametrize(("content", "status", "field"), BAD_CHANGES)
async def test_bad_changes_are_refused_and_change_nothing(
    client: Client, pool: asyncpg.Pool, content: bytes, status: int, field: str | None
) -> None:
    task_id = await submit(client, payload={"v": 1})
    before = await table(pool)
    response = await client.patch(f"/task/{task_id}", content=content, headers=JSON)
    assert_error(response, status, field)
    assert await table(pool) == before


async def test_a_big_payload_is_413(client: Client, pool: asyncpg.Pool) -> None:
    task_id = await submit(client)
    before = await table(pool)
    response = await client.patch(f"/task/{task_id}", json={"payload": {"x": "a" * 70_000}})
    assert_error(response, 413, "payload")
    assert await table(pool) == before


# --- scheduled_time ---------------------------------------------------------------------------


async def test_retries_and_a_redrive_keep_the_submitted_time(
    client: Client, pool: asyncpg.Pool
) -> None:
    response = await client.post(
        "/task", json={"task_type": "noop", "execution_time": PAST, "max_attempts": 2}
    )
    task_id = UUID(response.json()["task_id"])
    assert await claim_all(pool) == [task_id]
    await queries.finish_many(
        pool, [queries.Finish(task_id, 1, "retry", error="e1", reason="error", retry_in=0)]
    )
    [again] = (await queries.claim_due(pool, 1, "w1", 30, TYPES)).rows
    assert again["attempts"] == 2
    await queries.finish_many(
        pool, [queries.Finish(task_id, 2, "retry", error="e2", reason="error")]
    )  # no more
    redriven = await client.post(f"/task/{task_id}/retry")
    task = redriven.json()
    assert task["status"] == "submitted"
    assert instant(task["execution_time"]) > instant(PAST) + timedelta(days=365)
    assert instant(task["scheduled_time"]) == instant(PAST)
    # The redriven attempt succeeds: the earlier attempts' error no longer describes the task.
    assert (task["last_error"], task["error_reason"]) == ("e2", "error")
    [third] = (await queries.claim_due(pool, 1, "w1", 30, TYPES)).rows
    await queries.finish_many(pool, [queries.Finish(task_id, third["attempts"], "done")])
    done = (await client.get(f"/task/{task_id}")).json()
    assert (done["status"], done["last_error"], done["error_reason"]) == ("done", None, None)
    assert instant(done["scheduled_time"]) == instant(PAST)


async def test_a_task_never_moved_is_scheduled_for_its_execution_time(client: Client) -> None:
    task_id = await submit(client, execution_time="2030-01-01T13:00:00+01:00")
    task = (await client.get(f"/task/{task_id}")).json()
    assert task["scheduled_time"] == task["execution_time"] == "2030-01-01T12:00:00Z"
