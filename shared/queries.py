"""The one module that runs SQL: named blocks from shared/sql/*.sql and a typed call for each."""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import NamedTuple, TypeVar
from uuid import UUID

import asyncpg

from shared.db import TimedPool
from shared.task import NewTask, TaskStatus

SQL_DIR = Path(__file__).resolve().parent / "sql"
_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)

Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy  # what a pool hands out
Executor = Conn | asyncpg.Pool | TimedPool  # TimedPool: what the API and workers use
T = TypeVar("T")


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


def _policy(task: NewTask) -> tuple[object, ...]:
    """The policy columns of the INSERT, in shared.policy.FIELDS order."""
    return task.policy.columns


async def insert_many(db: Executor, tasks: Sequence[NewTask]) -> float:
    """Insert a batch; the seconds until its earliest task is due (negative: overdue)."""
    row = await _insert_many(db, tasks, None)
    due_in: float = row["due_in"]
    return due_in


async def insert_many_keyed(db: Executor, tasks: Sequence[NewTask], key: str) -> float | None:
    """Insert a batch under an idempotency key, all or nothing: the seconds until its earliest
    task is due, or None if the key was taken (then nothing was written; batch_ids_by_key)."""
    row = await _insert_many(db, tasks, key)
    due_in: float | None = row["due_in"] if row["created"] else None
    return due_in


async def _insert_many(db: Executor, tasks: Sequence[NewTask], key: str | None) -> asyncpg.Record:
    """Each distinct policy is sent once and each task names its own by number: a batch mostly
    shares a few, and every array element costs the client and the server (28% less client
    CPU)."""
    policies: dict[tuple[object, ...], int] = {}
    numbers = [policies.setdefault(_policy(t), len(policies) + 1) for t in tasks]
    row: asyncpg.Record | None = await db.fetchrow(
        sql()["task_insert_many"],
        [t.id for t in tasks],
        [t.task_type for t in tasks],
        [t.execution_time for t in tasks],
        [t.payload for t in tasks],
        numbers,
        *(list(column) for column in zip(*policies, strict=True)),
        key,
        # Sent only when some task is due after a delay from the database's now.
        [t.delay for t in tasks] if any(t.execution_time is None for t in tasks) else None,
    )
    assert row is not None  # the statement always answers one row
    return row


async def batch_ids_by_key(db: Executor, key: str) -> list[UUID] | None:
    """The ids of the batch submitted under `key`, in request order; None if there is none."""
    ids: list[UUID] | None = await db.fetchval(sql()["task_batch_get_by_key"], key)
    return ids


async def insert_keyed(db: Executor, task: NewTask) -> float | None:
    """Insert a task under its idempotency key: seconds until due, or None if the key is taken."""
    assert task.idempotency_key is not None
    due_in: float | None = await db.fetchval(
        sql()["task_insert_keyed"],
        task.id,
        task.task_type,
        task.execution_time,
        task.payload,
        *_policy(task),
        task.idempotency_key,
        task.delay,
    )
    return due_in


