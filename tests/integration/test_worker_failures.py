"""The worker loop when handlers fail, hang or lose their lease, in-process on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from datetime import timedelta

from shared import queries
from shared.policy import TaskPolicy
from shared.registry import Fail, Retry, TaskContext
from shared.task import TaskStatus
from tests.integration.workers import SETTINGS, db_now, handlers, submit, until, wait_status

QUICK_RETRY = TaskPolicy(max_attempts=3, backoff="fixed", backoff_base_seconds=0)  # type: ignore[arg-type]


async def test_a_failing_handler_is_retried_until_it_succeeds(pool, running) -> None:
    seen: list[int] = []

    async def shaky(ctx: TaskContext) -> int:
        seen.append(ctx.attempt)
        if ctx.attempt < 3:
            raise ConnectionError(f"upstream down ({ctx.attempt})")
        return ctx.attempt

    running(handlers(shaky=shaky))
    task_id = await submit(pool, "shaky", await db_now(pool), policy=QUICK_RETRY)
    row = await wait_status(pool, task_id, TaskStatus.DONE)
    assert seen == [1, 2, 3]
    assert (row["attempts"], row["result"]) == (3, "3")
    # last_error describes the latest failed attempt: once one succeeds there is none (attempts
    # says how many it took).
    assert (row["last_error"], row["error_reason"]) == (None, None)


async def test_retry_after_puts_the_task_back_with_its_error_kept(pool, running) -> None:
    async def later(ctx: TaskContext) -> None:
        raise Retry("rate limited", after=3600)

    running(handlers(later=later))
    before = await db_now(pool)
    task_id = await submit(pool, "later", before, policy=QUICK_RETRY)
    row = await wait_status(pool, task_id, TaskStatus.SUBMITTED, within=10, attempts=1)
    assert (row["last_error"], row["error_reason"]) == ("rate limited", "retry")
    assert row["execution_time"] >= before + timedelta(seconds=3600)


async def test_fail_ends_the_task_with_attempts_left(pool, running) -> None:
    calls = 0

    def refuse(ctx: TaskContext) -> None:
        nonlocal calls
        calls += 1
        raise Fail("no such customer")

    running(handlers(refuse=refuse))
    task_id = await submit(pool, "refuse", await db_now(pool), policy=QUICK_RETRY)
    row = await wait_status(pool, task_id, TaskStatus.FAILED)
    assert (row["attempts"], row["error_reason"]) == (1, "fail")
    assert row["last_error"] == "no such customer"
    assert calls == 1


async def test_an_async_handler_past_its_timeout_is_cancelled(pool, running) -> None:
    cancelled = asyncio.Event()

    async def forever(ctx: TaskContext) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            assert ctx.cancelled.is_set()
            cancelled.set()
            raise

    running(handlers(forever=forever))
    policy = TaskPolicy(timeout_seconds=0.5)
    task_id = await submit(pool, "forever", await db_now(pool), policy=policy)
    row = await wait_status(pool, task_id, TaskStatus.FAILED, within=10)
    assert cancelled.is_set()
    assert row["error_reason"] == "timeout"
    assert row["last_error"] == "timed out after 0.5s"


async def test_a_thread_that_ignores_cancellation_is_abandoned(pool, running) -> None:
    stop_spinning = threading.Event()
    saw_cancel: list[bool] = []

    def spin(ctx: TaskContext) -> str:
        while not stop_spinning.wait(0.01):  # ignores ctx.cancelled
            pass
        saw_cancel.append(ctx.cancelled.is_set())
        return "too late"

    async def quick(ctx: TaskContext) -> str:
        return "ok"

    worker = running(
        handlers(spin=spin, quick=quick), SETTINGS.with_(cancel_grace_seconds=0.3, concurrency=2)
    )
    now = await db_now(pool)
    task_id = await submit(pool, "spin", now, policy=TaskPolicy(timeout_seconds=0.5))
    started = time.monotonic()
    row = await wait_status(pool, task_id, TaskStatus.FAILED, within=10)
    assert time.monotonic() - started < 5
    assert row["error_reason"] == "timeout"
    assert "abandoned" in row["last_error"]
    assert worker.executor.abandoned == 1
    # The worker goes on: its slot is free again while the thread still spins.
    other = await submit(pool, "quick", await db_now(pool))
    await wait_status(pool, other, TaskStatus.DONE)
    stop_spinning.set()
    await until(lambda: saw_cancel == [True])
    # What the abandoned thread returned was thrown away.
    row = await queries.get(pool, task_id)
    assert row is not None
    assert (row["status"], row["result"]) == ("failed", None)


async def test_a_lost_lease_cancels_the_attempt_and_drops_its_result(pool, running) -> None:
    entered = asyncio.Event()
    cancelled = asyncio.Event()

    async def slow(ctx: TaskContext) -> str:
        entered.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    worker = running(handlers(slow=slow), SETTINGS.with_(lease_seconds=0.6))
    task_id = await submit(pool, "slow", await db_now(pool))
    await asyncio.wait_for(entered.wait(), 10)
    # As if the worker had been paused past its lease: the rescuer (here, the test) resolves it.
    await pool.execute("UPDATE tasks SET lease_expires_at = now() - interval '1 s'")
    [rescued] = await queries.rescue_expired(pool, 10)
    assert (rescued["id"], rescued["status"]) == (task_id, "failed")
    await asyncio.wait_for(cancelled.wait(), 5)  # the next heartbeat noticed
    await until(lambda: worker.lost == 1 and not worker.running)
    row = await queries.get(pool, task_id)
    assert row is not None
    assert (row["status"], row["error_reason"], row["result"]) == ("failed", "lost", None)


async def test_heartbeats_keep_a_long_attempt_alive_past_its_lease(pool, running) -> None:
    release = asyncio.Event()

    async def long(ctx: TaskContext) -> str:
        await release.wait()
        return "finished"

    worker = running(handlers(long=long), SETTINGS.with_(lease_seconds=0.6))
    task_id = await submit(pool, "long", await db_now(pool))
    await until(lambda: len(worker.running) == 1)
    started = await db_now(pool)
    # Five leases long, with rescuers free to run: the lease is renewed every 0.2 s.
    while (await db_now(pool) - started).total_seconds() < 3:
        assert await queries.rescue_expired(pool, 10) == []
        await asyncio.sleep(0.1)
    release.set()
    row = await wait_status(pool, task_id, TaskStatus.DONE)
    assert (row["attempts"], row["result"]) == (1, '"finished"')


async def test_the_worker_rescues_other_workers_expired_leases(pool, running) -> None:
    async def noop(ctx: TaskContext) -> None:
        return None

    dead = await submit(pool, "gone", await db_now(pool))
    await queries.claim_due(pool, 1, "dead-worker", 0.1, ["gone"])
    running(handlers(noop=noop), SETTINGS.with_(rescue_interval_seconds=0.2))
    row = await wait_status(pool, dead, TaskStatus.FAILED)
    assert row["error_reason"] == "lost"
    assert "dead-worker" in row["last_error"]


async def abandoned_claim(pool, worker, claim: str, when) -> object:
    """A task recorded as claimed by `claim`, one of the worker's claims whose answer it never
    got (a connection cut, or its deadline passed), as if that claim had committed."""
    orphan = await submit(pool, "noop", when)
    await pool.execute(
        """UPDATE tasks SET status = 'started_executing', attempts = 1, started_at = now(),
           worker_id = $1, lease_expires_at = now() + interval '1 hour' WHERE id = $2""",
        claim,
        orphan,
    )
    return orphan


async def test_a_broken_claim_is_handed_back_before_the_next(pool, dsn, running) -> None:
    async def noop(ctx: TaskContext) -> None:
        return None

    worker = running(handlers(noop=noop))
    await until(lambda: worker.idle_sleeps >= 1)
    claim = f"{worker.id}#broken"
    orphan = await abandoned_claim(pool, worker, claim, await db_now(pool) + timedelta(hours=1))
    worker.abandoned.add(claim)
    worker._hand_back_due = True  # what a failed claim sets
    await pool.execute("UPDATE tasks SET execution_time = now() WHERE id = $1", orphan)
    await queries.notify_due(pool, 0)
    row = await wait_status(pool, orphan, TaskStatus.DONE)
    assert row["attempts"] == 1  # handed back uncounted, then run once
    assert worker.handed_back == 1


async def test_a_claim_that_lands_after_it_was_given_up_is_handed_back(pool, running) -> None:
    """A claim past its deadline may commit later, when its statement, held on a frozen path,
    reaches the server after the worker has handed back what the claim had recorded (nothing
    yet). The heartbeat keeps handing the claim back: the late rows return to submitted, uncounted,
    and run once; rows of the claims it runs are never touched."""
    started = asyncio.Event()
    release = asyncio.Event()

    async def noop(ctx: TaskContext) -> None:
        started.set()
        await release.wait()

    worker = running(handlers(noop=noop), SETTINGS.with_(lease_seconds=0.6))  # a beat each 0.2 s
    running_one = await submit(pool, "noop", await db_now(pool))
    await asyncio.wait_for(started.wait(), 10)
    claim = f"{worker.id}#late"
    worker.abandoned.add(claim)
    passes = worker.abandoned.passes
    await until(lambda: worker.abandoned.passes >= passes + 2)  # handed back: nothing yet
    assert worker.handed_back == 0
    late = await abandoned_claim(pool, worker, claim, await db_now(pool))  # it lands now
    await until(lambda: worker.handed_back == 1)
    release.set()
    row = await wait_status(pool, late, TaskStatus.DONE)
    assert row["attempts"] == 1
    row = await wait_status(pool, running_one, TaskStatus.DONE)
    assert row["attempts"] == 1


async def test_an_async_handler_that_swallows_its_timeout_has_its_result_discarded(
    pool, running
) -> None:
    async def stubborn(ctx: TaskContext) -> str:
        with contextlib.suppress(asyncio.CancelledError):  # carries on, as careless ones do
            await asyncio.sleep(3600)
        return "late"

    running(handlers(stubborn=stubborn))
    policy = TaskPolicy(timeout_seconds=0.3)
    task_id = await submit(pool, "stubborn", await db_now(pool), policy=policy)
    row = await wait_status(pool, task_id, TaskStatus.FAILED, within=10)
    assert (row["error_reason"], row["result"]) == ("timeout", None)
    assert row["last_error"] == "timed out after 0.3s and ignored cancellation: result discarded"
