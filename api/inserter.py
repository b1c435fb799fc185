"""Group commit for POST /task: concurrent requests share one multi-row INSERT.

While up to `max_inflight` inserts are running, new rows queue; each flush takes everything queued
(up to `max_batch`). At low load a request is inserted at once, alone; under load the batches grow
by themselves, with no timer adding latency. A request returns only after its row has committed.
"""

from __future__ import annotations

import asyncio
from collections import deque

from api.notifier import DueNotifier
from shared import queries
from shared.task import NewTask


class Inserter:
    def __init__(
        self,
        pool: queries.Executor,
        notifier: DueNotifier,
        *,
        max_batch: int = 1000,
        max_inflight: int = 4,
    ) -> None:
        self._pool = pool
        self._notifier = notifier
        self._max_batch = max_batch
        self._max_inflight = max_inflight
        self._queue: deque[tuple[NewTask, asyncio.Future[None]]] = deque()
        self._inflight = 0
        self._flushers: set[asyncio.Task[None]] = set()

    async def insert(self, task: NewTask) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((task, future))
        if self._inflight < self._max_inflight:
            self._inflight += 1
            flusher = asyncio.create_task(self._flush())
            self._flushers.add(flusher)
            flusher.add_done_callback(self._flushers.discard)
        await future

    async def insert_all(self, tasks: list[NewTask]) -> None:
        """Insert many tasks in one statement, all or nothing (used by bulk endpoints)."""
        await self._write(tasks)

    async def insert_all_keyed(self, tasks: list[NewTask], key: str) -> bool:
        """insert_all under an idempotency key; False (nothing written) if the key was taken."""
        sent = asyncio.get_running_loop().time()
        due_in = await queries.insert_many_keyed(self._pool, tasks, key)
        if due_in is None:
            return False
        self._notifier.due_in(due_in, since=sent)
        return True

    async def _flush(self) -> None:
        try:
            while self._queue:
                batch = [
                    self._queue.popleft() for _ in range(min(self._max_batch, len(self._queue)))
                ]
                try:
                    await self._write([task for task, _ in batch])
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                else:
                    for _, future in batch:
                        if not future.done():
                            future.set_result(None)
        finally:
            self._inflight -= 1

    async def _write(self, tasks: list[NewTask]) -> None:
        sent = asyncio.get_running_loop().time()
        self._notifier.due_in(await queries.insert_many(self._pool, tasks), since=sent)
