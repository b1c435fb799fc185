"""The probes: GET (and HEAD) /health, the process is up; /ready, the database answers."""

from __future__ import annotations

import asyncio
from uuid import UUID

import asyncpg
from litestar import route
from litestar.datastructures import State
from litestar.enums import HttpMethod

from api.errors import DatabaseUnavailable
from shared import db, queries

# GET /ready waits this long for the database before answering 503.
READY_TIMEOUT_SECONDS = 2.0
# An id no task has (UUIDv7 ids are never nil): looking it up is the readiness probe.
_NO_TASK = UUID(int=0)
# Load balancers probe with HEAD as often as with GET.
_GET_HEAD = [HttpMethod.GET, HttpMethod.HEAD]


@route("/health", http_method=_GET_HEAD, sync_to_thread=False, include_in_schema=False)
def health() -> dict[str, str]:
    """The process is up; says nothing about the database (GET /ready does)."""
    return {"status": "ok"}


@route("/ready", http_method=_GET_HEAD, include_in_schema=False)
async def ready(state: State) -> dict[str, str]:
    """200 when the database answers a query through the pool within 2 s, else 503."""
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            # A primary-key lookup rather than SELECT 1 (SQL lives in shared/sql): it also
            # proves the schema is there.
            await queries.get(state.pool, _NO_TASK)
    except db.DatabaseTimeout:
        raise  # the pool's own deadline, shorter than ours: a 503 that says so
    except TimeoutError:
        raise DatabaseUnavailable(f"no answer within {READY_TIMEOUT_SECONDS:g} s") from None
    except asyncpg.PostgresError as exc:
        # The server answers but cannot serve (no such database, schema not migrated, ...).
        raise DatabaseUnavailable(str(exc)) from exc
    return {"status": "ready"}
