"""Schedules: the drain beside 1,000 active schedules, and one scheduler pass over 10,000.

Every worker runs the scheduler (worker/scheduler.py) beside its claim loop, on the same pool:
about once a second it leases the schedules due within its 10 s horizon (one statement per 100)
and makes each one's occurrences (one statement per schedule). Two figures say what that costs.

Beside: the drain of drain.py (2 workers), run alternately with no schedules and with 1,000
enabled schedules of the task type noop, every 60 s, their due times spread evenly over the
minute (inserted in one statement). Before the workers start, one pass in the bench process
makes the occurrences due within the horizon, as a fleet already running would have left them;
from then on each pass of a worker's scheduler finds the ~17 schedules a second that have come
within the horizon since. The occurrences are run by the same workers, and not counted: only
the bench's own tasks (no schedule) are.

Pass: 10,000 schedules, every 60 s, and `Scheduler(pool, horizon=10).run_once()` in the bench
process on a pool of one connection (the scheduler runs one statement at a time), the database
otherwise idle. "All due": the due times spread over the next 10 s, so one pass takes all 10,000
and makes a task of each. "Steady": spread over the next 60 s, the horizon filled by a first
pass, then passes at the database's clock + 1 s, + 2 s, … (the clock is handed to run_once, so
each pass finds exactly the schedules a pass a second would): about 167 each. Each pass reports
its wall time from the client over loopback, the time it spent awaiting statements, and, when
the server runs on this machine, the CPU time of the server process that served it (/proc).
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

from shared import db, queries
from shared.settings import Settings
from worker.scheduler import HORIZON_SECONDS, Scheduler

from .database import connected, truncate
from .drain import DrainRun, drain_once
from .processes import cpu_seconds

T = TypeVar("T")

BESIDE_SCHEDULES = 1_000
PASS_SCHEDULES = 10_000
INTERVAL_SECONDS = 60.0
STEADY_PASSES = 5  # per run, one a second of the database's clock after the filling one
DB_DEADLINE_SECONDS = Settings().db_timeout_seconds  # the worker's deadline per statement

# `$1` schedules of the task type noop, every `$2` s, the first due now and the rest spread
# evenly over `$3` s (each anchored at its own first due time, so its cadence runs on from
# there); the default policy (`$4`… as Settings().policy().columns: what the API would resolve
# for noop).
LOAD_SCHEDULES = """
INSERT INTO schedules (name, task_type, interval_seconds, max_attempts, backoff,
    backoff_base_seconds, backoff_cap_seconds, retry_on_loss, timeout_seconds, anchor, next_at)
