"""The one module that runs SQL: named blocks from shared/sql/*.sql and a typed call for each."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import NamedTuple
from uuid import UUID

import asyncpg

from shared.task import TaskStatus

SQL_DIR = Path(__file__).resolve().parent / "sql"
_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)

Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy  # what a pool hands out
Executor = Conn | asyncpg.Pool


@functools.cache
def sql() -> dict[str, str]:
    """Every named query, parsed once on first use (never at import)."""
    queries: dict[str, str] = {}
    for path in sorted(SQL_DIR.glob("*.sql")):
        parts = _NAME.split(path.read_text())
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            if name in queries:
                raise ValueError(f"query {name} is defined twice")
            queries[name] = body.strip().rstrip(";")
    return queries


async def insert_many(
    db: Executor,
    ids: Sequence[UUID],
    task_types: Sequence[str],
    execution_times: Sequence[datetime],
    payloads: Sequence[str],
) -> float:
    """Insert a batch; the seconds until its earliest task is due (negative: overdue)."""
    due_in: float = await db.fetchval(
        sql()["task_insert_many"], ids, task_types, execution_times, payloads
    )
    return due_in


async def notify_due(db: Executor, due_in: float) -> None:
    await db.execute(sql()["task_notify_due"], f"{max(due_in, 0.0):.6f}")


class Claim(NamedTuple):
    rows: list[asyncpg.Record]
    next_due_in: float | None  # seconds to the earliest task not yet due; None: none at all


async def claim_due(
    db: Executor,
    limit: int,
    worker_id: str,
    lease_seconds: float,
    task_types: Sequence[str],
    now: datetime | None = None,
) -> Claim:
    rows = await db.fetch(sql()["task_claim_due"], limit, worker_id, lease_seconds, task_types, now)
    marker = rows.pop()  # the statement always ends with the next-due row
    assert marker["id"] is None
    return Claim(rows, marker["next_due_in"])


async def complete_many(
    db: Executor,
    ids: Sequence[UUID],
    attempts: Sequence[int],
    statuses: Sequence[TaskStatus],
    results: Sequence[str | None],
    errors: Sequence[str | None],
) -> set[UUID]:
    if any(s not in (TaskStatus.DONE, TaskStatus.FAILED) for s in statuses):
        raise ValueError("an attempt can only finish as done or failed")
    rows = await db.fetch(
        sql()["task_complete_many"], ids, attempts, [str(s) for s in statuses], results, errors
    )
    return {row["id"] for row in rows}


async def get(db: Executor, task_id: UUID) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await db.fetchrow(sql()["task_get"], task_id)
    return row


async def list_page(
    db: Executor,
    *,
    status: TaskStatus | None,
    task_type: str | None,
    after: UUID | None,
    limit: int,
) -> list[asyncpg.Record]:
    if status is None:
        return await db.fetch(sql()["task_list"], task_type, after, limit)
    return await db.fetch(sql()["task_list_by_status"], str(status), task_type, after, limit)


async def delete_submitted(db: Executor, task_id: UUID) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await db.fetchrow(sql()["task_delete_submitted"], task_id)
    return row
