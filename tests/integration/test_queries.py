"""Every query and every transition, against a real PostgreSQL, with the clock pinned."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from shared import policy, queries
from shared.ids import new_task_id
from shared.policy import Backoff, TaskPolicy
from shared.registry import TASK_TYPE_PATTERN
from shared.task import TaskStatus
from tests.factories import new_task

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
TYPES = ["foo", "bar", "baz", "noop"]


async def add(pool: asyncpg.Pool, *times: datetime, task_type: str = "noop"):
    tasks = [new_task(task_type, t, '{"n": 1}') for t in times]
    await queries.insert_many(pool, tasks)
    return [t.id for t in tasks]


async def status_of(pool: asyncpg.Pool, task_id) -> TaskStatus:
    row = await queries.get(pool, task_id)
    assert row is not None
    return TaskStatus(row["status"])


async def test_insert_then_get_round_trips(pool: asyncpg.Pool) -> None:
    [task_id] = await add(pool, T0)
    row = await queries.get(pool, task_id)
    assert row is not None
    assert (row["status"], row["attempts"], row["execution_time"]) == ("submitted", 0, T0)
    assert row["payload"] == '{"n": 1}'


async def test_a_batch_sends_each_policy_once_and_each_task_gets_its_own(
    pool: asyncpg.Pool,
) -> None:
    kinds = [
        TaskPolicy(max_attempts=3, backoff=Backoff.LINEAR, timeout_seconds=9.0),
        TaskPolicy(max_attempts=7, retry_on_loss=True),
    ]
    tasks = [new_task("noop", T0, policy=kinds[i % 3 == 0]) for i in range(7)]
    await queries.insert_many(pool, tasks)
    for task in tasks:
        row = await queries.get(pool, task.id)
        assert row is not None
        stored = tuple(row[name] for name in policy.FIELDS)
        assert stored == task.policy.values
    assert {row["max_attempts"] for row in await pool.fetch("SELECT * FROM tasks")} == {3, 7}


async def test_a_task_naming_no_policy_fails_its_whole_batch(pool: asyncpg.Pool) -> None:
    ids = [new_task_id(), new_task_id()]
    with pytest.raises(asyncpg.NotNullViolationError):
        await pool.fetchval(
            queries.sql()["task_insert_many"],
            ids,
            ["noop", "noop"],
            [T0, T0],
            ["{}", "{}"],
            [1, 2],  # only one policy follows
            [1],
            ["fixed"],
            [1.0],
            [1.0],
            [False],
            [60.0],
            None,
            None,
        )
    assert await pool.fetchval("SELECT count(*) FROM tasks") == 0


async def test_claim_never_takes_a_task_before_it_is_due(pool: asyncpg.Pool) -> None:
    early, late = await add(pool, T0, T0 + timedelta(seconds=10))
    claim = await queries.claim_due(pool, 10, "w1", 30, TYPES, now=T0 + timedelta(seconds=5))
    assert [r["id"] for r in claim.rows] == [early]
    assert claim.next_due_in == pytest.approx(5.0)  # the worker sleeps until `late` is due
    assert await status_of(pool, late) is TaskStatus.SUBMITTED
    almost = await queries.claim_due(pool, 10, "w1", 30, TYPES, now=T0 + timedelta(seconds=9.999))
    assert almost.rows == []
    assert almost.next_due_in == pytest.approx(0.001)
    due = await queries.claim_due(pool, 10, "w1", 30, TYPES, now=T0 + timedelta(seconds=10))
    assert [r["id"] for r in due.rows] == [late]
    assert due.next_due_in is None  # nothing left at all


async def test_claim_takes_oldest_due_first_up_to_the_limit(pool: asyncpg.Pool) -> None:
    ids = await add(pool, *(T0 - timedelta(seconds=s) for s in range(5)))
    claimed = (await queries.claim_due(pool, 2, "w1", 30, TYPES, now=T0)).rows
    assert {r["id"] for r in claimed} == {ids[4], ids[3]}  # RETURNING has no order of its own
    row = await queries.get(pool, ids[4])
    assert row is not None
    assert row["status"] == "started_executing"
    assert row["attempts"] == 1
    assert row["worker_id"] == "w1"
    assert row["started_at"] == T0
    assert row["lease_expires_at"] == T0 + timedelta(seconds=30)


async def test_claim_only_takes_the_types_the_worker_runs(pool: asyncpg.Pool) -> None:
    [mine] = await add(pool, T0, task_type="noop")
    [other] = await add(pool, T0, task_type="custom")
    await add(pool, T0 + timedelta(seconds=2), task_type="custom")
    claim = await queries.claim_due(pool, 10, "w1", 30, ["noop"], now=T0)
    assert [r["id"] for r in claim.rows] == [mine]
    assert claim.next_due_in is None  # the custom task due at T0+2 is not its to run
    assert await status_of(pool, other) is TaskStatus.SUBMITTED
    assert (await queries.claim_due(pool, 10, "w2", 30, ["custom"], now=T0)).next_due_in == 2.0


async def test_two_concurrent_claims_never_share_a_row(pool: asyncpg.Pool) -> None:
    await add(pool, *([T0] * 50))
    async with pool.acquire() as a, pool.acquire() as b:
        tx = a.transaction()
        await tx.start()
        first = (await queries.claim_due(a, 30, "a", 30, TYPES, now=T0)).rows
        second = await queries.claim_due(b, 50, "b", 30, TYPES, now=T0)  # skips a's locked rows
        await tx.commit()
    assert len(first) == 30
    assert len(second.rows) == 20
    assert not {r["id"] for r in first} & {r["id"] for r in second.rows}
    # The rows a held are a's to run: b is not told to come back for them.
    assert second.next_due_in is None


async def test_an_empty_claim_says_when_the_next_task_is_due(pool: asyncpg.Pool) -> None:
    assert await queries.claim_due(pool, 5, "w1", 30, TYPES, now=T0) == queries.Claim([], None)
    await add(pool, T0 + timedelta(seconds=7), T0 + timedelta(seconds=3))
    assert await queries.claim_due(pool, 5, "w1", 30, TYPES, now=T0) == queries.Claim([], 3.0)


async def test_finish_is_fenced_by_attempt(pool: asyncpg.Pool) -> None:
    a, b = await add(pool, T0, T0)
    await queries.claim_due(pool, 10, "w1", 30, TYPES, now=T0)
    written = await queries.finish_many(
        pool,
        [queries.Finish(a, 1, "done", '{"ok": true}'), queries.Finish(b, 2, "done")],
    )
    assert written == {a: TaskStatus.DONE}  # b's attempt 2 does not exist: dropped
    row = await queries.get(pool, a)
    assert row is not None
    assert (row["status"], row["result"], row["lease_expires_at"]) == ("done", '{"ok": true}', None)
    assert row["finished_at"] is not None
    assert await status_of(pool, b) is TaskStatus.STARTED_EXECUTING
    # Finishing twice writes nothing the second time.
    assert await queries.finish_many(pool, [queries.Finish(a, 1, "fail", error="x")]) == {}
    assert await status_of(pool, a) is TaskStatus.DONE


async def test_finish_records_failure_text_and_reason(pool: asyncpg.Pool) -> None:
    [a] = await add(pool, T0)
    await queries.claim_due(pool, 1, "w1", 30, TYPES, now=T0)
    failure = queries.Finish(a, 1, "retry", error="ValueError: boom", reason="error")
    assert await queries.finish_many(pool, [failure]) == {a: TaskStatus.FAILED}  # 1 attempt only
    row = await queries.get(pool, a)
    assert row is not None
    assert (row["status"], row["last_error"], row["error_reason"]) == (
        "failed",
        "ValueError: boom",
        "error",
    )


async def test_finish_refuses_unknown_outcomes(pool: asyncpg.Pool) -> None:
    with pytest.raises(ValueError, match="ends as one of"):
        await queries.finish_many(pool, [queries.Finish(new_task_id(), 1, "deleted")])


async def test_delete_only_while_submitted(pool: asyncpg.Pool) -> None:
    waiting, running = await add(pool, T0 + timedelta(hours=1), T0)
    await queries.claim_due(pool, 10, "w1", 30, TYPES, now=T0)
    deleted = await queries.delete_submitted(pool, waiting)
    assert deleted is not None
    assert deleted["status"] == "deleted"
    assert deleted["finished_at"] is not None
    assert await queries.delete_submitted(pool, running) is None
    assert await status_of(pool, running) is TaskStatus.STARTED_EXECUTING
    assert await queries.delete_submitted(pool, waiting) is None  # already deleted
    # A deleted task is never claimed, however late it gets.
    assert (
        await queries.claim_due(pool, 10, "w1", 30, TYPES, now=T0 + timedelta(days=1))
    ).rows == []


async def test_delete_waits_for_a_racing_claim_and_then_refuses(pool: asyncpg.Pool) -> None:
    import asyncio

    [task_id] = await add(pool, T0)
    async with pool.acquire() as claimer:
        tx = claimer.transaction()
        await tx.start()
        assert len((await queries.claim_due(claimer, 1, "w1", 30, TYPES, now=T0)).rows) == 1
        delete = asyncio.create_task(queries.delete_submitted(pool, task_id))
        await asyncio.sleep(0.2)
        assert not delete.done()  # blocked on the claim's row lock
        await tx.commit()
    assert await delete is None
    assert await status_of(pool, task_id) is TaskStatus.STARTED_EXECUTING


async def test_list_pages_by_keyset_and_filters(pool: asyncpg.Pool) -> None:
    ids = await add(pool, *([T0] * 5))
    extra = await add(pool, T0, task_type="foo")
    first = await queries.list_page(pool, status=None, task_type="noop", after=None, limit=3)
    rest = await queries.list_page(
        pool, status=None, task_type="noop", after=first[-1]["id"], limit=3
    )
    assert [r["id"] for r in first + rest] == sorted(ids)
    await queries.delete_submitted(pool, ids[0])
    deleted = await queries.list_page(
        pool, status=TaskStatus.DELETED, task_type=None, after=None, limit=10
    )
    assert [r["id"] for r in deleted] == [ids[0]]
    foo = await queries.list_page(
        pool, status=TaskStatus.SUBMITTED, task_type="foo", after=None, limit=10
    )
    assert [r["id"] for r in foo] == extra


async def test_insert_reports_when_its_earliest_task_is_due(pool: asyncpg.Pool) -> None:
    now: datetime = await pool.fetchval("SELECT now()")
    times = [now + timedelta(hours=1), now + timedelta(seconds=90), now + timedelta(hours=2)]
    due_in = await queries.insert_many(pool, [new_task("noop", t) for t in times])
    assert 88 < due_in <= 90  # measured by the database's clock at insert
    overdue = await queries.insert_many(pool, [new_task("noop", now - timedelta(minutes=1))])
    assert overdue < -59


async def test_notify_due_carries_the_delay(pool: asyncpg.Pool, dsn: str) -> None:
    import asyncio

    got: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(dsn)
    await listener.add_listener("duetime_due", lambda *args: got.put_nowait(args[3]))
    try:
        await queries.notify_due(pool, 1.25)
        await queries.notify_due(pool, -3.0)  # overdue is "now"
        assert [await asyncio.wait_for(got.get(), 5) for _ in range(2)] == ["1.250000", "0.000000"]
    finally:
        await listener.close()


@pytest.mark.parametrize(
    ("task_type", "allowed"),
    [
        ("a" * 100, True),
        ("send.email:v2_x-y", True),
        ("a" * 101, False),
        ("", False),
        ("bad type", False),
        ("émoji", False),
        ("line\nbreak", False),
    ],
)
async def test_the_table_takes_the_task_types_the_api_takes(
    pool: asyncpg.Pool, task_type: str, allowed: bool
) -> None:
    assert bool(TASK_TYPE_PATTERN.fullmatch(task_type)) is allowed  # the API's rule
    insert = queries.insert_many(pool, [new_task(task_type, T0)])
    if allowed:
        await insert
    else:
        with pytest.raises(asyncpg.CheckViolationError):
            await insert


async def test_state_machine_constraints_reject_impossible_rows(pool: asyncpg.Pool) -> None:
    [task_id] = await add(pool, T0)
    with pytest.raises(asyncpg.CheckViolationError):
        await pool.execute("UPDATE tasks SET status = 'done' WHERE id = $1", task_id)
    with pytest.raises(asyncpg.CheckViolationError):
        await pool.execute("UPDATE tasks SET status = 'started_executing' WHERE id = $1", task_id)
    with pytest.raises(asyncpg.CheckViolationError):
        await queries.insert_many(pool, [new_task("bad type!", T0)])
    with pytest.raises(asyncpg.CheckViolationError):
        await queries.insert_many(pool, [new_task("noop", T0, "[1]")])
