"""Retention in SQL, with the clock pinned: what the pruner deletes, what it never touches, how
pruners side by side share the rows, and that the scan stays on its index."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from shared import queries
from shared.task import TaskStatus
from tests.factories import new_task
from tests.integration.plans import nodes
from worker.pruner import Pruner

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
DAY = 86400.0


async def add(pool: asyncpg.Pool, status: str, finished_days_ago: float | None, n: int = 1):
    """`n` tasks in `status`; finished ones finished that many days before T0."""
    tasks = [new_task("noop", T0 - timedelta(days=60)) for _ in range(n)]
    await queries.insert_many(pool, tasks)
    ids = [t.id for t in tasks]
    if status == "submitted":
        return ids
    finished = None if finished_days_ago is None else T0 - timedelta(days=finished_days_ago)
    await pool.execute(
        """
        UPDATE tasks
        SET status = $2::task_status, attempts = 1,
            started_at = $3::timestamptz - interval '1 second',
            finished_at = CASE WHEN $2 = 'started_executing' THEN NULL ELSE $3 END,
            worker_id = 'w1',
            lease_expires_at = CASE WHEN $2 = 'started_executing' THEN $3 END
        WHERE id = ANY($1::uuid[])
        """,
        ids,
        status,
        finished or T0 - timedelta(days=59),
    )
    return ids


async def remaining(pool: asyncpg.Pool) -> set:
    return {r["id"] for r in await pool.fetch("SELECT id FROM tasks")}


async def test_prune_deletes_only_finished_tasks_past_their_status_retention(pool) -> None:
    old_done = await add(pool, "done", 8)
    new_done = await add(pool, "done", 6)
    old_deleted = await add(pool, "deleted", 8)
    failed_8_days = await add(pool, "failed", 8)  # past done's retention, not failed's
    old_failed = await add(pool, "failed", 31)
    # Pending and running rows are never pruned, however old they are.
    ancient = await add(pool, "submitted", None) + await add(pool, "started_executing", None)
    kept = set(new_done + failed_8_days + ancient)

    for status, older_than in (
        (TaskStatus.DONE, 7 * DAY),
        (TaskStatus.DELETED, 7 * DAY),
        (TaskStatus.FAILED, 30 * DAY),
        (TaskStatus.SUBMITTED, 0.0),
        (TaskStatus.STARTED_EXECUTING, 0.0),
    ):
        await queries.prune(pool, status, older_than, 100, now=T0)

    assert await remaining(pool) == kept
    assert not kept & set(old_done + old_deleted + old_failed)


async def test_prune_deletes_at_most_its_batch_oldest_first(pool) -> None:
    newer = await add(pool, "done", 10, n=5)
    older = await add(pool, "done", 20, n=5)
    assert await queries.prune(pool, TaskStatus.DONE, 7 * DAY, 5, now=T0) == 5
    assert await remaining(pool) == set(newer)
    assert not set(older) & await remaining(pool)
    assert await queries.prune(pool, TaskStatus.DONE, 7 * DAY, 5, now=T0) == 5
    assert await queries.prune(pool, TaskStatus.DONE, 7 * DAY, 5, now=T0) == 0


async def test_pruners_side_by_side_skip_each_others_rows(pool, dsn: str) -> None:
    await add(pool, "done", 10, n=10)
    first = await asyncpg.connect(dsn)
    try:
        tx = first.transaction()
        await tx.start()
        # The first pruner's batch is locked (deleted, not committed): the second takes the rest
        # at once instead of waiting on those rows.
        assert await queries.prune(first, TaskStatus.DONE, 7 * DAY, 4, now=T0) == 4
        second = queries.prune(pool, TaskStatus.DONE, 7 * DAY, 100, now=T0)
        assert await asyncio.wait_for(second, 5) == 6
        await tx.commit()
    finally:
        await first.close()
    assert await remaining(pool) == set()


async def test_the_pruner_counts_what_it_removed_by_status(pool) -> None:
    await add(pool, "done", 0.01, n=7)  # 864 s ago
    await add(pool, "deleted", 0.01, n=2)
    await add(pool, "failed", 0.01, n=3)
    young = await add(pool, "done", 0.0001, n=2)  # 8.6 s ago
    pruner = Pruner(pool, interval=60, retention_done=60, retention_failed=60, batch=3)
    # The database's clock is now, and these finished years before it (T0 is in 2030: relative
    # to now they lie ahead), so shift them back to now first.
    await pool.execute("UPDATE tasks SET finished_at = now() - ($1::timestamptz - finished_at)", T0)
    counts = await pruner.run_once()
    assert counts == {TaskStatus.DONE: 7, TaskStatus.DELETED: 2, TaskStatus.FAILED: 3}
    assert pruner.pruned == counts
    assert await remaining(pool) == set(young)


@pytest.mark.parametrize("plan_mode", ["force_custom_plan", "force_generic_plan"])
@pytest.mark.parametrize("status", ["done", "failed"])
async def test_the_prune_walks_the_finished_index(dsn: str, status: str, plan_mode: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("""
            INSERT INTO tasks (id, task_type, status, execution_time, started_at, finished_at,
                attempts)
            SELECT gen_random_uuid(), 'noop', 'done', now() - interval '1 day', now(),
                now() - make_interval(secs => g), 1
            FROM generate_series(1, 20000) AS g;
            INSERT INTO tasks (id, task_type, execution_time)
            SELECT gen_random_uuid(), 'noop', now() + make_interval(secs => g)
            FROM generate_series(1, 20000) AS g;
            ANALYZE tasks;
        """)
        await conn.execute(f"SET plan_cache_mode = {plan_mode}")
        await conn.execute(f"PREPARE prune AS {queries.sql()['task_prune']}")
        tx = conn.transaction()
        await tx.start()
        raw = await conn.fetchval(
            f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE prune('{status}', 3600, 1000, NULL)"
        )
        await tx.rollback()
    finally:
        await conn.close()
    found = nodes(json.loads(raw)[0]["Plan"])
    scans = [n for n in found if n.get("Relation Name") == "tasks" and "Scan" in n["Node Type"]]
    assert scans, found
    assert {n.get("Index Name") for n in scans if n.get("Alias") == "tasks"} == {
        "tasks_finished_idx"
    }, scans
    assert not any(n["Node Type"] in ("Sort", "Seq Scan", "Hash Join") for n in found), found


async def test_the_pruner_removes_bulk_keys_past_the_done_retention(pool) -> None:
    old, young = [new_task("noop", T0)], [new_task("noop", T0)]
    await queries.insert_many_keyed(pool, old, "old")
    await queries.insert_many_keyed(pool, young, "young")
    await pool.execute(
        "UPDATE task_batches SET created_at = now() - interval '2 minutes' "
        "WHERE idempotency_key = 'old'"
    )
    pruner = Pruner(pool, interval=60, retention_done=60, retention_failed=60, batch=3)
    await pruner.run_once()
    assert pruner.keys_pruned == 1
    assert await queries.batch_ids_by_key(pool, "old") is None
    assert await queries.batch_ids_by_key(pool, "young") == [young[0].id]
    # The tasks themselves follow their own retention (these are submitted: kept).
    assert await remaining(pool) == {old[0].id, young[0].id}
