"""The scheduler's passes in SQL, with the clock pinned: each occurrence one task however many
schedulers race, catch-up after downtime, overlap skip, the lease's fence, and DST through
materialization (the rules themselves: tests/unit/test_schedule.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from shared import queries
from shared.settings import Settings
from worker.scheduler import Scheduler

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
POLICY = Settings().policy()
T0_ID = UUID(int=7)


async def add_schedule(pool: asyncpg.Pool, name: str, next_at: datetime, **fields: Any) -> None:
    row: dict[str, Any] = {
        "name": name,
        "task_type": "noop",
        "cron": None,
        "interval_seconds": None,
        "timezone": "UTC",
        "anchor": T0,
        "next_at": next_at,
        **{f: getattr(POLICY, f) for f in POLICY.__struct_fields__},
        **fields,
    }
    if row["cron"] is None and row["interval_seconds"] is None:
        row["cron"] = "* * * * * *"
    row["backoff"] = str(row["backoff"])
    columns = ", ".join(row)
    marks = ", ".join(f"${i}" for i in range(1, len(row) + 1))
    await pool.execute(f"INSERT INTO schedules ({columns}) VALUES ({marks})", *row.values())


async def occurrences(pool: asyncpg.Pool, name: str) -> list[datetime]:
    rows = await pool.fetch(
        "SELECT occurrence FROM tasks WHERE schedule = $1 ORDER BY occurrence", name
    )
    return [r["occurrence"] for r in rows]


async def next_at(pool: asyncpg.Pool, name: str) -> datetime | None:
    found: datetime | None = await pool.fetchval(
        "SELECT next_at FROM schedules WHERE name = $1", name
    )
    return found


def seconds(start: datetime, n: int) -> list[datetime]:
    return [start + timedelta(seconds=i) for i in range(n)]


async def test_each_occurrence_within_the_horizon_is_one_task_whoever_races(pool) -> None:
    await add_schedule(pool, "tick", next_at=T0)
    schedulers = [Scheduler(pool, horizon=10) for _ in range(5)]
    made = await asyncio.gather(*(s.run_once(now=T0) for s in schedulers))
    assert sum(made) == 11  # T0 … T0 + 10 s, each once
    assert await occurrences(pool, "tick") == seconds(T0, 11)
    assert await next_at(pool, "tick") == T0 + timedelta(seconds=11)
    # The tasks are due at their occurrence, with the schedule's payload and policy.
    row = await pool.fetchrow("SELECT * FROM tasks WHERE schedule = 'tick' ORDER BY occurrence")
    assert (row["execution_time"], row["payload"], row["max_attempts"]) == (T0, "{}", 1)
    # A second pass at the same instant has nothing to do; the next, a second later, one more.
    assert await Scheduler(pool, horizon=10).run_once(now=T0) == 0
    assert await Scheduler(pool, horizon=10).run_once(now=T0 + timedelta(seconds=1)) == 1


async def test_catch_up_after_downtime(pool) -> None:
    behind = T0 - timedelta(hours=1)
    for name, policy in [("latest", "latest"), ("all", "all"), ("none", "none")]:
        await add_schedule(pool, name, next_at=behind, cron="0 * * * * *", catch_up=policy)
    await add_schedule(
        pool, "capped", next_at=behind, cron="0 * * * * *", catch_up="all", catch_up_limit=5
    )
    await Scheduler(pool, horizon=90).run_once(now=T0 + timedelta(seconds=30))
    upcoming = [T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)]  # within 90 s of 12:00:30
    assert await occurrences(pool, "latest") == [T0, *upcoming]  # the most recent missed: 12:00
    assert (
        await occurrences(pool, "all")
        == [behind + timedelta(minutes=i) for i in range(61)] + upcoming
    )
    assert await occurrences(pool, "none") == upcoming
    assert (
        await occurrences(pool, "capped")
        == [T0 - timedelta(minutes=i) for i in range(4, -1, -1)] + upcoming
    )
    assert await next_at(pool, "none") == T0 + timedelta(minutes=3)


async def test_overlap_skip_makes_nothing_while_the_previous_occurrence_is_unfinished(pool) -> None:
    await add_schedule(pool, "slow", next_at=T0, overlap="skip")
    scheduler = Scheduler(pool, horizon=10)
    assert await scheduler.run_once(now=T0) == 1  # only what is due, never ahead
    assert await scheduler.run_once(now=T0 + timedelta(seconds=3)) == 0  # T0's still submitted
    assert await occurrences(pool, "slow") == [T0]
    assert await next_at(pool, "slow") == T0 + timedelta(seconds=4)  # T0+1 … T0+3 skipped
    await pool.execute(
        "UPDATE tasks SET status = 'deleted', finished_at = now() WHERE schedule = 'slow'"
    )
    assert await scheduler.run_once(now=T0 + timedelta(seconds=5)) == 1
    assert await occurrences(pool, "slow") == [T0, T0 + timedelta(seconds=5)]


async def test_a_scheduler_whose_lease_ran_out_writes_nothing(pool) -> None:
    await add_schedule(pool, "leased", next_at=T0)
    [row] = await queries.take_due_schedules(pool, 10, 10, 30, now=T0)
    # Another scheduler cannot take it while the lease holds…
    assert await queries.take_due_schedules(pool, 10, 10, 30, now=T0 + timedelta(seconds=29)) == []
    # …and once it ran out and another took it, the first one's write is fenced off.
    [again] = await queries.take_due_schedules(pool, 10, 10, 30, now=T0 + timedelta(seconds=31))
    stale = await queries.materialize(pool, "leased", row["lease_until"], [T0], [T0_ID], None)
    assert (stale.made, stale.moved) == (0, False)
    assert await occurrences(pool, "leased") == []
    assert again["lease_until"] != row["lease_until"]


async def test_dst_through_materialization(pool) -> None:
    # 02:30 Berlin does not exist on 28 March 2027: the fixed-hour schedule runs once, at the end
    # of the gap (01:00 UTC); the step-hour one runs every 15 real minutes, none in the gap.
    gap = datetime(2027, 3, 28, 1, tzinfo=UTC)
    await add_schedule(pool, "fixed", next_at=gap, cron="0 30 2 * * *", timezone="Europe/Berlin")
    await add_schedule(
        pool,
        "step",
        next_at=gap - timedelta(minutes=15),
        cron="0 */15 * * * *",
        timezone="Europe/Berlin",
    )
    await Scheduler(pool, horizon=1800).run_once(now=gap - timedelta(minutes=15))
    assert await occurrences(pool, "fixed") == [gap]
    assert await next_at(pool, "fixed") == datetime(2027, 3, 29, 0, 30, tzinfo=UTC)
    assert await occurrences(pool, "step") == [gap + timedelta(minutes=m) for m in (-15, 0, 15)]