async def get_by_key(db: Executor, key: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await db.fetchrow(sql()["task_get_by_key"], key)
    return row


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


class Finish(NamedTuple):
    """How one attempt ended, as task_finish_many writes it."""

    task_id: UUID
    attempt: int
    outcome: str  # 'done', 'retry' (if attempts are left) or 'fail'
    result: str | None = None  # JSON
    error: str | None = None
    reason: str | None = None  # error_reason
    retry_in: float | None = None  # seconds; None: the task's backoff


FINISH_OUTCOMES = frozenset({"done", "retry", "fail"})
_STATUSES = {status.value: status for status in TaskStatus}  # a lookup, not an enum call per row


async def finish_many(db: Executor, finished: Sequence[Finish]) -> dict[UUID, TaskStatus]:
    """Write a batch of outcomes, fenced: the status each one written got (stale ones absent)."""
    if any(f.outcome not in FINISH_OUTCOMES for f in finished):
        raise ValueError(f"an attempt ends as one of {sorted(FINISH_OUTCOMES)}")
    if not finished:
        return {}
    rows = await db.fetch(
        sql()["task_finish_many"], *(list(c) for c in zip(*finished, strict=True))
    )
    return {row["id"]: _STATUSES[row["status"]] for row in rows}


async def heartbeat_many(
    db: Executor,
    ids: Sequence[UUID],
    attempts: Sequence[int],
    worker_id: str,
    lease_seconds: float,
) -> set[UUID]:
    """Renew the leases of running attempts; the ids still held."""
    rows = await db.fetch(sql()["task_heartbeat_many"], ids, attempts, worker_id, lease_seconds)
    return {row["id"] for row in rows}


async def rescue_expired(
    db: Executor, limit: int, now: datetime | None = None
) -> list[asyncpg.Record]:
    """Resolve up to `limit` expired leases: (id, status, attempts, worker_id, due_in) of each."""
    return await db.fetch(sql()["task_rescue_expired"], limit, now)


async def hand_back(db: Executor, worker_id: str, keep: Sequence[UUID]) -> list[UUID]:
    """Return to submitted every attempt of `worker_id` (and its claims) not in `keep`; ids."""
    rows = await db.fetch(sql()["task_hand_back"], worker_id, keep)
    return [row["id"] for row in rows]


async def hand_back_claims(db: Executor, claim_ids: Sequence[str]) -> list[UUID]:
    """Return to submitted whatever the claims `claim_ids` (never answered) recorded; ids."""
    rows = await db.fetch(sql()["task_hand_back_claims"], claim_ids)
    return [row["id"] for row in rows]


async def reschedule_submitted(
    db: Executor, task_id: UUID, execution_time: datetime | None, payload: str | None
) -> asyncpg.Record | None:
    """Change a submitted task's time and/or payload (None: unchanged); the row with due_in, or
    None if the task is not submitted."""
    row: asyncpg.Record | None = await db.fetchrow(
        sql()["task_reschedule_submitted"], task_id, execution_time, payload
    )
    return row


async def retry_failed(db: Executor, task_id: UUID) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await db.fetchrow(sql()["task_retry_failed"], task_id)
    return row


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
    schedule: str | None = None,
) -> list[asyncpg.Record]:
    if schedule is not None:
        status_text = None if status is None else status.value
        return await db.fetch(
            sql()["task_list_by_schedule"], schedule, status_text, task_type, after, limit
        )
    if status is None:
        return await db.fetch(sql()["task_list"], task_type, after, limit)
    return await db.fetch(status_page_sql(status), task_type, after, limit)


@functools.cache
def status_page_sql(status: TaskStatus) -> str:
    """task_list_by_status for one status (see its comment in tasks.sql)."""
    return sql()["task_list_by_status"].replace("{status}", status.value)


async def delete_submitted(db: Executor, task_id: UUID) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await db.fetchrow(sql()["task_delete_submitted"], task_id)
    return row


async def prune_batch_keys(
    db: Executor, older_than: float, limit: int, now: datetime | None = None
) -> int:
    """Delete up to `limit` bulk idempotency keys recorded more than `older_than` seconds ago."""
    deleted: int = await db.fetchval(sql()["task_batch_prune"], older_than, limit, now)
    return deleted


async def prune(
    db: Executor,
    status: TaskStatus,
    older_than: float,
    limit: int,
    now: datetime | None = None,
) -> int:
    """Delete up to `limit` tasks in `status` finished more than `older_than` seconds ago."""
    deleted: int = await db.fetchval(sql()["task_prune"], str(status), older_than, limit, now)
    return deleted


async def count_bounded(db: Executor, limit: int) -> list[asyncpg.Record]:
    """(status, task_type, n): exact counts, of at most `limit` tasks of each status."""
    return await db.fetch(sql()["task_count_bounded"], limit)


