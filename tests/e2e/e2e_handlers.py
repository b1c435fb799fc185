"""The handler the e2e tests run in real worker processes: it records each run in a side table.

Imported by `duetime worker` / `duetime api` through DUETIME_IMPORTS=e2e_handlers, with this
folder on PYTHONPATH.
"""

from __future__ import annotations

import asyncio
import os

import asyncpg

from duetime import TaskContext, task

_pool: asyncpg.Pool | None = None
_lock = asyncio.Lock()


async def _get_pool() -> asyncpg.Pool:
    global _pool
    async with _lock:
        if _pool is None:
            _pool = await asyncpg.create_pool(os.environ["DATABASE_URL"], min_size=1, max_size=2)
    assert _pool is not None
    return _pool


@task("record")
async def record(ctx: TaskContext) -> dict[str, int]:
    """One row in `executions` (fleet.CREATE_EXECUTIONS) per run, written by the DB's clock."""
    pool = await _get_pool()
    await pool.execute(
        "INSERT INTO executions (task_id, attempt, worker_pid) VALUES ($1, $2, $3)",
        ctx.task_id,
        ctx.attempt,
        os.getpid(),
    )
    return {"pid": os.getpid()}
