"""Buffers attempt outcomes for a few milliseconds and writes each batch with one fenced UPDATE."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from shared import queries
from shared.queries import Finish

log = logging.getLogger(__name__)


class Completer:
    def __init__(self, pool: asyncpg.Pool, *, flush_seconds: float, max_batch: int = 5000) -> None:
        self._pool = pool
        self._flush_seconds = flush_seconds
        self._max_batch = max_batch
        self._buffer: list[Finish] = []
        self._pending = asyncio.Event()
        self._lock = asyncio.Lock()  # run() and a final flush() must not write one batch twice
        self.written = 0
        self.stale = 0

    def add(self, outcome: Finish) -> None:
        self._buffer.append(outcome)
        self._pending.set()

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    async def run(self) -> None:
        """Write batches until cancelled; cancel only after `flush()` has emptied the buffer."""
        backoff = 0.1
        while True:
            await self._pending.wait()
            await asyncio.sleep(self._flush_seconds)  # let a batch gather
            try:
                await self.flush()
                backoff = 0.1
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                # The outcomes stay buffered and are written, fenced, once the database is back.
                log.warning(
                    "writing %d results failed (%s); retrying in %.1fs", self.buffered, exc, backoff
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def flush(self) -> None:
        async with self._lock:
            await self._flush()

    async def _flush(self) -> None:
        while self._buffer:
            batch = self._buffer[: self._max_batch]
            written = await queries.finish_many(self._pool, batch)
            del self._buffer[: len(batch)]
            self.written += len(written)
            if len(written) != len(batch):
                lost = [o for o in batch if o.task_id not in written]
                self.stale += len(lost)
                for o in lost:
                    log.warning(
                        "dropped the result of task %s attempt %d: the attempt is no longer "
                        "running (its lease was resolved or a newer attempt owns it)",
                        o.task_id,
                        o.attempt,
                    )
        self._pending.clear()
