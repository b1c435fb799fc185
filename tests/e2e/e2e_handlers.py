"""The handlers the e2e tests run in real worker processes: each records its runs in a side table.

Imported by `duetime worker` / `duetime api` through DUETIME_IMPORTS=e2e_handlers, with this
folder on PYTHONPATH. Every handler writes one row to `executions` (fleet.CREATE_EXECUTIONS) per
run, keyed by (task_id, attempt), before doing anything else; the slow ones also stamp the row's
finished_at when their work is over, so a test can tell a run that ended from one that was cut.

The handlers' own connections are named `e2e-handler`, never `duetime…`: the chaos tests cut every
duetime connection and must not cut the side table's writes with them. A write that fails because
the database is away (restarted, connection cut) is retried until it is back: the handler stands
for a user's idempotent side effect, and the tests count runs, not its failures to record them.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from typing import TYPE_CHECKING, Any

import asyncpg
from draws import flaky_fails

from duetime import TaskContext, task

# Connections each worker process's handlers use (tests with many workers set 1).
POOL_SIZE = int(os.environ.get("E2E_HANDLER_POOL_SIZE", "2"))
APPLICATION_NAME = "e2e-handler"
# The side table's writes need not wait for the disk (a clean shutdown still writes them): with
# 20 workers recording 30,000 runs, one flush per run would set the pace of the whole test.
SERVER_SETTINGS = {"application_name": APPLICATION_NAME, "synchronous_commit": "off"}
RECORD_PATIENCE = 60.0  # seconds a handler keeps trying to record a run while the DB is away
DB_DOWN = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError)
DB_DOWN_CODES = ("57P01", "57P02", "57P03", "08")  # admin shutdown, crash, starting up, class 08

INSERT = "INSERT INTO executions (task_id, attempt, worker_pid, run_id) VALUES ($1, $2, $3, $4)"
# After a failed try the first insert may or may not have committed: insert the run only once.
INSERT_ONCE = """
INSERT INTO executions (task_id, attempt, worker_pid, run_id)
SELECT $1, $2, $3, $4 WHERE NOT EXISTS (SELECT 1 FROM executions WHERE run_id = $4)"""
FINISHED = "UPDATE executions SET finished_at = clock_timestamp() WHERE run_id = $1"

if TYPE_CHECKING:
    import psycopg

_pool: asyncpg.Pool | None = None
_lock = asyncio.Lock()


def _db_down(exc: BaseException) -> bool:
    if isinstance(exc, DB_DOWN):
        return True
    code = getattr(exc, "sqlstate", None) or ""
    return isinstance(exc, asyncpg.PostgresError) and code.startswith(DB_DOWN_CODES)


async def _get_pool() -> asyncpg.Pool:
    global _pool
    async with _lock:
        if _pool is None:
            _pool = await asyncpg.create_pool(
                os.environ["DATABASE_URL"],
                min_size=1,
                max_size=POOL_SIZE,
                server_settings=SERVER_SETTINGS,
            )
    assert _pool is not None
    return _pool


async def _write(first: str, retry: str, *args: object) -> None:
    """Run `first`; if the database is away, `retry` (an idempotent form) until it is back."""
    deadline = time.monotonic() + RECORD_PATIENCE
    query = first
    while True:
        try:
            pool = await _get_pool()
            await pool.execute(query, *args)
            return
        except Exception as exc:
            if not _db_down(exc) or time.monotonic() > deadline:
                raise
            query = retry
            await asyncio.sleep(0.2)


async def _record(ctx: TaskContext) -> uuid.UUID:
    run_id = uuid.uuid4()
    await _write(INSERT, INSERT_ONCE, ctx.task_id, ctx.attempt, os.getpid(), run_id)
    return run_id


def _record_sync(ctx: TaskContext) -> uuid.UUID:
    """From a handler's thread: one short connection (the sync handlers run a few times a test)."""
    run_id = uuid.uuid4()
    with _connect() as conn:
        conn.execute(
            "INSERT INTO executions (task_id, attempt, worker_pid, run_id) VALUES (%s, %s, %s, %s)",
            (ctx.task_id, ctx.attempt, os.getpid(), run_id),
        )
    return run_id


def _finished_sync(run_id: uuid.UUID) -> None:
    with _connect() as conn:
        conn.execute(
            "UPDATE executions SET finished_at = clock_timestamp() WHERE run_id = %s", (run_id,)
        )


def _connect() -> psycopg.Connection[Any]:
    import psycopg  # only the sync handlers need it: not a cost of every worker's start

    options = " ".join(f"-c {k}={v}" for k, v in SERVER_SETTINGS.items() if k != "application_name")
    return psycopg.connect(
        os.environ["DATABASE_URL"],
        autocommit=True,
        application_name=APPLICATION_NAME,
        options=options,
    )


def _seconds(ctx: TaskContext) -> float:
    """payload {"seconds": s} for every attempt, or {"seconds": [s1, s2, ...]} by attempt."""
    seconds = ctx.payload.get("seconds", 0)
    if isinstance(seconds, list):
        seconds = seconds[min(ctx.attempt, len(seconds)) - 1]
    return float(seconds)


def _result(ctx: TaskContext) -> dict[str, int]:
    return {"pid": os.getpid(), "attempt": ctx.attempt}


@task("record")
async def record(ctx: TaskContext) -> dict[str, int]:
    """One row in `executions` per run, written by the DB's clock."""
    await _record(ctx)
    return {"pid": os.getpid()}


@task("flaky")
async def flaky(ctx: TaskContext) -> dict[str, int]:
    """Records the run, then fails or not as fleet.flaky_fails says for this (task, attempt):
    deterministic, so a test knows which tasks must end done and after how many attempts."""
    await _record(ctx)
    if flaky_fails(ctx.task_id, ctx.attempt):
        raise RuntimeError(f"flaky: attempt {ctx.attempt} fails")
    return _result(ctx)


@task("slow")
async def slow(ctx: TaskContext) -> dict[str, int]:
    """Records the run, sleeps `seconds` (see _seconds), stamps the run finished."""
    run_id = await _record(ctx)
    await asyncio.sleep(_seconds(ctx))
    await _write(FINISHED, FINISHED, run_id)
    return _result(ctx)


@task("nap")
async def nap(ctx: TaskContext) -> dict[str, int]:
    """Records the run, sleeps `seconds`, returns: nothing to write at its end, so a nap that ends
    while the database is away leaves its result to the worker alone."""
    await _record(ctx)
    await asyncio.sleep(_seconds(ctx))
    return _result(ctx)


@task("slow_sync")
def slow_sync(ctx: TaskContext) -> dict[str, int]:
    """slow in a thread, deaf to ctx.cancelled: once started it always runs to its end (a
    worker paused mid-run wakes with a finished result in hand: a stale completion to fence)."""
    run_id = _record_sync(ctx)
    time.sleep(_seconds(ctx))
    _finished_sync(run_id)
    return _result(ctx)


@task("forever")
async def forever(ctx: TaskContext) -> None:
    """Records the run, then sleeps far past any timeout a test gives it: only a cancel ends it."""
    await _record(ctx)
    await asyncio.sleep(3600)


@task("busy")
def busy(ctx: TaskContext) -> dict[str, int]:
    """Records the run, then spins on the CPU for `seconds`, never looking at ctx.cancelled:
    a worker can only abandon it. Bounded, so the worker process can still exit afterwards."""
    run_id = _record_sync(ctx)
    end = time.monotonic() + _seconds(ctx)
    spins = 0
    while time.monotonic() < end:
        spins += 1
    _finished_sync(run_id)
    return _result(ctx)
