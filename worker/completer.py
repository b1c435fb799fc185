"""Buffers attempt outcomes for a few milliseconds and writes each batch with one fenced UPDATE.

While the database is away the outcomes stay buffered and are written, fenced, once it is back:
an attempt that the rescuer resolved meanwhile is dropped, never overwritten.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from uuid import UUID

import asyncpg

from shared import queries
from shared.db import CONNECTION_ERRORS
from shared.queries import Finish
from shared.task import TaskStatus

log = logging.getLogger(__name__)


class Completer:
    def __init__(
        self,
        pool: queries.Executor,
        *,
        flush_seconds: float,
        on_requeued: Callable[[], None] = lambda: None,
        on_written: Callable[[], None] = lambda: None,
        max_batch: int = 5000,
    ) -> None:
        self._pool = pool
        self._on_requeued = on_requeued
        self._on_written = on_written
        self._flush_seconds = flush_seconds
        self._max_batch = max_batch
        self._buffer: list[Finish] = []
        self._pending = asyncio.Event()
        self._lock = asyncio.Lock()  # run() and a final flush() must not write one batch twice
        self.written = 0
        self.stale = 0
        self._rewriting = False  # the last write failed: it may have landed all the same

    def add(self, outcome: Finish) -> None:
        self._buffer.append(outcome)
        self._pending.set()

    @property
    def unwritten(self) -> int:
        return len(self._buffer)

    @property
    def buffered(self) -> list[tuple[UUID, int]]:
        """The attempts whose outcome is not written yet: still this worker's."""
        return [(f.task_id, f.attempt) for f in self._buffer]

    async def run(self) -> None:
        """Write batches until cancelled; cancel only after `flush()` has emptied the buffer."""
        backoff = 0.1
        while True:
            await self._pending.wait()
            await asyncio.sleep(self._flush_seconds)  # let a batch gather
            try:
                await self.flush()
                backoff = 0.1
            except CONNECTION_ERRORS as exc:
                self._rewriting = True
                log.warning(
                    "writing %d results failed (%s); retrying in %.1fs",
                    len(self._buffer),
                    exc,
                    backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def flush(self) -> None:
        async with self._lock:
            while self._buffer:
                batch = self._buffer[: self._max_batch]
                try:
                    written = await queries.finish_many(self._pool, batch)
                except asyncpg.PostgresError as exc:
                    if isinstance(exc, CONNECTION_ERRORS):
                        raise
                    # A statement error (a result Postgres refuses): find the culprit alone.
                    written = await self._one_by_one(batch, exc)
                del self._buffer[: len(batch)]
                self._on_written()
                self.written += len(written)
                if TaskStatus.SUBMITTED in written.values():
                    self._on_requeued()  # a retry: its worker should look when it is due
                for f in batch:
                    if f.task_id not in written:
                        self.stale += 1
                        log.warning(
                            "dropped the result of task %s attempt %d: the attempt is no longer "
                            "running (its lease was resolved or a newer attempt owns it%s)",
                            f.task_id,
                            f.attempt,
                            ", or the write given up on before this one landed"
                            if self._rewriting
                            else "",
                        )
            self._rewriting = False
            self._pending.clear()

    async def _one_by_one(self, batch: list[Finish], error: Exception) -> dict[UUID, TaskStatus]:
        log.warning("writing %d results failed (%s); writing them one by one", len(batch), error)
        written: dict[UUID, TaskStatus] = {}
        for f in batch:
            try:
                written |= await queries.finish_many(self._pool, [f])
            except asyncpg.PostgresError as exc:
                if isinstance(exc, CONNECTION_ERRORS):
                    raise
                refused = Finish(
                    f.task_id,
                    f.attempt,
                    "fail",
                    error=f"could not store the result: {exc}",
                    reason="error",
                )
                written |= await queries.finish_many(self._pool, [refused])
        return written
