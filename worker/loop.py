"""The claim loop: claim as many due tasks as there are free slots, run them, sleep until due.

One statement claims a batch and says when the next task is due (shared/sql: task_claim_due). The
loop sleeps until then, never longer than the wake horizon: no blind fixed poll. A NOTIFY ("a task
is due in N s") only moves that alarm earlier, so a task due later wakes nobody now; a finished
attempt wakes the loop to refill its slot if work is due.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
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
        self.claims = 0  # claim statements run
        self.empty_claims = 0
        self.idle_sleeps = 0  # times the loop went to sleep with free slots (tests wait on it)
        self.waker: Waker | None = None
        self._wake = asyncio.Event()
        self._due_at = 0.0  # loop time when work may next be due; in the past: claim now
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
        waker = self.waker = Waker(self.dsn, self._on_due)
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
                "worker %s stopped: %d claimed in %d claims (%d empty), %d results written",
                self.id,
                self.claimed,
                self.claims,
                self.empty_claims,
                completer.written,
            )

    def _on_due(self, seconds: float) -> None:
        """Something is due in `seconds` (a NOTIFY, or the LISTEN connection coming back)."""
        due_at = asyncio.get_running_loop().time() + max(seconds, 0.0)
        if due_at < self._due_at:
            self._due_at = due_at
            self._wake.set()

    async def _claim_loop(self, pool: asyncpg.Pool, completer: Completer) -> None:
        settings = self.settings
        types = self.executor.task_types
        loop = asyncio.get_running_loop()
        backoff = 0.1
        while not self._stopping.is_set():
            # Clear before deciding: a set event returns from wait() without yielding, and the loop
            # would spin. Whatever set it is re-read below (slots, _due_at).
            self._wake.clear()
            free = settings.concurrency - len(self.running)
            if free <= 0:
                await self._sleep(None)  # until an attempt finishes
                continue
            wait = self._due_at - loop.time()
            if wait > 0:
                self.idle_sleeps += 1
                await self._sleep(wait)
                continue
            # Until the claim answers, the alarm is unset: a NOTIFY for a task committed after the
            # claim's snapshot sets it meanwhile, and the min() below keeps it.
            self._due_at = math.inf
            try:
                claim = await queries.claim_due(pool, free, self.id, settings.lease_seconds, types)
                backoff = 0.1
            except DB_ERRORS as exc:
                log.warning("claim failed (%s); retrying in %.1fs", exc, backoff)
                self._due_at = min(self._due_at, loop.time() + backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            self.claims += 1
            self.empty_claims += not claim.rows
            for row in claim.rows:
                self._start(row, completer)
            if len(claim.rows) == free:
                self._due_at = 0.0  # more may be due: claim again as soon as slots free up
            else:
                # Nothing more is due now; sleep until the next task is (measured from the claim's
                # snapshot, so never early), at most the horizon.
                horizon = settings.wake_horizon_seconds
                nap = horizon if claim.next_due_in is None else min(claim.next_due_in, horizon)
                self._due_at = min(self._due_at, loop.time() + nap)

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
            timeout_seconds=row["timeout_seconds"],
        )
        task = asyncio.create_task(self._attempt(claimed, completer))
        self.running.add(task)

    async def _attempt(self, claimed: ClaimedTask, completer: Completer) -> None:
        try:
            completer.add(await self.executor.run(claimed))
        finally:
            self.running.discard(asyncio.current_task())
            self._wake.set()