SELECT 'bench-' || n, 'noop', $2::float8, $4, $5, $6, $7, $8, $9, at, at
FROM (
    SELECT n, now() + make_interval(secs => (n - 1) * $3::float8 / $1) AS at
    FROM generate_series(1, $1::int) AS n
) AS g
"""
# Occurrences made since `$1`: by the workers' schedulers during a drain.
MADE_SINCE = "SELECT count(*) FROM tasks WHERE schedule IS NOT NULL AND created_at >= $1"
_NAMES = {text: name for name, text in queries.sql().items()}


@dataclass(frozen=True)
class BesideRun:
    drain: DrainRun  # the bench's own tasks only
    schedules: int
    made: int  # occurrences the workers' schedulers made while they ran


@dataclass(frozen=True)
class PassRun:
    schedules: int  # in the table
    due: str  # "all": every schedule within the horizon; "steady": a pass a second
    taken: int  # schedules the pass took (one schedule_materialize each)
    made: int  # tasks made
    wall_ms: float  # run_once, from the client
    statements: dict[str, int]  # by name, as shared/sql names them
    statement_ms: float  # of wall_ms, awaiting statements (the pool, loopback and the server)
    server_cpu_ms: float | None  # the serving backend's CPU time; None: not on this machine

    @property
    def ms_per_schedule(self) -> float:
        return self.wall_ms / self.taken if self.taken else float("nan")


@dataclass(frozen=True)
class ScheduleResults:
    plain: list[DrainRun] = field(default_factory=list)
    beside: list[BesideRun] = field(default_factory=list)
    passes: list[PassRun] = field(default_factory=list)


class ClockedPool(db.TimedPool):
    """The worker's TimedPool, adding up the client's time awaiting each statement by name."""

    def __init__(self, pool: asyncpg.Pool, seconds: float) -> None:
        super().__init__(pool, seconds)
        self.calls: collections.Counter[str] = collections.Counter()
        self.awaited = 0.0

    async def _timed(self, query: str, run: Awaitable[T]) -> T:
        started = time.perf_counter()
        try:
            return await run
        finally:
            self.awaited += time.perf_counter() - started
            self.calls[_NAMES.get(query, "other")] += 1

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        return await self._timed(query, super().fetch(query, *args))

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        return await self._timed(query, super().fetchrow(query, *args))

    async def fetchval(self, query: str, *args: Any) -> Any:
        return await self._timed(query, super().fetchval(query, *args))

    async def execute(self, query: str, *args: Any) -> str:
        return await self._timed(query, super().execute(query, *args))


async def load_schedules(dsn: str, count: int, spread: float) -> None:
    """No schedules, then `count` due over the next `spread` s, ANALYZEd (the tasks are the
    caller's: it loads them afresh before)."""
    async with connected(dsn) as conn:
        await conn.execute("TRUNCATE schedules")
        if count:
            policy = Settings().policy().columns
            await conn.execute(LOAD_SCHEDULES, count, INTERVAL_SECONDS, spread, *policy)
        await conn.execute("ANALYZE schedules")


async def _open_pool(dsn: str) -> ClockedPool:
    raw = await db.create_pool(
        dsn,
        size=1,
        min_size=1,
        application_name="duetime-bench-scheduler",
        server_settings=db.WORKER_SERVER_SETTINGS,
    )
    return ClockedPool(raw, DB_DEADLINE_SECONDS)


async def _db_now(dsn: str) -> datetime:
    async with connected(dsn) as conn:
        now: datetime = await conn.fetchval("SELECT now()")
        return now


async def _fill_horizon(dsn: str, now: datetime | None = None) -> None:
    """One pass at `now` (None: the database's clock), as a running fleet's would have made."""
    pool = await _open_pool(dsn)
    try:
        await Scheduler(pool, horizon=HORIZON_SECONDS).run_once(now)
    finally:
        await pool.close()


def plain_once(dsn: str, count: int, workers: int, deadline: float) -> DrainRun:
    """drain.py's drain with the schedules table empty."""
    return drain_once(
        dsn,
        count,
        workers,
        deadline,
        before_workers=lambda: asyncio.run(load_schedules(dsn, 0, 0.0)),
    )


def beside_once(dsn: str, count: int, workers: int, deadline: float) -> BesideRun:
    """drain.py's drain beside BESIDE_SCHEDULES active schedules (the module's docstring)."""
    since: list[datetime] = []

    def add_schedules() -> None:
        asyncio.run(load_schedules(dsn, BESIDE_SCHEDULES, INTERVAL_SECONDS))
        asyncio.run(_fill_horizon(dsn))
        since.append(asyncio.run(_db_now(dsn)))  # what the workers make is made after this

    drain = drain_once(dsn, count, workers, deadline, before_workers=add_schedules)
    return BesideRun(drain, BESIDE_SCHEDULES, asyncio.run(_made_since(dsn, since[0])))


async def _made_since(dsn: str, since: datetime) -> int:
    async with connected(dsn) as conn:
        made: int = await conn.fetchval(MADE_SINCE, since)
        return made


def passes_once(dsn: str, deadline: float) -> list[PassRun]:
    """One all-due pass over PASS_SCHEDULES, then STEADY_PASSES steady ones (the docstring)."""
    return asyncio.run(asyncio.wait_for(_passes(dsn), deadline - time.monotonic()))


async def _passes(dsn: str) -> list[PassRun]:
    """On one pool for all (a worker's lives on: its statements are prepared once)."""
    pool = await _open_pool(dsn)
    try:
        await truncate(dsn)
        await load_schedules(dsn, PASS_SCHEDULES, HORIZON_SECONDS)
        runs = [await _timed_pass(pool, "all", None)]
        await truncate(dsn)
        await load_schedules(dsn, PASS_SCHEDULES, INTERVAL_SECONDS)
        start = await _db_now(dsn)
        await Scheduler(pool, horizon=HORIZON_SECONDS).run_once(start)  # fills the horizon
        for k in range(1, STEADY_PASSES + 1):
            runs.append(await _timed_pass(pool, "steady", start + timedelta(seconds=k)))
    finally:
        await pool.close()
    await truncate(dsn)
    await load_schedules(dsn, 0, 0.0)  # none left behind to make tasks in a later drain
    return runs


async def _timed_pass(pool: ClockedPool, due: str, now: datetime | None) -> PassRun:
    """One run_once at `now` (None: the database's clock) on `pool`'s one connection."""
    schedules: int = await pool.raw.fetchval("SELECT count(*) FROM schedules")
    pid: int = await pool.raw.fetchval("SELECT pg_backend_pid()")
    scheduler = Scheduler(pool, horizon=HORIZON_SECONDS)
    pool.calls.clear()
    pool.awaited = 0.0
    cpu = _server_cpu(pid)
    started = time.perf_counter()
    made = await scheduler.run_once(now)
    wall = time.perf_counter() - started
    after = _server_cpu(pid)
    return PassRun(
        schedules=schedules,
        due=due,
        taken=pool.calls["schedule_materialize"],
        made=made,
        wall_ms=wall * 1000,
        statements=dict(pool.calls),
        statement_ms=pool.awaited * 1000,
        server_cpu_ms=None if cpu is None or after is None else (after - cpu) * 1000,
    )


def _server_cpu(pid: int) -> float | None:
    """The CPU seconds of server process `pid`, if it is a postgres process on this machine."""
    try:
        if Path(f"/proc/{pid}/comm").read_text().strip() != "postgres":
            return None
        return cpu_seconds(pid)
    except OSError:
        return None
