"""The failure transitions in SQL, with the clock pinned: retry, backoff, heartbeat, rescue,
hand-back and redrive. Each is one guarded UPDATE; these tests check the guard as well."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from shared import queries
from shared.policy import Backoff, TaskPolicy
from shared.task import TaskStatus
from tests.factories import new_task

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
TYPES = ["noop"]


async def add(pool: asyncpg.Pool, n: int = 1, **policy: object):
    tasks = [new_task("noop", T0, policy=TaskPolicy(**policy)) for _ in range(n)]  # type: ignore[arg-type]
    await queries.insert_many(pool, tasks)
    return [t.id for t in tasks]


async def row(pool: asyncpg.Pool, task_id) -> asyncpg.Record:
    found = await queries.get(pool, task_id)
    assert found is not None
    return found


async def test_a_retry_with_attempts_left_goes_back_due_after_its_delay(pool) -> None:
    [a] = await add(pool, max_attempts=3)
    await queries.claim_due(pool, 1, "w1", 30, TYPES, now=T0)
    retry = queries.Finish(a, 1, "retry", error="Retry: later", reason="retry", retry_in=60)
    before: datetime = await pool.fetchval("SELECT now()")
    assert await queries.finish_many(pool, [retry]) == {a: TaskStatus.SUBMITTED}
    r = await row(pool, a)
    assert (r["status"], r["attempts"], r["last_error"], r["error_reason"]) == (
        "submitted",
        1,
        "Retry: later",
        "retry",
    )
    after: datetime = await pool.fetchval("SELECT now()")
    assert r["finished_at"] is None
    assert r["lease_expires_at"] is None
    assert before <= r["execution_time"] - timedelta(seconds=60) <= after
    # The next attempt is 2, and its failure with attempts left keeps going; the third ends it.
    for attempt, expected in ((2, TaskStatus.SUBMITTED), (3, TaskStatus.FAILED)):
        await pool.execute("UPDATE tasks SET execution_time = $1 WHERE id = $2", T0, a)
        [claimed] = (await queries.claim_due(pool, 1, "w1", 30, TYPES, now=T0)).rows
        assert claimed["attempts"] == attempt
        failure = queries.Finish(a, attempt, "retry", error=f"boom {attempt}", reason="error")
        assert await queries.finish_many(pool, [failure]) == {a: expected}
    r = await row(pool, a)
    assert (r["status"], r["attempts"], r["last_error"], r["error_reason"]) == (
        "failed",
        3,
        "boom 3",
        "error",
    )


async def test_fail_ends_the_task_whatever_attempts_are_left(pool) -> None:
    [a] = await add(pool, max_attempts=5)
    await queries.claim_due(pool, 1, "w1", 30, TYPES, now=T0)
    fail = queries.Finish(a, 1, "fail", error="Fail: no such customer", reason="fail")
    assert await queries.finish_many(pool, [fail]) == {a: TaskStatus.FAILED}


@pytest.mark.parametrize(
    ("kind", "attempt", "low", "high"),
    [
        (Backoff.FIXED, 5, 10.0, 10.0),
        (Backoff.LINEAR, 3, 0.0, 30.0),
        (Backoff.EXPONENTIAL, 1, 0.0, 10.0),
        (Backoff.EXPONENTIAL, 3, 0.0, 40.0),
        (Backoff.EXPONENTIAL, 50, 0.0, 100.0),  # capped
    ],
)
async def test_backoff_stays_within_its_bounds(pool, kind, attempt, low, high) -> None:
    draws = await pool.fetch(
        "SELECT task_backoff($1, 10, 100, $2) AS s FROM generate_series(1, 300)", kind, attempt
    )
    values = [d["s"] for d in draws]
    assert all(low <= v <= high for v in values)
    if low < high:  # full jitter: spread over the range, not stuck at one end
        assert min(values) < low + (high - low) * 0.2
        assert max(values) > high - (high - low) * 0.2


async def test_heartbeat_renews_only_what_this_worker_still_holds(pool) -> None:
    a, b, c = await add(pool, 3)
    await queries.claim_due(pool, 2, "w1", 30, TYPES, now=T0)  # a, b by w1
    await queries.claim_due(pool, 1, "w2", 30, TYPES, now=T0)  # c by w2
    before: datetime = await pool.fetchval("SELECT now()")
    kept = await queries.heartbeat_many(pool, [a, b, c], [1, 2, 1], "w1", 120)
    after: datetime = await pool.fetchval("SELECT now()")
    assert kept == {a}  # b: wrong attempt; c: another worker's
    assert before <= (await row(pool, a))["lease_expires_at"] - timedelta(seconds=120) <= after
    assert (await row(pool, b))["lease_expires_at"] == T0 + timedelta(seconds=30)


async def test_rescue_fails_lost_attempts_by_default_and_requeues_retry_on_loss(pool) -> None:
    [lost] = await add(pool)
    [again] = await add(pool, retry_on_loss=True, max_attempts=2, backoff="fixed")
    [alive] = await add(pool)
    await queries.claim_due(pool, 3, "w1", 10, TYPES, now=T0)
    await pool.execute(
        "UPDATE tasks SET lease_expires_at = $1 WHERE id = $2", T0 + timedelta(hours=1), alive
    )
    assert await queries.rescue_expired(pool, 100, now=T0 + timedelta(seconds=9)) == []
    rescued = await queries.rescue_expired(pool, 100, now=T0 + timedelta(seconds=11))
    assert {(r["id"], r["status"], r["attempts"], r["worker_id"]) for r in rescued} == {
        (lost, "failed", 1, "w1"),
        (again, "submitted", 1, "w1"),
    }
    r = await row(pool, lost)
    assert (r["error_reason"], r["finished_at"]) == ("lost", T0 + timedelta(seconds=11))
    assert "w1" in r["last_error"]
    r = await row(pool, again)
    assert r["execution_time"] == T0 + timedelta(seconds=12)  # fixed backoff of 1 s
    assert await status(pool, alive) == "started_executing"
    # Attempt 2 of `again` is lost too: no attempts left, so it fails.
    await queries.claim_due(pool, 1, "w2", 10, TYPES, now=T0 + timedelta(seconds=12))
    rescued = await queries.rescue_expired(pool, 100, now=T0 + timedelta(seconds=30))
    assert [(r["id"], r["status"], r["attempts"]) for r in rescued] == [(again, "failed", 2)]


async def status(pool: asyncpg.Pool, task_id) -> str:
    return str((await row(pool, task_id))["status"])


async def test_a_completion_after_the_rescue_is_dropped(pool) -> None:
    [a] = await add(
        pool, retry_on_loss=True, max_attempts=2, backoff="fixed", backoff_base_seconds=0
    )
    await queries.claim_due(pool, 1, "w1", 10, TYPES, now=T0)
    await queries.rescue_expired(pool, 100, now=T0 + timedelta(seconds=11))
    # The paused worker comes back: its completion and its heartbeat both find nothing.
    assert await queries.finish_many(pool, [queries.Finish(a, 1, "done", '"stale"')]) == {}
    assert await queries.heartbeat_many(pool, [a], [1], "w1", 30) == set()
    [claimed] = (
        await queries.claim_due(pool, 1, "w2", 10, TYPES, now=T0 + timedelta(seconds=12))
    ).rows
    assert claimed["attempts"] == 2
    assert await queries.finish_many(pool, [queries.Finish(a, 1, "done", '"stale"')]) == {}
    assert await queries.finish_many(pool, [queries.Finish(a, 2, "done", '"fresh"')]) == {
        a: TaskStatus.DONE
    }
    assert (await row(pool, a))["result"] == '"fresh"'


async def test_hand_back_returns_unstarted_claims_without_counting_them(pool) -> None:
    kept, orphan, others = await add(pool, 3)
    await queries.claim_due(pool, 2, "w1", 30, TYPES, now=T0)
    await queries.claim_due(pool, 1, "w2", 30, TYPES, now=T0)
    claimed_by_w1 = {kept, orphan}
    assert await queries.hand_back(pool, "w1", [kept]) == [orphan]
    r = await row(pool, orphan)
    assert (r["status"], r["attempts"], r["started_at"], r["lease_expires_at"]) == (
        "submitted",
        0,
        None,
        None,
    )
    assert await status(pool, kept) == "started_executing"
    assert await status(pool, others) == "started_executing"
    assert claimed_by_w1 == {kept, orphan}
    # It runs again as attempt 1.
    [again] = (await queries.claim_due(pool, 1, "w3", 30, TYPES, now=T0)).rows
    assert (again["id"], again["attempts"]) == (orphan, 1)


async def test_a_workers_claims_are_its_own_and_no_other_workers(pool) -> None:
    """Each claim records `worker#n`: the heartbeat and the exit hand-back of w1 cover its claims'
    rows, never those of w10 (whose id w1 is a prefix of) or of w2."""
    mine, also_mine, w10s, w2s = await add(pool, 4)
    await queries.claim_due(pool, 1, "w1#1", 30, TYPES, now=T0)
    await queries.claim_due(pool, 1, "w1#2", 30, TYPES, now=T0)
    await queries.claim_due(pool, 1, "w10#1", 30, TYPES, now=T0)
    await queries.claim_due(pool, 1, "w2", 30, TYPES, now=T0)
    everything = [mine, also_mine, w10s, w2s]
    assert await queries.heartbeat_many(pool, everything, [1] * 4, "w1", 60) == {mine, also_mine}
    assert set(await queries.hand_back(pool, "w1", [mine])) == {also_mine}
    assert [await status(pool, t) for t in everything] == [
        "started_executing",
        "submitted",
        "started_executing",
        "started_executing",
    ]


async def test_hand_back_claims_returns_only_what_those_claims_recorded(pool) -> None:
    lost, kept, others = await add(pool, 3)
    await queries.claim_due(pool, 1, "w1#7", 30, TYPES, now=T0)  # the claim whose answer was lost
    await queries.claim_due(pool, 1, "w1#8", 30, TYPES, now=T0)
    await queries.claim_due(pool, 1, "w2#7", 30, TYPES, now=T0)
    assert await queries.hand_back_claims(pool, ["w1#7", "w1#9"]) == [lost]
    r = await row(pool, lost)
    assert (r["status"], r["attempts"], r["started_at"]) == ("submitted", 0, None)
    assert await status(pool, kept) == await status(pool, others) == "started_executing"
    assert await queries.hand_back_claims(pool, ["w1#7"]) == []  # again: nothing left


async def test_redrive_puts_only_a_failed_task_back(pool) -> None:
    failed, done = await add(pool, 2)
    await queries.claim_due(pool, 2, "w1", 30, TYPES, now=T0)
    await queries.finish_many(
        pool,
        [
            queries.Finish(failed, 1, "fail", error="boom", reason="fail"),
            queries.Finish(done, 1, "done"),
        ],
    )
    assert await queries.retry_failed(pool, done) is None
    before: datetime = await pool.fetchval("SELECT now()")
    redriven = await queries.retry_failed(pool, failed)
    assert redriven is not None
    assert (redriven["status"], redriven["attempts"], redriven["last_error"]) == (
        "submitted",
        1,
        "boom",
    )
    assert before <= redriven["execution_time"] <= await pool.fetchval("SELECT now()")
    assert redriven["finished_at"] is None
    assert await queries.retry_failed(pool, failed) is None  # already submitted


async def test_one_task_per_idempotency_key(pool) -> None:
    first = new_task("noop", T0, idempotency_key="order-42")
    assert await queries.insert_keyed(pool, first) is not None
    again = new_task("noop", T0, idempotency_key="order-42")
    assert await queries.insert_keyed(pool, again) is None
    found = await queries.get_by_key(pool, "order-42")
    assert found is not None
    assert found["id"] == first.id
    assert await pool.fetchval("SELECT count(*) FROM tasks") == 1
