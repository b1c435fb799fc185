"""DELETE racing 10 worker processes over 500 tasks falling due: a 200 means it never ran.

The race is made by construction, not by timing. The tasks fall due one by one, STEP apart, and
the deleter is paced by what it reads from the database: each round it DELETEs every task the
workers have claimed so far and every task falling due within the next two DELETE latencies, so
its requests are in flight exactly while those tasks fall due and the workers claim them, however
fast or slow the machine. Both answers are certain whatever the pace: the first round waits until a
claim is seen (its DELETE must be 409), and ten tasks due in an hour are deleted among the rest
(never due, so 200, unless a task could start early).
"""

from __future__ import annotations

import asyncio
import random
import time
from uuid import UUID

import asyncpg
import httpx
import pytest

from shared import queries
from tests.e2e.fleet import CREATE_EXECUTIONS, Fleet, fetchval, wait_until

pytestmark = pytest.mark.e2e
COUNT = 500
# Seconds between two tasks' due times: 5 s of tasks falling due, at a pace (100/s) the API
# answers DELETEs well above on a busy 2-core machine, so the deleter keeps up with the claims.
STEP = 0.01
LEAD = 1.0  # seconds before the first falls due
NEVER_DUE = 10  # tasks due in an hour: their DELETE is a 200 by construction
SENDERS = 32  # connections to the API
PACE = 0.01  # seconds between two looks at what to delete


async def insert_falling_due(conn: asyncpg.Connection) -> tuple[list[UUID], list[UUID]]:
    """COUNT tasks due STEP apart from LEAD s on (in due order), and NEVER_DUE due in an hour."""
    await conn.execute(CREATE_EXECUTIONS)
    insert = """
        WITH ins AS (
            INSERT INTO tasks (id, task_type, execution_time)
            SELECT gen_random_uuid(), 'record',
                now() + make_interval(secs => $1::float8 + g * $2::float8)
            FROM generate_series(0, $3 - 1) AS g
            RETURNING id, execution_time
        ) SELECT array_agg(id ORDER BY execution_time) FROM ins"""
    falling: list[UUID] = await conn.fetchval(insert, LEAD, STEP, COUNT)
    never: list[UUID] = await conn.fetchval(insert, 3600.0, 0.0, NEVER_DUE)
    await queries.notify_due(conn, LEAD)  # as the API would
    return falling, never


class Deleter:
    """DELETEs, paced by the workers' claims and the tasks' due times as read from the database.

    Every PACE s it sends, without waiting for earlier answers, a DELETE for each task not yet
    sent that is claimed or falls due within `ahead` s: twice the DELETE's recent latency, so that
    the requests land around the due times, before some claims and after others.
    """

    def __init__(self, url: str, conn: asyncpg.Connection) -> None:
        self.url = url
        self.conn = conn
        self.answers: dict[UUID, httpx.Response] = {}
        self.never: list[UUID] = []
        self.rounds = 0
        self.latency = 0.01  # seconds, a moving average of the DELETE's round trip
        self.due_when_sent = 0  # DELETEs sent for a task already due and not yet seen claimed

    async def targets(self, todo: list[UUID]) -> tuple[list[UUID], int]:
        """The tasks of `todo` claimed by now or due within 2 latencies; how many are due."""
        rows = await self.conn.fetch(
            """SELECT id, status <> 'submitted' AS claimed,
                      execution_time <= clock_timestamp() AS due
               FROM tasks
               WHERE id = ANY($1::uuid[])
                 AND (status <> 'submitted'
                      OR execution_time <= clock_timestamp() + make_interval(secs => $2))""",
            todo,
            min(2 * self.latency, 0.5),
        )
        return [r["id"] for r in rows], sum(r["due"] and not r["claimed"] for r in rows)

    async def run(self, falling: list[UUID], never: list[UUID]) -> None:
        async with httpx.AsyncClient(
            base_url=self.url, timeout=60, limits=httpx.Limits(max_connections=SENDERS)
        ) as client:
            # Connections opened (and the API's pool) before the race starts.
            await asyncio.gather(*(client.get("/ready") for _ in range(SENDERS)))
            claimed = "SELECT count(*) FROM tasks WHERE status <> 'submitted'"
            async with asyncio.timeout(60):
                while not await self.conn.fetchval(claimed):  # noqa: ASYNC110 - the DB's state
                    await asyncio.sleep(0.005)

            async def delete(task_id: UUID) -> None:
                t0 = time.monotonic()
                self.answers[task_id] = await client.delete(f"/task/{task_id}")
                self.latency = 0.8 * self.latency + 0.2 * (time.monotonic() - t0)

            self.never = never
            todo, spare = list(falling), list(never)
            sending: set[asyncio.Task[None]] = set()
            while todo or spare:
                batch, due = await self.targets(todo) if todo else ([], 0)
                if spare:  # the never-due tasks go one to a round, among the falling ones
                    batch.append(spare.pop())
                if batch:
                    self.rounds += 1
                    self.due_when_sent += due
                    sent = set(batch)
                    todo = [task_id for task_id in todo if task_id not in sent]
                    random.shuffle(batch)
                    sending |= {asyncio.create_task(delete(task_id)) for task_id in batch}
                await asyncio.sleep(PACE)
            await asyncio.gather(*sending)


async def race(url: str, dsn: str) -> Deleter:
    conn = await asyncpg.connect(dsn)
    try:
        falling, never = await insert_falling_due(conn)
        deleter = Deleter(url, conn)
        await deleter.run(falling, never)
        return deleter
    finally:
        await conn.close()


def test_a_deleted_task_never_runs_and_a_running_one_is_never_deleted(
    fleet: Fleet, dsn: str
) -> None:
    url = fleet.api()
    workers = fleet.workers(10)
    fleet.wait_listening(10)
    started = time.monotonic()
    deleter = asyncio.run(race(url, dsn))

    def settled() -> bool:
        assert fleet.alive(workers)
        left = "SELECT count(*) FROM tasks WHERE status NOT IN ('done', 'deleted')"
        return fetchval(dsn, left) == 0

    wait_until(settled, 60, "every task to be done or deleted")

    answers = deleter.answers
    assert len(answers) == COUNT + NEVER_DUE, "every task got its DELETE"
    codes = {task_id: r.status_code for task_id, r in answers.items()}
    assert set(codes.values()) <= {200, 409}, {c for c in codes.values() if c not in (200, 409)}
    deleted = {task_id for task_id, code in codes.items() if code == 200}
    refused = {task_id for task_id, code in codes.items() if code == 409}
    ran = set(fetchval(dsn, "SELECT coalesce(array_agg(task_id), '{}') FROM executions"))  # type: ignore[arg-type]

    assert not deleted & ran, "a task answered 200 to DELETE and ran anyway"
    assert ran == refused, "every execution had a 409, and every 409 was a task that ran"
    assert fetchval(dsn, "SELECT count(*) FROM executions") == len(ran), "a task ran twice"
    for task_id in refused:
        assert answers[task_id].json()["status"] in ("started_executing", "done")
    assert fetchval(dsn, "SELECT count(*) FROM tasks WHERE status = 'deleted'") == len(deleted)
    # Both sides by construction: the first round follows a claim, and the never-due tasks are
    # never claimed. The falling tasks themselves are split between the two by the race.
    assert deleted
    assert refused
    print(
        f"\n{len(deleted - set(deleter.never))} falling tasks deleted, {len(refused)} refused, "
        f"in {deleter.rounds} rounds over {time.monotonic() - started:.1f} s; "
        f"{deleter.due_when_sent} DELETEs sent for tasks due and not yet claimed"
    )
