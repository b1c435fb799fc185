"""One Idempotency-Key sent 50 times at once through two API processes: exactly one task (POST
/task), or exactly one batch (POST /tasks)."""

from __future__ import annotations

import asyncio
from uuid import UUID, uuid4

import httpx
import pytest

from tests.e2e.fleet import Fleet, fetchval

pytestmark = pytest.mark.e2e
REQUESTS = 50
BODY = {"task_type": "noop", "execution_time": "2030-01-01T12:00:00Z"}


async def post_all(
    urls: list[str], key: str, path: str = "/task", body: object = BODY
) -> list[tuple[str, httpx.Response]]:
    """POST the same keyed body REQUESTS times, alternating between the APIs, all at once."""
    clients = [httpx.AsyncClient(base_url=url, timeout=30) for url in urls]
    go = asyncio.Event()
    ready = 0

    async def send(i: int) -> tuple[str, httpx.Response]:
        nonlocal ready
        client = clients[i % len(clients)]
        # Connect first (and let each API open pool connections), so the POSTs start together.
        assert (await client.get("/ready")).status_code == 200
        ready += 1
        if ready == REQUESTS:
            go.set()
        await go.wait()
        response = await client.post(path, json=body, headers={"Idempotency-Key": key})
        return urls[i % len(urls)], response

    try:
        return await asyncio.gather(*(send(i) for i in range(REQUESTS)))
    finally:
        for client in clients:
            await client.aclose()


def test_one_key_through_two_api_processes_makes_one_task(fleet: Fleet, dsn: str) -> None:
    urls = [fleet.api(), fleet.api()]
    key = f"e2e-{uuid4()}"
    answers = asyncio.run(post_all(urls, key))

    codes = sorted(response.status_code for _, response in answers)
    assert codes == [200] * (REQUESTS - 1) + [201], codes
    ids = {UUID(response.json()["task_id"]) for _, response in answers}
    assert len(ids) == 1, ids
    [task_id] = ids
    assert {response.headers["location"] for _, response in answers} == {f"/task/{task_id}"}
    # Both processes answered, and agree: the one that did not create the task replayed it.
    assert {url for url, _ in answers} == set(urls)
    assert fetchval(dsn, "SELECT count(*) FROM tasks WHERE idempotency_key = $1", key) == 1
    assert fetchval(dsn, "SELECT count(*) FROM tasks") == 1
    assert fetchval(dsn, "SELECT id FROM tasks WHERE idempotency_key = $1", key) == task_id


def test_one_key_through_two_api_processes_makes_one_batch(fleet: Fleet, dsn: str) -> None:
    urls = [fleet.api(), fleet.api()]
    key = f"e2e-{uuid4()}"
    answers = asyncio.run(post_all(urls, key, "/tasks", [BODY] * 10))

    codes = sorted(response.status_code for _, response in answers)
    assert codes == [200] * (REQUESTS - 1) + [201], codes
    batches = {tuple(response.json()["task_ids"]) for _, response in answers}
    assert len(batches) == 1, batches
    assert {url for url, _ in answers} == set(urls)
    [ids] = batches
    assert fetchval(dsn, "SELECT count(*) FROM tasks") == 10
    stored = fetchval(dsn, "SELECT task_ids FROM task_batches WHERE idempotency_key = $1", key)
    assert [str(i) for i in stored] == list(ids)  # type: ignore[union-attr]
