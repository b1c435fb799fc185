"""Start lag: how late after its execution_time a task starts, with idle and with busy workers.

`count` noop tasks are inserted in one statement, due evenly over [now + 1 s, now + 1 s +
`spread_seconds`] (the database's clock), followed by one NOTIFY "due in N s" exactly as the API
sends it after an insert (queries.notify_due). The lag of a task is started_at − execution_time:
started_at is the claim transaction's now(), so the lag is when the claim that took the task began,
not when its handler ran (that is one round trip and a loop turn later). `early` counts tasks
started before they were due, which the claim's `execution_time <= now()` must make 0.

Idle: the workers have nothing else to do. Busy: from the measured insert until the last measured
task is done, a background loop inserts noop tasks due now at BACKGROUND_PER_S (a batch every
BACKGROUND_TICK_SECONDS, each followed by a NOTIFY "due in 0 s" as the API's notifier sends at most
one per 10 ms). The workers then claim, run and complete a steady stream besides the measured
tasks, yet keep free slots (a noop holds one for a loop turn; the concurrency is 100 per worker).
Background and warm-up tasks are told apart by their payload ({"lag": "background"} or
{"lag": "canary"}) and left out of the figures; the measured ones carry {"lag": "measured"}.

Before the insert the workers must be up: each has LISTENed (pg_stat_activity) and a canary batch
due now has been done, so their pools are connected and the claim loop is running.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from shared import queries
from shared.devserver import WORKER_ARGS

from .database import connected, poll_count, truncate
from .processes import Processes, process_env

POLL_SECONDS = 0.05
LEAD_SECONDS = 1.0  # the first measured task is due this long after the insert
BACKGROUND_PER_S = 1000
BACKGROUND_TICK_SECONDS = 0.01
CANARY_TASKS = 20

# The measured tasks, due evenly over [now + lead, now + lead + spread]; the seconds from now to the
# earliest, as task_insert_many answers the API (which decides on it whether to NOTIFY).
INSERT_SPREAD = """
WITH ins AS (
    INSERT INTO tasks (id, task_type, execution_time, payload)
    SELECT gen_random_uuid(), 'noop',
           now() + make_interval(secs => $2::float8 + (n - 1) * $3::float8 / greatest($1 - 1, 1)),
           '{"lag": "measured"}'
    FROM generate_series(1, $1::int) AS n
    RETURNING execution_time
)
SELECT extract(epoch FROM min(execution_time) - now())::float8 AS due_in FROM ins
"""
INSERT_DUE_NOW = """
INSERT INTO tasks (id, task_type, execution_time, payload)
SELECT gen_random_uuid(), 'noop', now(), jsonb_build_object('lag', $2::text)
FROM generate_series(1, $1::int)
"""
LISTENING = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND application_name = 'duetime-worker-listen'
    AND query ILIKE 'LISTEN%'
"""
FINISHED = """
SELECT count(*) FROM tasks
WHERE status IN ('done', 'failed') AND payload->>'lag' = $1
"""
# Percentiles over the measured tasks only; `early` would break the promise "never before due".
LAG = """
SELECT count(*) FILTER (WHERE status = 'done') AS done,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY lag_ms) AS p50_ms,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY lag_ms) AS p99_ms,
       max(lag_ms) AS max_ms,
       count(*) FILTER (WHERE lag_ms < 0) AS early
FROM (
    SELECT status, extract(epoch FROM started_at - execution_time)::float8 * 1000 AS lag_ms
    FROM tasks
    WHERE payload->>'lag' = 'measured'
) AS measured
"""


@dataclass(frozen=True)
class LagRun:
    tasks: int
    busy: bool
    p50_ms: float
    p99_ms: float
    max_ms: float
    early: int  # tasks whose started_at < execution_time: must be 0 (never before due)


