"""Helpers for running the worker loop in-process: handlers, submitting, waiting on a row."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from datetime import datetime
from typing import Any

import asyncpg

from shared import queries
from shared.policy import TaskPolicy
from shared.registry import Registered
from shared.settings import Settings
from shared.task import TaskStatus
from tests.factories import new_task

# A long horizon: if the worker woke only on its cap, these tests would time out.
SETTINGS = Settings(wake_horizon_seconds=30.0, concurrency=10, completion_flush_ms=2.0)


def handlers(**funcs: Callable[..., Any]) -> dict[str, Registered]:
    return {n: Registered(n, f, inspect.iscoroutinefunction(f)) for n, f in funcs.items()}


async def submit(
    pool: asyncpg.Pool,
    task_type: str,
    when: datetime,
    payload: str = "{}",
    policy: TaskPolicy | None = None,
) -> Any:
    task = new_task(task_type, when, payload, policy=policy)
    # As the API does: insert, then tell the workers when it is due.
    due_in = await queries.insert_many(pool, [task])
    await queries.notify_due(pool, due_in)
    return task.id


async def wait_status(
    pool: asyncpg.Pool,
    task_id: Any,
    *wanted: TaskStatus,
    within: float = 10.0,
    attempts: int | None = None,
) -> Any:
    """The row once its status is one of `wanted` (and its attempts, if given)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        row = await queries.get(pool, task_id)
        if (
            row is not None
            and TaskStatus(row["status"]) in wanted
            and attempts in (None, row["attempts"])
        ):
            return row
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"task {task_id} still {row and row['status']} after {within}s")
        await asyncio.sleep(0.02)


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def db_now(pool: asyncpg.Pool) -> datetime:
    now: datetime = await pool.fetchval("SELECT now()")
    return now