async def count_estimates(db: Executor) -> list[asyncpg.Record]:
    """(status, task_type, n): the statistics' estimates for the most common pairs."""
    return await db.fetch(sql()["task_count_estimates"])


async def take_due_schedules(
    db: Executor, limit: int, horizon: float, lease: float, now: datetime | None = None
) -> list[asyncpg.Record]:
    """Lease up to `limit` schedules with an occurrence due within `horizon` s: their rows, each
    with lease_until (the fence of materialize) and db_now."""
    return await db.fetch(sql()["schedule_take_due"], limit, horizon, lease, now)


class Materialized(NamedTuple):
    made: int  # tasks inserted (an occurrence another scheduler made already is not)
    moved: bool  # False: the lease had run out, nothing was written
    due_in: float | None  # seconds until the earliest task made is due


async def materialize(
    db: Executor,
    name: str,
    lease: datetime,
    occurrences: Sequence[datetime],
    ids: Sequence[UUID],
    next_at: datetime | None,
) -> Materialized:
    """Insert the tasks of a leased schedule's occurrences and move its next_at (fenced)."""
    row = await db.fetchrow(sql()["schedule_materialize"], name, lease, occurrences, ids, next_at)
    assert row is not None
    return Materialized(row["made"], bool(row["moved"]), row["due_in"])


async def insert_schedule(db: Executor, *values: object) -> asyncpg.Record | None:
    """A new schedule (the columns of schedule_insert, in its order); None if the name is taken."""
    row: asyncpg.Record | None = await db.fetchrow(sql()["schedule_insert"], *values)
    return row


async def get_schedule(db: Executor, name: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await db.fetchrow(sql()["schedule_get"], name)
    return row


async def list_schedules(db: Executor, after: str | None, limit: int) -> list[asyncpg.Record]:
    return await db.fetch(sql()["schedule_list"], after, limit)


async def delete_schedule(db: Executor, name: str) -> int | None:
    """Remove a schedule and delete its occurrences still submitted, in one transaction: how
    many were deleted, or None if there is no such schedule."""

    async def work(conn: Conn) -> int | None:
        if await conn.fetchval(sql()["schedule_delete"], name) is None:
            return None
        deleted: int = await conn.fetchval(sql()["schedule_delete_occurrences"], name)
        return deleted

    return await _in_transaction(db, work)


async def _in_transaction(db: Executor, work: Callable[[Conn], Awaitable[T]]) -> T:
    """`work` on one connection in a transaction, whatever kind of executor `db` is."""
    if isinstance(db, TimedPool):
        return await db.transaction(work)
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn, conn.transaction():
            return await work(conn)
    async with db.transaction():
        return await work(db)


async def change_schedule(
    db: Executor, name: str, change: Callable[[asyncpg.Record], Sequence[object]]
) -> asyncpg.Record | None:
    """Rewrite a schedule in one transaction: `change` is given the locked row (with db_now and
    last_made, see schedule_lock) and returns the columns of schedule_insert after the name; an
    exception it raises changes nothing. The new row, or None if there is no such schedule."""

    async def work(conn: Conn) -> asyncpg.Record | None:
        row = await conn.fetchrow(sql()["schedule_lock"], name)
        if row is None:
            return None
        changed: asyncpg.Record | None = await conn.fetchrow(
            sql()["schedule_update"], name, *change(row)
        )
        return changed

    return await _in_transaction(db, work)


async def set_schedule_enabled(db: Executor, name: str, enabled: bool) -> asyncpg.Record | None:
    """Pause or resume a schedule; its row, or None if there is none."""
    row: asyncpg.Record | None = await db.fetchrow(sql()["schedule_set_enabled"], name, enabled)
    return row


async def trigger_schedule(db: Executor, name: str, task_id: UUID) -> UUID | None:
    """A task of the schedule due now; its id, or None if there is no such schedule."""
    made: UUID | None = await db.fetchval(sql()["schedule_trigger"], name, task_id)
    return made