def lag_once(
    dsn: str, count: int, spread_seconds: float, workers: int, busy: bool, deadline: float
) -> LagRun:
    """Start the workers, insert `count` tasks due over `spread_seconds`, wait, stop, measure.

    `deadline` is a time.monotonic() value: past it, a wait gives up with TimeoutError.
    """
    asyncio.run(truncate(dsn))
    procs = Processes(process_env(dsn))
    try:
        for _ in range(workers):
            procs.start(WORKER_ARGS)
        asyncio.run(_wait_ready(dsn, workers, deadline, procs.check_alive))
        asyncio.run(_measured_window(dsn, count, spread_seconds, busy, deadline, procs.check_alive))
    finally:
        procs.stop()
    return asyncio.run(_measure(dsn, count, busy))


async def _wait_ready(dsn: str, workers: int, deadline: float, check: Callable[[], None]) -> None:
    """Every worker LISTENs, and a canary batch due now is done."""
    async with connected(dsn) as conn:
        await poll_count(
            conn,
            LISTENING,
            until=lambda listening: listening >= workers,
            what=lambda listening: f"only {listening} of {workers} workers LISTEN in time",
            deadline=deadline,
            check=check,
            every=POLL_SECONDS,
        )
        await conn.execute(INSERT_DUE_NOW, CANARY_TASKS, "canary")
        await queries.notify_due(conn, 0.0)
        await _wait_finished(conn, "canary", CANARY_TASKS, deadline, check)


async def _wait_finished(
    conn: asyncpg.Connection, kind: str, count: int, deadline: float, check: Callable[[], None]
) -> None:
    await poll_count(
        conn,
        FINISHED,
        kind,
        until=lambda finished: finished >= count,
        what=lambda finished: f"only {finished:,} of {count:,} {kind} tasks finished in time",
        deadline=deadline,
        check=check,
        every=POLL_SECONDS,
    )


async def _measured_window(
    dsn: str,
    count: int,
    spread_seconds: float,
    busy: bool,
    deadline: float,
    check: Callable[[], None],
) -> None:
    """Insert and announce the measured tasks (with the background, if busy) until all are done."""
    conn = await asyncpg.connect(dsn)
    background = asyncio.create_task(_background(dsn)) if busy else None
    try:
        loop = asyncio.get_running_loop()
        sent = loop.time()
        due_in: float = await conn.fetchval(INSERT_SPREAD, count, LEAD_SECONDS, spread_seconds)
        # After the commit, as api/notifier.py sends it: counted from when the insert was sent.
        await queries.notify_due(conn, due_in - (loop.time() - sent))
        await _wait_finished(conn, "measured", count, deadline, check)
        if background is not None and background.done():
            background.result()  # its error, if it stopped on one
    finally:
        if background is not None:
            background.cancel()
            await asyncio.gather(background, return_exceptions=True)
        await conn.close()


async def _background(dsn: str) -> None:
    """Noop tasks due now at BACKGROUND_PER_S, each batch announced, until cancelled.

    The batch size follows the clock (behind schedule: a bigger batch), so the rate holds even
    when an insert is slow on a loaded machine.
    """
    async with connected(dsn) as conn:
        loop = asyncio.get_running_loop()
        started, inserted = loop.time(), 0
        while True:
            batch = int((loop.time() - started) * BACKGROUND_PER_S) - inserted
            if batch > 0:
                await conn.execute(INSERT_DUE_NOW, batch, "background")
                await queries.notify_due(conn, 0.0)
                inserted += batch
            await asyncio.sleep(BACKGROUND_TICK_SECONDS)


async def _measure(dsn: str, count: int, busy: bool) -> LagRun:
    async with connected(dsn) as conn:
        row = await conn.fetchrow(LAG)
    assert row is not None
    if row["done"] != count:
        done = row["done"]
        raise RuntimeError(f"{done:,} of {count:,} measured tasks are done (the rest failed)")
    return LagRun(count, busy, row["p50_ms"], row["p99_ms"], row["max_ms"], row["early"])
