"""POST /task and POST /tasks with `delay` instead of execution_time (or neither: due now): the
due time is the database's now plus the delay, on every insert path."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from tests.integration.test_api import Client


async def due_times(pool: asyncpg.Pool) -> dict[str, datetime]:
    rows = await pool.fetch("SELECT payload->>'n' AS n, execution_time FROM tasks")
    return {r["n"]: r["execution_time"] for r in rows}


@pytest.mark.parametrize("keyed", [False, True], ids=["batched", "idempotency-key"])
async def test_a_delay_counts_from_the_databases_now(
    client: Client, pool: asyncpg.Pool, keyed: bool
) -> None:
    sent: list[dict[str, Any]] = [
        {"delay": "PT10M", "payload": {"n": "iso"}},
        {"delay": 90.5, "payload": {"n": "seconds"}},
        {"delay": 0, "payload": {"n": "zero"}},
        {"payload": {"n": "neither"}},
    ]
    before = await pool.fetchval("SELECT now()")
    for i, fields in enumerate(sent):
        headers = {"Idempotency-Key": f"k{i}"} if keyed else {}
        response = await client.post("/task", json={"task_type": "noop", **fields}, headers=headers)
        assert response.status_code == 201, response.text
    after = await pool.fetchval("SELECT now()")
    due = await due_times(pool)
    for name, delay in (("iso", 600.0), ("seconds", 90.5), ("zero", 0.0), ("neither", 0.0)):
        offset = timedelta(seconds=delay)
        assert before + offset <= due[name] <= after + offset, name


async def test_bulk_items_mix_times_and_delays(client: Client, pool: asyncpg.Pool) -> None:
    items = [
        {"task_type": "noop", "execution_time": "2030-01-01T00:00:00Z", "payload": {"n": "at"}},
        {"task_type": "noop", "delay": "PT1H", "payload": {"n": "in"}},
        {"task_type": "noop", "payload": {"n": "now"}},
    ]
    before = await pool.fetchval("SELECT now()")
    response = await client.post("/tasks", json=items)
    assert response.status_code == 201, response.text
    after = await pool.fetchval("SELECT now()")
    due = await due_times(pool)
    assert due["at"] == datetime.fromisoformat("2030-01-01T00:00:00+00:00")
    assert before + timedelta(hours=1) <= due["in"] <= after + timedelta(hours=1)
    assert before <= due["now"] <= after


async def test_a_bad_delay_in_a_batch_names_its_item(client: Client, pool: asyncpg.Pool) -> None:
    items = [{"task_type": "noop"}, {"task_type": "noop", "delay": "P1Y"}]
    response = await client.post("/tasks", json=items)
    assert response.status_code == 400, response.text
    assert response.json()["field"] == "[1].delay"
    assert await pool.fetchval("SELECT count(*) FROM tasks") == 0
