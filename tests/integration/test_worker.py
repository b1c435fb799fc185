"""The worker loop in-process against a real PostgreSQL: runs, records, wakes on time, stops."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from shared import queries
from shared.registry import TaskContext
from shared.settings import Settings
from shared.task import TaskStatus
from tests.integration.workers import (
    SETTINGS,
    db_now,
    handlers,
    submit,
    until,
    wait_status,
)
from worker.loop import Worker


async def test_runs_a_due_task_and_stores_its_result(pool, running) -> None:
    seen: list[TaskContext] = []

    async def echo(ctx: TaskContext) -> dict[str, Any]:
        seen.append(ctx)
        return {"echo": ctx.payload["x"]}

    running(handlers(echo=echo))
    task_id = await submit(pool, "echo", await db_now(pool), '{"x": 42}')
    row = await wait_status(pool, task_id, TaskStatus.DONE)
    assert row["result"] == '{"echo": 42}'
    assert row["attempts"] == 1
    assert [(c.task_id, c.attempt, c.payload) for c in seen] == [(task_id, 1, {"x": 42})]


async def test_a_handler_error_fails_the_task_with_its_text(pool, running) -> None:
    async def boom(ctx: TaskContext) -> None:
        raise ValueError("no such customer")

    running(handlers(boom=boom))
    task_id = await submit(pool, "boom", await db_now(pool))
    row = await wait_status(pool, task_id, TaskStatus.FAILED)
    assert row["last_error"] == "ValueError: no such customer"
    assert row["finished_at"] is not None


async def test_a_result_that_is_not_json_fails_the_task(pool, running) -> None:
    async def weird(ctx: TaskContext) -> object:
        return object()

    running(handlers(weird=weird))
    task_id = await submit(pool, "weird", await db_now(pool))
    row = await wait_status(pool, task_id, TaskStatus.FAILED)
    assert "not JSON-serialisable" in row["last_error"]


async def test_a_plain_function_runs_in_a_thread(pool, running) -> None:
    threads: list[str] = []

    def blocking(ctx: TaskContext) -> int:
        threads.append(threading.current_thread().name)
        return 7

    running(handlers(blocking=blocking))
    task_id = await submit(pool, "blocking", await db_now(pool))
    row = await wait_status(pool, task_id, TaskStatus.DONE)
    assert row["result"] == "7"
    assert len(threads) == 1
    assert threads[0].startswith("duetime-task")


async def test_wakes_at_the_due_time_not_before(pool, running) -> None:
    started_at: list[datetime] = []

    async def stamp(ctx: TaskContext) -> None:
        started_at.append(await pool.fetchval("SELECT clock_timestamp()"))

    running(handlers(stamp=stamp))
    due = await db_now(pool) + timedelta(seconds=1.5)
    task_id = await submit(pool, "stamp", due)
    await wait_status(pool, task_id, TaskStatus.DONE, within=10)
    lag = (started_at[0] - due).total_seconds()
    # Never early; and woken by its timer, not by the 30 s horizon.
    assert 0 <= lag < 1.0, lag


async def test_a_notify_wakes_an_idle_worker(pool, running) -> None:
    async def noop(ctx: TaskContext) -> None:
        return None

    worker = running(handlers(noop=noop))
    # Wait until it listens and has gone to sleep on an empty table: its timer says 30 s.
    await until(lambda: worker.waker is not None and worker.waker.connected.is_set())
    await until(lambda: worker.idle_sleeps >= 1)
    task_id = await submit(pool, "noop", await db_now(pool))
    # Done within 5 s while its timer said 30 s: the NOTIFY woke it.
    await wait_status(pool, task_id, TaskStatus.DONE, within=5)


async def test_never_runs_more_than_its_concurrency(pool, running) -> None:
    active = 0
    peak = 0

    async def slow(ctx: TaskContext) -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.1)
        active -= 1

    running(handlers(slow=slow), Settings(concurrency=3, wake_horizon_seconds=30.0))
    now = await db_now(pool)
    ids = [await submit(pool, "slow", now) for _ in range(12)]
    for task_id in ids:
        await wait_status(pool, task_id, TaskStatus.DONE)
    assert peak == 3


async def test_claims_only_types_it_has_handlers_for(pool, running) -> None:
    async def mine(ctx: TaskContext) -> None:
        return None

    running(handlers(mine=mine))
    now = await db_now(pool)
    other = await submit(pool, "someone_elses", now)
    task_id = await submit(pool, "mine", now)
    await wait_status(pool, task_id, TaskStatus.DONE)
    row = await queries.get(pool, other)
    assert row is not None
    assert row["status"] == "submitted"


async def test_stop_lets_running_attempts_finish_and_flushes(pool, dsn) -> None:
    release = asyncio.Event()
    entered = asyncio.Event()

    async def gated(ctx: TaskContext) -> str:
        entered.set()
        await release.wait()
        return "finished"

    worker = Worker(SETTINGS, dsn, handlers(gated=gated))
    run = asyncio.create_task(worker.run(grace=10))
    task_id = await submit(pool, "gated", await db_now(pool))
    await asyncio.wait_for(entered.wait(), 10)
    worker.stop()
    await asyncio.sleep(0.1)
    assert not run.done()  # still waiting for the running attempt
    release.set()
    await asyncio.wait_for(run, 10)
    row = await queries.get(pool, task_id)
    assert row is not None
    assert (row["status"], row["result"]) == ("done", '"finished"')


async def test_claiming_waits_while_results_cannot_be_written(pool, running, dsn) -> None:
    # Each attempt's row gets locked by another transaction before the handler returns, so its
    # result cannot be written until that commits: writing has fallen behind. The worker may
    # run one concurrency's worth more, then must stop claiming instead of piling up attempts.
    blocker = await asyncpg.connect(dsn)
    held = blocker.transaction()
    await held.start()
    one_at_a_time = asyncio.Lock()
    blocking = True

    async def locked(ctx: TaskContext) -> None:
        async with one_at_a_time:
            if blocking:
                await blocker.execute("SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE", ctx.task_id)

    try:
        worker = running(handlers(locked=locked), SETTINGS.with_(concurrency=5))
        now = await db_now(pool)
        ids = [await submit(pool, "locked", now) for _ in range(30)]
        await until(lambda: worker.throttled > 0 and not worker.running)
        assert worker.claimed == 10  # 5 whose write waits, 5 more buffered behind them
    finally:
        async with one_at_a_time:
            blocking = False
            await held.commit()
            await blocker.close()
    for task_id in ids:
        await wait_status(pool, task_id, TaskStatus.DONE)
    assert worker.claimed == 30
