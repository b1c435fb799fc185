"""Resolves attempts whose lease expired: their worker was killed, paused or cut off.

Every worker runs it, at a jittered interval, with no leader: the statement takes expired rows
with SKIP LOCKED, so rescuers running side by side share them out, and each row is one guarded
UPDATE (failed with reason 'lost', or submitted again if the task allows retry on loss).
"""

from __future__ import annotations

import logging

from shared import queries
from worker.service import Every, Service

log = logging.getLogger(__name__)


class Rescuer(Service):
    name = "rescuing expired leases"

    def __init__(self, pool: queries.Executor, *, interval: float, batch: int = 500) -> None:
        self._pool = pool
        self.every = Every(interval)
        self._batch = batch
        self.rescued = 0

    async def run_once(self) -> int:
        """Resolve every expired lease there is now; how many."""
        total = 0
        while True:
            rows = await queries.rescue_expired(self._pool, self._batch)
            for row in rows:
                log.warning(
                    "task %s attempt %d: lease expired (worker %s lost it); now %s",
                    row["id"],
                    row["attempts"],
                    row["worker_id"],
                    row["status"],
                )
            total += len(rows)
            requeued = [r["due_in"] for r in rows if r["status"] == "submitted"]
            if requeued:  # rare: one NOTIFY wakes whichever worker runs that type
                await queries.notify_due(self._pool, min(requeued))
            if len(rows) < self._batch:
                break
        self.rescued += total
        return total
