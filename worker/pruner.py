"""Deletes finished tasks past their retention: done and deleted after retention_done_seconds,
failed after retention_failed_seconds; and bulk idempotency keys after retention_done_seconds.

Every worker runs it, at a jittered interval, with no leader: each statement deletes a small
batch taken with SKIP LOCKED, so pruners side by side share the rows out and none holds many
locks or a long transaction. Freed space is reused once (auto)vacuum has run: see
docs/operations.md.
"""

from __future__ import annotations

import asyncio
import logging
import random

from shared import queries
from shared.db import DB_ERRORS
from shared.task import TaskStatus

log = logging.getLogger(__name__)

BATCH = 1000


class Pruner:
    def __init__(
        self,
        pool: queries.Executor,
        *,
        interval: float,
        retention_done: float,
        retention_failed: float,
        batch: int = BATCH,
    ) -> None:
        self._pool = pool
        self.interval = interval
        self._retention = {
            TaskStatus.DONE: retention_done,
            TaskStatus.DELETED: retention_done,
            TaskStatus.FAILED: retention_failed,
        }
        self._batch = batch
        self.pruned: dict[TaskStatus, int] = dict.fromkeys(self._retention, 0)
        self.keys_pruned = 0

    async def run_once(self) -> dict[TaskStatus, int]:
        """Delete every task past its retention now; how many of each status."""
        counts = dict.fromkeys(self._retention, 0)
        for status, older_than in self._retention.items():
            while True:
                deleted = await queries.prune(self._pool, status, older_than, self._batch)
                counts[status] += deleted
                self.pruned[status] += deleted
                if deleted < self._batch:
                    break
        await self._prune_batch_keys(self._retention[TaskStatus.DONE])
        if any(counts.values()):
            log.info(
                "pruned %d finished tasks: %s",
                sum(counts.values()),
                ", ".join(f"{n} {status}" for status, n in counts.items()),
            )
        return counts

    async def _prune_batch_keys(self, older_than: float) -> None:
        """A replay of a bulk request answers its first ids as long as a done task is kept."""
        total = 0
        while True:
            deleted = await queries.prune_batch_keys(self._pool, older_than, self._batch)
            total += deleted
            if deleted < self._batch:
                break
        self.keys_pruned += total
        if total:
            log.info("pruned %d bulk idempotency keys", total)

    async def run(self) -> None:
        if self.interval <= 0:
            return  # pruning turned off: finished tasks are kept for ever
        while True:
            # Jitter keeps a fleet started together from pruning in lockstep.
            await asyncio.sleep(self.interval * random.uniform(0.5, 1.5))
            try:
                await self.run_once()
            except DB_ERRORS as exc:
                log.warning("pruning finished tasks failed (%s)", exc)
