"""Drain rate: due noop tasks drained by `duetime worker` processes, timed by the table itself."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from shared.devserver import WORKER_ARGS

from .database import connected, done_window, poll_count, reload_due_noop
from .processes import Processes, process_env

POLL_SECONDS = 0.2

# The bench's own tasks are the ones of no schedule: a schedule's occurrences (the schedules
# section runs the drain beside some) are run by the same workers but not counted.
OWN = "schedule IS NULL"
FINISHED = f"SELECT count(*) FROM tasks WHERE status IN ('done', 'failed') AND {OWN}"
# Claims per worker (each claim records `worker#n`: the worker is what comes before the #): now()
# is the claim transaction's start, so each claim has its own started_at.
# The statistics are the loaded table's (all submitted): a join here would be planned as if no row
# were done, and be quadratic, so the start of the run is a scalar subquery (computed once).
SHARES = f"""
SELECT split_part(worker_id, '#', 1) AS worker_id, count(*) AS tasks,
       count(DISTINCT started_at) AS claims,
       extract(epoch FROM min(started_at)
           - (SELECT min(started_at) FROM tasks WHERE {OWN}))::float8 AS first_claim_s,
       extract(epoch FROM max(finished_at)
           - (SELECT min(started_at) FROM tasks WHERE {OWN}))::float8 AS last_finish_s
FROM tasks
WHERE status = 'done' AND {OWN}
GROUP BY 1
ORDER BY first_claim_s
"""


@dataclass(frozen=True)
class WorkerShare:
    worker_id: str
    tasks: int
    claims: int  # claim statements that returned rows
    first_claim_s: float  # after the run's first claim
    last_finish_s: float


@dataclass(frozen=True)
class DrainRun:
    tasks: int
    seconds: float  # max(finished_at) - min(started_at)
    tasks_per_s: float
    wall_seconds: float  # from starting the workers until the last task was seen finished
    workers: list[WorkerShare]

    @classmethod
    def of(cls, count: int, seconds: float, wall: float, shares: list[asyncpg.Record]) -> DrainRun:
        """The run of `count` tasks over `seconds`, with each worker's row of SHARES."""
        return cls(
            tasks=count,
            seconds=seconds,
            tasks_per_s=count / seconds,
            wall_seconds=wall,
            workers=[
                WorkerShare(
                    r["worker_id"], r["tasks"], r["claims"], r["first_claim_s"], r["last_finish_s"]
                )
                for r in shares
            ],
        )


def drain_once(
    dsn: str,
    count: int,
    workers: int,
    deadline: float,
    *,
    before_workers: Callable[[], None] | None = None,
) -> DrainRun:
    """Load `count` due tasks, start the workers, wait until all are finished, stop the workers.

    `deadline` is a time.monotonic() value: past it, the wait gives up with TimeoutError.
    `before_workers` runs after the load, before the first worker starts (the schedules section
    sets up its schedules there).
    """
    asyncio.run(reload_due_noop(dsn, count))
    if before_workers is not None:
        before_workers()
    procs = Processes(process_env(dsn))
    started = time.monotonic()
    try:
        for _ in range(workers):
            procs.start(WORKER_ARGS)
        asyncio.run(_wait_finished(dsn, count, deadline, procs.check_alive))
        wall = time.monotonic() - started
    finally:
        procs.stop()
    return asyncio.run(_measure(dsn, count, wall))


async def _wait_finished(dsn: str, count: int, deadline: float, check: Callable[[], None]) -> None:
    async with connected(dsn) as conn:
        await poll_count(
            conn,
            FINISHED,
            until=lambda finished: finished >= count,
            what=lambda finished: f"only {finished:,} of {count:,} tasks finished in time",
            deadline=deadline,
            check=check,
            every=POLL_SECONDS,
        )


async def _measure(dsn: str, count: int, wall: float) -> DrainRun:
    async with connected(dsn) as conn:
        done, seconds = await done_window(conn, rows=OWN)
        shares = await conn.fetch(SHARES)
    if done != count:
        raise RuntimeError(f"{done:,} of {count:,} tasks are done (the rest failed)")
    return DrainRun.of(count, seconds, wall, shares)
