"""Renews the leases of everything a worker runs, in one fenced UPDATE per beat.

An attempt missing from the answer was resolved by the rescuer while this worker was away
(paused, cut off, too slow to beat): the worker is told, cancels the handler and drops its result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from uuid import UUID

from shared import queries
from worker.service import Every, Service


class Heartbeat(Service):
    name = "renewing leases"

    def __init__(
        self,
        pool: queries.Executor,
        worker_id: str,
        *,
        lease_seconds: float,
        held: Callable[[], Sequence[tuple[UUID, int]]],
        on_lost: Callable[[UUID, int], None],
    ) -> None:
        self._pool = pool
        self._worker_id = worker_id
        self._lease_seconds = lease_seconds
        self._held = held
        self._on_lost = on_lost
        # Two beats may fail before a lease runs out: no jitter, and a failed beat is retried at
        # the next one.
        self.every = Every(lease_seconds / 3, jitter=0.0)

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
