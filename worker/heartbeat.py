"""Renews the leases of everything a worker runs, in one fenced UPDATE per beat.

An attempt missing from the answer was resolved by the rescuer while this worker was away
(paused, cut off, too slow to beat): the worker is told, cancels the handler and drops its result.
Each beat also runs `each_beat` (the worker hands back claims that may have landed late).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from uuid import UUID

from shared import queries
from shared.db import DB_ERRORS

log = logging.getLogger(__name__)


class Heartbeat:
    def __init__(
        self,
        pool: queries.Executor,
        worker_id: str,
        *,
        lease_seconds: float,
        held: Callable[[], Sequence[tuple[UUID, int]]],
        on_lost: Callable[[UUID, int], None],
        each_beat: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._pool = pool
        self._worker_id = worker_id
        self._lease_seconds = lease_seconds
        self._held = held
        self._on_lost = on_lost
        self._each_beat = each_beat
        self.interval = lease_seconds / 3  # two beats may fail before a lease runs out

    async def run_once(self) -> list[tuple[UUID, int]]:
        """Renew every held lease; the attempts found lost (already reported to on_lost)."""
        held = list(self._held())
        if not held:
            return []
        kept = await queries.heartbeat_many(
            self._pool,
            [task_id for task_id, _ in held],
            [attempt for _, attempt in held],
            self._worker_id,
            self._lease_seconds,
        )
        lost = [(task_id, attempt) for task_id, attempt in held if task_id not in kept]
        for task_id, attempt in lost:
            self._on_lost(task_id, attempt)
        return lost

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.run_once()
            except DB_ERRORS as exc:
                # The next beat tries again; leases outlive two missed beats.
                log.warning("renewing leases failed (%s)", exc)
            if self._each_beat is not None:
                try:
                    await self._each_beat()
                except DB_ERRORS as exc:
                    log.warning("handing back abandoned claims failed (%s)", exc)
