"""Deletes finished tasks past their retention: done and deleted after retention_done_seconds,
failed after retention_failed_seconds; and bulk idempotency keys after retention_done_seconds.

Every worker runs it, at a jittered interval, with no leader: each statement deletes a small
batch taken with SKIP LOCKED, so pruners side by side share the rows out and none holds many
locks or a long transaction. Freed space is reused once (auto)vacuum has run: see
docs/operations.md.
"""

from __future__ import annotations

from shared import queries
from shared.task import TaskStatus
from worker.service import Every, Service

BATCH = 1000


class Pruner(Service):
    name = "pruning finished tasks"

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
        self.every = Every(interval)  # 0: off
        self._retention = {
            TaskStatus.DONE: retention_done,
            TaskStatus.DELETED: retention_done,
            TaskStatus.FAILED: retention_failed,
        }
        self._batch = batch
        self.pruned: dict[TaskStatus, int] = dict.fromkeys(self._retention, 0)
        self.keys_pruned = 0
        self._keys = 0  # bulk keys pruned by the last pass

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
        self._keys = await self._prune_batch_keys(self._retention[TaskStatus.DONE])
        return counts

    @property
    def enabled(self) -> bool:
        return self.every.seconds > 0  # else finished tasks are kept for ever

    def summary(self, did: dict[TaskStatus, int]) -> str | None:
        if not any(did.values()) and not self._keys:
            return None
        tasks = ", ".join(f"{n} {status}" for status, n in did.items())
        return f"pruned {sum(did.values())} finished tasks ({tasks}), {self._keys} bulk keys"

    async def _prune_batch_keys(self, older_than: float) -> int:
        """A replay of a bulk request answers its first ids as long as a done task is kept."""
        total = 0
        while True:
            deleted = await queries.prune_batch_keys(self._pool, older_than, self._batch)
            total += deleted
            if deleted < self._batch:
                break
        self.keys_pruned += total
        return total
