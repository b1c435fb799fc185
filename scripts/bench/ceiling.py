"""The raw SQL ceiling: the worker's claim and completion statements in a loop, no handler."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncpg

from shared import db, queries

from .database import done_window, reload_due_noop

TYPES = ["noop"]
CEILING_CONNECTIONS = 2
LEASE_SECONDS = 30.0


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
    conns = [await asyncpg.connect(dsn, server_settings=settings) for _ in range(connections)]
    try:
        claims = await asyncio.gather(
            *(_claim_loop(conn, f"bench-{n}", batch) for n, conn in enumerate(conns))
        )
        done, seconds = await done_window(conns[0])
    finally:
        for conn in conns:
            await conn.close()
    if done != count:
        raise RuntimeError(f"the claim loops finished {done:,} of {count:,} tasks")
    return CeilingRun(count, seconds, count / seconds, sum(claims))


async def _claim_loop(conn: asyncpg.Connection, worker_id: str, batch: int) -> int:
    """Claim and complete until a claim comes back empty; the claims that returned rows."""
    claims = 0
    while rows := (await queries.claim_due(conn, batch, worker_id, LEASE_SECONDS, TYPES)).rows:
        claims += 1
        await queries.finish_many(
            conn, [queries.Finish(row["id"], row["attempts"], "done") for row in rows]
        )
    return claims
