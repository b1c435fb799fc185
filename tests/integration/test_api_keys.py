"""Idempotent submission and redrive of failed tasks, at the API.

Bad input answers 400 naming the field and writes nothing (the whole table is compared).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest
from litestar.testing import TestClient

from api.app import create_app
from shared import queries
from shared.settings import Settings
from tests.integration.test_api import (
    PAST,
    TYPES,
    Client,
    assert_error,
    claim_all,
    instant,
    row_of,
    submit,
    table,
)
from tests.integration.test_api_failures import listen, post

# --- idempotency ------------------------------------------------------------------------------


@pytest.mark.parametrize("via", ["field", "header"])
async def test_the_same_key_twice_is_one_task(client: Client, pool: asyncpg.Pool, via: str) -> None:
    key = f"order-{uuid4()}"

    async def send(**fields: Any) -> httpx.Response:
        if via == "header":
            return await client.post("/task", json=post(**fields), headers={"Idempotency-Key": key})
        return await client.post("/task", json=post(idempotency_key=key, **fields))

    first = await send(payload={"n": 1})
    assert first.status_code == 201, first.text
    task_id = first.json()["task_id"]
    assert first.headers["location"] == f"/task/{task_id}"
    before = await table(pool)
    # A replay answers the first task, even with another body: nothing is written.
    again = await send(payload={"n": 2}, max_attempts=9)
    assert again.status_code == 200, again.text
    assert again.json() == {"task_id": task_id}
    assert again.headers["location"] == f"/task/{task_id}"
    assert await table(pool) == before
    [row] = before
    assert (str(row["id"]), row["idempotency_key"]) == (task_id, key)
    assert json.loads(row["payload"]) == {"n": 1}
    # Another key is another task.
    other = await client.post("/task", json=post(idempotency_key=f"{key}-2"))
    assert other.status_code == 201, other.text
    assert other.json()["task_id"] != task_id


async def test_header_and_field_are_one_key(client: Client, pool: asyncpg.Pool) -> None:
    key = "same-key"
    first = await client.post("/task", json=post(), headers={"Idempotency-Key": key})
    assert first.status_code == 201, first.text
    by_field = await client.post("/task", json=post(idempotency_key=key))
    both = await client.post(
        "/task", json=post(idempotency_key=key), headers={"Idempotency-Key": key}
    )
    assert (by_field.status_code, both.status_code) == (200, 200)
    assert by_field.json() == both.json() == first.json()
    assert len(await table(pool)) == 1


async def test_header_and_field_that_differ_are_400(client: Client, pool: asyncpg.Pool) -> None:
    await submit(client)
    before = await table(pool)
    response = await client.post(
        "/task", json=post(idempotency_key="a"), headers={"Idempotency-Key": "b"}
    )
    assert_error(response, 400, "idempotency_key")
    assert await table(pool) == before


async def test_concurrent_posts_with_one_key_make_one_task(dsn: str, pool: asyncpg.Pool) -> None:
    # The sync client serves the app on its own thread and event loop, so requests sent from
    # several threads overlap there, each keyed INSERT on its own pool connection.
    with TestClient(app=create_app(Settings(), dsn=dsn)) as sync_client:
        responses = await asyncio.gather(
            *(
                asyncio.to_thread(
                    sync_client.post, "/task", json=post(), headers={"Idempotency-Key": "burst"}
                )
                for _ in range(50)
            )
        )
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 49 + [201], codes
    assert len({r.json()["task_id"] for r in responses}) == 1
    rows = await table(pool)
    assert [(str(r["id"]), r["idempotency_key"]) for r in rows] == [
        (responses[0].json()["task_id"], "burst")
    ]


async def test_a_new_keyed_task_wakes_the_workers(
    client: Client, pool: asyncpg.Pool, dsn: str
) -> None:
    conn, heard = await listen(dsn)
    try:
        response = await client.post("/task", json=post(execution_time=PAST, idempotency_key="k"))
        assert response.status_code == 201, response.text
        assert await asyncio.wait_for(heard.get(), 5) == 0.0  # due already: "due in 0 s"
        assert await claim_all(pool) == [UUID(response.json()["task_id"])]
    finally:
        await conn.close()


# --- redrive ----------------------------------------------------------------------------------


async def failed_task(client: Client, pool: asyncpg.Pool) -> UUID:
    task_id = await submit(client, "foo", PAST)
    assert await claim_all(pool) == [task_id]
    await queries.finish_many(pool, [queries.Finish(task_id, 1, "fail", error="x", reason="fail")])
    assert (await row_of(pool, task_id))["status"] == "failed"
    return task_id


async def test_retry_puts_a_failed_task_back_and_wakes_the_workers(
    client: Client, pool: asyncpg.Pool, dsn: str
) -> None:
    task_id = await failed_task(client, pool)
    listed = (await client.get("/task", params={"status": "failed"})).json()["tasks"]
    assert [t["task_id"] for t in listed] == [str(task_id)]  # the dead-letter view
    conn, heard = await listen(dsn)
    try:
        response = await client.post(f"/task/{task_id}/retry")
        assert response.status_code == 200, response.text
        task = response.json()
        assert (task["task_id"], task["status"]) == (str(task_id), "submitted")
        assert (task["attempts"], task["last_error"], task["finished_at"]) == (1, "x", None)
        assert await asyncio.wait_for(heard.get(), 5) == 0.0
    finally:
        await conn.close()
    row = await row_of(pool, task_id)
    assert row["status"] == "submitted"
    assert row["execution_time"] > instant(PAST)
    assert row["execution_time"] <= await pool.fetchval("SELECT now()")
    # Due now: a worker claims it for another attempt.
    claim = await queries.claim_due(pool, 10, "w2", 30, TYPES)
    assert [(r["id"], r["attempts"]) for r in claim.rows] == [(task_id, 2)]


@pytest.mark.parametrize("state", ["submitted", "started_executing", "done", "deleted"])
async def test_retry_of_a_task_that_has_not_failed_is_409_naming_its_state(
    client: Client, pool: asyncpg.Pool, state: str
) -> None:
    task_id = await submit(client, "foo", PAST)
    if state == "deleted":
        assert (await client.delete(f"/task/{task_id}")).status_code == 200
    elif state != "submitted":
        assert await claim_all(pool) == [task_id]
        if state == "done":
            await queries.finish_many(pool, [queries.Finish(task_id, 1, "done")])
    before = await table(pool)
    error = assert_error(await client.post(f"/task/{task_id}/retry"), 409)
    assert set(error) == {"detail", "status"}
    assert error["status"] == state
    assert state in error["detail"]
    assert await table(pool) == before


async def test_a_second_retry_is_409_submitted(client: Client, pool: asyncpg.Pool) -> None:
    task_id = await failed_task(client, pool)
    assert (await client.post(f"/task/{task_id}/retry")).status_code == 200
    before = await table(pool)
    assert assert_error(await client.post(f"/task/{task_id}/retry"), 409)["status"] == "submitted"
    assert await table(pool) == before


async def test_retry_of_an_unknown_task_is_404(client: Client, pool: asyncpg.Pool) -> None:
    await failed_task(client, pool)
    before = await table(pool)
    error = assert_error(await client.post(f"/task/{uuid4()}/retry"), 404)
    assert set(error) == {"detail"}
    assert await table(pool) == before


async def test_retry_of_a_non_uuid_is_400(client: Client, pool: asyncpg.Pool) -> None:
    await failed_task(client, pool)
    before = await table(pool)
    assert_error(await client.post("/task/not-a-uuid/retry"), 400, "task_id")
    assert await table(pool) == before
