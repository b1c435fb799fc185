"""PgQueuer's drain rate, the peer of drain.py: due no-op jobs drained by PgQueuer consumers.

The schema is installed as `pgq install` does it (install only when Queries.schema_is_installed()
is false; `install` in pgqueuer/adapters/cli/cli.py), with the default durability, "durable": all
tables logged, as duetime's are. docs/guides/performance-tuning.md offers "balanced" (its log and
statistics tables unlogged, "~2x") and "volatile", both of which give up crash safety, so they are
not used here. Its checklist's `pgq autovac` (Queries.optimize_autovacuum: eager autovacuum and
fillfactor 70 on the queue table) is applied. The consumers' settings are in peer_consumer.py.

The run is timed by PgQueuer's own log table: from the first 'picked' row to the last 'successful'
one, both stamped now() (their statement's transaction start) as duetime's started_at and
finished_at are. The jobs are enqueued before the consumers start, in bulk through Queries.enqueue
(lists of entrypoints, payloads and priorities), then the tables are analyzed, as drain.py's
tasks are.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from pgqueuer import Queries

from .database import connected, poll_count
from .peer_consumer import BATCH_SIZE, ENTRYPOINT
from .processes import Processes, process_env

POLL_SECONDS = 0.2
ENQUEUE_CHUNK = 10_000  # jobs per Queries.enqueue statement
CONSUMER = [sys.executable, "-m", "scripts.bench.peer_consumer"]

TIMED_BY_LOG = "pgqueuer_log: first 'picked' to last 'successful'"
TIMED_BY_WALL = "wall clock: consumers' start to the queue seen empty"


@dataclass(frozen=True)
class PeerRun:
    jobs: int
    seconds: float  # see timed_by
    jobs_per_s: float
    wall_seconds: float  # from starting the consumers until the queue was seen empty
    timed_by: str


def pgqueuer_once(
    dsn: str, count: int, processes: int, deadline: float, *, batch_size: int = BATCH_SIZE
) -> PeerRun:
    """Install PgQueuer's schema if missing, clear its tables, enqueue `count` no-op jobs, start
    `processes` consumers, wait until the queue is empty, stop the consumers.

    `deadline` is a time.monotonic() value: past it, the wait gives up with TimeoutError.
    """
    asyncio.run(_reload(dsn, count))
    procs = Processes(process_env(dsn))
    started = time.monotonic()
    try:
        for _ in range(processes):
            procs.start(["--batch-size", str(batch_size)], CONSUMER)
        asyncio.run(_wait_empty(dsn, count, deadline, procs.check_alive))
        wall = time.monotonic() - started
    finally:
        procs.stop()
    return asyncio.run(_measure(dsn, count, wall))


async def _reload(dsn: str, count: int) -> None:
    """The schema (installed once), empty tables, then `count` queued jobs, then ANALYZE."""
    async with connected(dsn) as conn:
        q = Queries.from_asyncpg_connection(conn)
        if not await q.schema_is_installed():
            await q.install()
        await q.optimize_autovacuum()
        await q.clear_queue()
        await q.clear_queue_log()
        await q.clear_statistics_log()
        for start in range(0, count, ENQUEUE_CHUNK):
            n = min(ENQUEUE_CHUNK, count - start)
            await q.enqueue([ENTRYPOINT] * n, [None] * n, [0] * n)
        names = q.qbe.settings.qualified
        await conn.execute(f"ANALYZE {names.queue_table}, {names.queue_table_log}")


async def _wait_empty(dsn: str, count: int, deadline: float, check: Callable[[], None]) -> None:
    """Until the queue table is empty: a job leaves it when its outcome is logged."""
    async with connected(dsn) as conn:
        queue = Queries.from_asyncpg_connection(conn).qbe.settings.qualified.queue_table
        await poll_count(
            conn,
            f"SELECT count(*) FROM {queue}",
            until=lambda left: left == 0,
            what=lambda left: f"only {count - left:,} of {count:,} jobs finished in time",
            deadline=deadline,
            check=check,
            every=POLL_SECONDS,
        )


async def _measure(dsn: str, count: int, wall: float) -> PeerRun:
    async with connected(dsn) as conn:
        names = Queries.from_asyncpg_connection(conn).qbe.settings.qualified
        left = await conn.fetchval(f"SELECT count(*) FROM {names.queue_table}")
        row = await conn.fetchrow(
            f"""
            SELECT count(*) FILTER (WHERE status = 'successful') AS successful,
                   count(DISTINCT job_id) FILTER (WHERE status = 'successful') AS jobs,
                   extract(epoch FROM max(created) FILTER (WHERE status = 'successful')
                                      - min(created) FILTER (WHERE status = 'picked'))::float8
                       AS seconds
            FROM {names.queue_table_log}
            """
        )
    assert row is not None
    if left or row["successful"] != count or row["jobs"] != count:
        raise RuntimeError(
            f"{left:,} jobs left in the queue, {row['successful']:,} successful log rows for "
            f"{row['jobs']:,} distinct jobs; expected 0, {count:,} and {count:,}"
        )
    seconds: float | None = row["seconds"]
    timed_by = TIMED_BY_LOG
    if not seconds or seconds <= 0:  # no usable timestamps: fall back on the wait's own clock
        seconds, timed_by = wall, TIMED_BY_WALL
    return PeerRun(count, seconds, count / seconds, wall, timed_by)
