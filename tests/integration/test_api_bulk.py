"""POST /tasks: many tasks in one request, one INSERT, all or nothing, ids in request order."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg
import pytest

from tests.integration.test_api import JSON, WHEN, Client, assert_error, instant, table


def item(i: int, **fields: Any) -> dict[str, Any]:
    return {"task_type": "noop", "execution_time": WHEN, "payload": {"i": i}, **fields}


async def test_creates_every_task_with_ids_in_request_order(
    client: Client, pool: asyncpg.Pool
) -> None:
    items = [item(i) for i in range(250)]
    items[7] = item(7, task_type="baz", max_attempts=3, timeout_seconds=12)
    response = await client.post("/tasks", json=items)
    assert response.status_code == 201, response.text
    ids = [UUID(task_id) for task_id in response.json()["task_ids"]]
    assert len(ids) == len(set(ids)) == 250
    rows = {row["id"]: row for row in await table(pool)}
    assert set(rows) == set(ids)
    for i, task_id in enumerate(ids):
        assert rows[task_id]["payload"] == f'{{"i": {i}}}'
        assert rows[task_id]["execution_time"] == instant(WHEN)
    seventh = rows[ids[7]]
    assert (seventh["task_type"], seventh["max_attempts"], seventh["timeout_seconds"]) == (
        "baz",
        3,
        12.0,
    )
    assert rows[ids[0]]["max_attempts"] == 1  # the default policy


@pytest.mark.parametrize(
    ("bad", "status", "field"),
    [
        ({"task_type": "nope"}, 422, "[3].task_type"),
        ({"execution_time": "2030-01-01T12:00:00"}, 400, "[3].execution_time"),
        ({"max_attempts": 0}, 400, "[3].max_attempts"),
        ({"backoff_base_seconds": 10, "backoff_cap_seconds": 1}, 400, "[3].backoff_cap_seconds"),
        ({"payload": {"s": "\u0000"}}, 400, "[3].payload"),
        ({"idempotency_key": "k"}, 400, "[3].idempotency_key"),
        ({"colour": "red"}, 400, "[3].colour"),
    ],
)
async def test_one_bad_task_refuses_them_all_naming_it(
    client: Client, pool: asyncpg.Pool, bad: dict[str, Any], status: int, field: str
) -> None:
    items = [item(i) for i in range(6)]
    items[3] = {**items[3], **bad}
    error = assert_error(await client.post("/tasks", json=items), status, field)
    assert error["detail"].startswith(field)
    assert await table(pool) == []


@pytest.mark.parametrize(
    "body",
    [[], [item(i) for i in range(1001)], item(0), "noop", [1, 2]],
    ids=["empty", "1001 tasks", "an object", "a string", "numbers"],
)
async def test_a_body_that_is_not_1_to_1000_tasks_is_400(
    client: Client, pool: asyncpg.Pool, body: Any
) -> None:
    response = await client.post("/tasks", json=body)
    assert response.status_code == 400, response.text
    assert await table(pool) == []


async def test_a_body_that_is_not_utf_8_is_400(client: Client, pool: asyncpg.Pool) -> None:
    content = b'[{"task_type": "noop", "execution_time": "%s", "payload": {"s": "\xff"}}]' % (
        WHEN.encode()
    )
    response = await client.post("/tasks", content=content, headers=JSON)
    assert "UTF-8" in assert_error(response, 400)["detail"]
    assert await table(pool) == []


@pytest.mark.parametrize("path", ["/task", "/tasks"])
async def test_the_body_is_decoded_once_by_the_strict_check(
    client: Client, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """Litestar would decode the body again (untyped, then a lenient convert): 60% more decoding
    for a bulk request. The strict check hands it what it decoded instead."""

    def decoded_again(*args: object, **kwargs: object) -> None:
        raise AssertionError("Litestar decoded the body a second time")

    monkeypatch.setattr("litestar.connection.request.decode_json", decoded_again)
    body: Any = [item(1), item(2)] if path == "/tasks" else item(1)
    response = await client.post(path, json=body)
    assert response.status_code == 201, response.text
    assert len(await table(pool)) == (2 if path == "/tasks" else 1)
