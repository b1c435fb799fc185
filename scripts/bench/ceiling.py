"""The raw SQL ceiling: the worker's claim and completion statements in a loop, no handler; and
the same loop on the least a SKIP LOCKED queue table can be, which bounds what any queue built on
one row per job (duetime, PgQueuer) can drain on this machine."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from shared import db, queries

from .database import connected, done_window, reload_due_noop

TYPES = ["noop"]
CEILING_CONNECTIONS = 2
LEASE_SECONDS = 30.0
MINIMAL = "bench_minimal_queue"
Loop = Callable[[asyncpg.Connection, str, int], Awaitable[int]]  # (conn, worker id, batch)
# The columns a claim and a completion must write, one partial index to find due rows: no
# payload, policy, lease, checks or listing indexes.
MINIMAL_SETUP = f"""
DROP TABLE IF EXISTS {MINIMAL};
CREATE TABLE {MINIMAL} (
    id uuid PRIMARY KEY,
    status text NOT NULL DEFAULT 'submitted',
    execution_time timestamptz NOT NULL,
    attempts int NOT NULL DEFAULT 0,
    worker_id text,
    started_at timestamptz,
    finished_at timestamptz
);
CREATE INDEX {MINIMAL}_due ON {MINIMAL} (execution_time) WHERE status = 'submitted';
"""
MINIMAL_LOAD = f"""
INSERT INTO {MINIMAL} (id, execution_time)
SELECT gen_random_uuid(), now() - interval '1 day' + n * interval '1 millisecond'
FROM generate_series(1, $1::int) AS n
"""
MINIMAL_CLAIM = f"""
WITH due AS (
    SELECT id FROM {MINIMAL}
    WHERE status = 'submitted' AND execution_time <= now()
    ORDER BY execution_time
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE {MINIMAL}
SET status = 'started_executing', attempts = attempts + 1, worker_id = $2, started_at = now()
WHERE id = ANY(ARRAY(SELECT id FROM due))
RETURNING id
"""
MINIMAL_FINISH = (
    f"UPDATE {MINIMAL} SET status = 'done', finished_at = now() WHERE id = ANY($1::uuid[])"
)


@dataclass(frozen=True)
class CeilingRun:
    tasks: int
    seconds: float  # max(finished_at) - min(started_at), as for the drain
    tasks_per_s: float
    claims: int


async def ceiling_once(
    dsn: str, count: int, *, batch: int, connections: int = CEILING_CONNECTIONS
) -> CeilingRun:
    """`connections` loops of claim(batch) + finish_many on `count` due noop rows."""
    await reload_due_noop(dsn, count)
    settings = {"application_name": "duetime-bench", **db.WORKER_SERVER_SETTINGS}
    claims = await _loops(dsn, connections, _claim_loop, batch, settings)
    async with connected(dsn) as conn:
        done, seconds = await done_window(conn)
    if done != count:
        raise RuntimeError(f"the claim loops finished {done:,} of {count:,} tasks")
    return CeilingRun(count, seconds, count / seconds, claims)


async def _loops(
    dsn: str, connections: int, loop: Loop, batch: int, settings: dict[str, str] | None = None
) -> int:
    """`loop` on `connections` connections side by side; the claims that returned rows."""
    conns = [await asyncpg.connect(dsn, server_settings=settings) for _ in range(connections)]
    try:
        claims = await asyncio.gather(
            *(loop(conn, f"bench-{n}", batch) for n, conn in enumerate(conns))
        )
    finally:
        for conn in conns:
            await conn.close()
    return sum(claims)


async def _claim_loop(conn: asyncpg.Connection, worker_id: str, batch: int) -> int:
    """Claim and complete until a claim comes back empty; the claims that returned rows."""
    claims = 0
    while rows := (await queries.claim_due(conn, batch, worker_id, LEASE_SECONDS, TYPES)).rows:
        claims += 1
        await queries.finish_many(
            conn, [queries.Finish(row["id"], row["attempts"], "done") for row in rows]
        )
    return claims


async def minimal_ceiling_once(
    dsn: str, count: int, *, batch: int, connections: int = CEILING_CONNECTIONS
) -> CeilingRun:
    """The same loops on a minimal queue table, made for the run and dropped after it."""
    setup = await asyncpg.connect(dsn)
    try:
        await setup.execute(MINIMAL_SETUP)
        await setup.execute(MINIMAL_LOAD, count)
        await setup.execute(f"ANALYZE {MINIMAL}")
        claims = await _loops(dsn, connections, _minimal_loop, batch)
        done, seconds = await done_window(setup, MINIMAL)
    finally:
        await setup.execute(f"DROP TABLE IF EXISTS {MINIMAL}")
        await setup.close()
    if done != count:
        raise RuntimeError(f"the minimal queue's loops finished {done:,} of {count:,} tasks")
    return CeilingRun(count, seconds, count / seconds, claims)


async def _minimal_loop(conn: asyncpg.Connection, worker_id: str, batch: int) -> int:
    claims = 0
    while rows := await conn.fetch(MINIMAL_CLAIM, batch, worker_id):
        claims += 1
        await conn.execute(MINIMAL_FINISH, [row["id"] for row in rows])
    return claims
