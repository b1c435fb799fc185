"""The claim loop: claim as many due tasks as there are free slots, run them, sleep until due.

One statement claims a batch (shared/sql: task_claim_due). When fewer rows come back than there
were free slots, the loop asks for the next due time and sleeps until then, or until a NOTIFY or a
finished attempt wakes it, but never longer than the wake horizon: no blind fixed poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid

import asyncpg
import msgspec

from shared import db, queries
from shared.registry import Registered
from shared.settings import Settings
from shared.task import ClaimedTask
from worker.completer import Completer
from worker.executor import Executor
from worker.waker import Waker

log = logging.getLogger(__name__)
_decoder = msgspec.json.Decoder(dict)
# When due rows exist that this worker could not claim (another worker holds them), look again
# this soon: their claim is committing and they may come back (a claim that fails rolls back).
_CONTENDED_RETRY = 0.005
DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Worker:
    def __init__(self, settings: Settings, dsn: str, handlers: dict[str, Registered]) -> None:
        self.settings = settings
        self.dsn = dsn
        self.id = new_worker_id()
        self.executor = Executor(handlers, threads=settings.concurrency)
        self.running: set[asyncio.Task[None]] = set()
        self.claimed = 0
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Stop claiming now; run() then lets running attempts finish (see run's grace)."""
        self._stopping.set()
        self._wake.set()

    async def run(self, *, grace: float = 30.0) -> None:
        pool = await db.create_pool(
            self.dsn,
            size=4,
            application_name="duetime-worker",
            server_settings=db.WORKER_SERVER_SETTINGS,
        )
        completer = Completer(pool, flush_seconds=self.settings.completion_flush_ms / 1000)
        waker = Waker(self.dsn, self._wake)
        services = [asyncio.create_task(completer.run()), asyncio.create_task(waker.run())]
        log.info(
            "worker %s running %s, concurrency %d",
            self.id,
            ", ".join(self.executor.task_types),
            self.settings.concurrency,
        )
        try:
            await self._claim_loop(pool, completer)
            if self.running:
                log.info("waiting up to %.0fs for %d running attempts", grace, len(self.running))
                await asyncio.wait(self.running, timeout=grace)
            await completer.flush()
        finally:
            for task in [*services, *self.running]:
                task.cancel()
            for task in services:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self.executor.close()
            await pool.close()
            log.info(
                "worker %s stopped: %d claimed, %d results written",
                self.id,
                self.claimed,
                completer.written,
            )

    async def _claim_loop(self, pool: asyncpg.Pool, completer: Completer) -> None:
        settings = self.settings
        types = self.executor.task_types
        backoff = 0.1
        while not self._stopping.is_set():
            free = settings.concurrency - len(self.running)
            if free <= 0:
                await self._sleep(None)
                continue
            self._wake.clear()
            try:
                rows = await queries.claim_due(pool, free, self.id, settings.lease_seconds, types)
                for row in rows:
                    self._start(row, completer)
                if len(rows) == free:
                    continue
                delay = await queries.next_due(pool, types)
                backoff = 0.1
            except DB_ERRORS as exc:
                log.warning("claim failed (%s); retrying in %.1fs", exc, backoff)
                await self._sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            horizon = settings.wake_horizon_seconds
            if delay is None:
                timeout = horizon
            elif delay <= 0:
                timeout = _CONTENDED_RETRY
            else:
                timeout = min(delay, horizon)
            await self._sleep(timeout)

    async def _sleep(self, seconds: float | None) -> None:
        """Until woken (NOTIFY, a finished attempt, stop) or `seconds` pass."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    def _start(self, row: asyncpg.Record, completer: Completer) -> None:
        self.claimed += 1
        claimed = ClaimedTask(
            task_id=row["id"],
            task_type=row["task_type"],
            attempt=row["attempts"],
            execution_time=row["execution_time"],
            payload=_decoder.decode(row["payload"]),
        )
        task = asyncio.create_task(self._attempt(claimed, completer))
        self.running.add(task)

    async def _attempt(self, claimed: ClaimedTask, completer: Completer) -> None:
        try:
            completer.add(await self.executor.run(claimed))
        finally:
            self.running.discard(asyncio.current_task())
            self._wake.set()
