"""The claim loop: claim as many due tasks as there are free slots, run them, sleep until due.

One statement claims a batch and says when the next task is due (shared/sql: task_claim_due). The
loop sleeps until then, never longer than the wake horizon: no blind fixed poll. A NOTIFY ("a task
is due in N s") only moves that alarm earlier, so a task due later wakes nobody now; a finished
attempt wakes the loop to refill its slot if work is due.

Beside it run the completer (writes outcomes) and the services (worker/service.py): the
heartbeat (renews leases; a lost one cancels its attempt), the hand-back of abandoned claims, the
rescuer (resolves other workers' expired leases), the pruner (deletes finished tasks past their
retention) and the waker (LISTEN).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import uuid
from typing import NamedTuple
from uuid import UUID

import asyncpg
import msgspec

from shared import db, queries
from shared.registry import Registered, TaskContext
from shared.settings import Settings
from shared.task import ClaimedTask
from worker.abandoned import AbandonedClaims
from worker.completer import Completer
from worker.executor import Executor
from worker.heartbeat import Heartbeat
from worker.pruner import Pruner
from worker.rescuer import Rescuer
from worker.scheduler import Scheduler
from worker.service import run_service
from worker.waker import Waker

log = logging.getLogger(__name__)
_decoder = msgspec.json.Decoder(dict)
FINAL_FLUSH_SECONDS = 5.0  # at exit, how long to keep trying to write results to a lost database


class Running(NamedTuple):
    claimed: ClaimedTask
    ctx: TaskContext
    task: asyncio.Task[None]


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Worker:
    def __init__(self, settings: Settings, dsn: str, handlers: dict[str, Registered]) -> None:
        self.settings = settings
        self.dsn = dsn
        self.id = new_worker_id()
        self.executor = Executor(handlers, cancel_grace=settings.cancel_grace_seconds)
        self.running: dict[UUID, Running] = {}
        self.lost = 0  # attempts whose lease the rescuer took while this worker ran them
        self.handed_back = 0
        self.claimed = 0
        self.claims = 0  # claim statements run
        self.empty_claims = 0
        self.throttled = 0  # times unwritten results, not running attempts, held off a claim
        self.idle_sleeps = 0  # times the loop went to sleep with free slots (tests wait on it)
        self.waker: Waker | None = None
        self._wake = asyncio.Event()
        self._due_at = 0.0  # loop time when work may next be due; in the past: claim now
        self._stopping = asyncio.Event()
        # Claims that failed: they may commit yet. Handed back as often as leases are renewed.
        self.abandoned = AbandonedClaims(
            interval=settings.lease_seconds / 3, on_handed_back=self._on_handed_back
        )
        self._claim_seq = 0  # each claim records its own id, f"{self.id}#{n}"
        self._hand_back_due = False  # a claim broke: hand back what it recorded before the next

    def stop(self) -> None:
        """Stop claiming now; run() then lets running attempts finish (see run's grace)."""
        self._stopping.set()
        self._wake.set()

    async def run(self, *, grace: float = 30.0) -> None:
        settings = self.settings
        pool = await db.open_pool(
            self.dsn,
            # A claim, heartbeat or result write that gets no answer in time is given up on, its
            # connection dropped and the statement retried on a new one (see AbandonedClaims).
            deadline=settings.db_timeout_seconds,
            timeout=settings.db_timeout_seconds,  # connecting, within each acquire's deadline
            size=settings.worker_pool_size,
            min_size=0,  # start (and keep running) while the database is down: claims retry
            application_name="duetime-worker",
            server_settings=db.WORKER_SERVER_SETTINGS,
        )
        completer = Completer(
            pool,
            flush_seconds=settings.completion_flush_ms / 1000,
            # A retry went back to submitted: claim now, and the claim says when it is due.
            on_requeued=lambda: self._on_due(0.0),
            on_written=self._wake.set,  # results written may free slots (see _claim_loop)
        )
        heartbeat = Heartbeat(
            pool,
            self.id,
            lease_seconds=settings.lease_seconds,
            held=lambda: (
                [(r.claimed.task_id, r.claimed.attempt) for r in self.running.values()]
                + completer.buffered
            ),
            on_lost=self._lose,
        )
        rescuer = Rescuer(pool, interval=settings.rescue_interval_seconds)
        pruner = Pruner(
            pool,
            interval=settings.prune_interval_seconds,
            retention_done=settings.retention_done_seconds,
            retention_failed=settings.retention_failed_seconds,
        )
        # Every worker makes the tasks of recurring schedules: leaderless, see worker/scheduler.py.
        scheduler = Scheduler(pool, on_made=self._on_due)
        waker = self.waker = Waker(self.dsn, self._on_due)
        self.abandoned.db = pool
        services = [
            asyncio.create_task(completer.run()),
            *(
                asyncio.create_task(run_service(service))
                for service in (heartbeat, self.abandoned, rescuer, pruner, scheduler, waker)
            ),
        ]
        log.info(
            "worker %s running %s, concurrency %d",
            self.id,
            ", ".join(self.executor.task_types),
            settings.concurrency,
        )
        try:
            await self._claim_loop(pool, completer)
            if self.running:
                log.info("waiting up to %.0fs for %d running attempts", grace, len(self.running))
                await asyncio.wait([r.task for r in self.running.values()], timeout=grace)
            await self._final_flush(completer)
            await self._release(pool, completer)
        finally:
            # Whatever still runs is left to its lease: the rescuer of another worker decides.
            for running in self.running.values():
                running.ctx.cancelled.set()
                running.task.cancel()
            for service in services:
                service.cancel()
            for service in services:
                with contextlib.suppress(asyncio.CancelledError):
                    await service
            await pool.close()
            log.info(
                "worker %s stopped: %d claimed in %d claims (%d empty), %d results written, "
                "%d dropped as stale, %d leases lost, %d rescued, %d handed back, %d left running, "
                "%d pruned",
                self.id,
                self.claimed,
                self.claims,
                self.empty_claims,
                completer.written,
                completer.stale,
                self.lost,
                rescuer.rescued,
                self.handed_back,
                len(self.running),
                sum(pruner.pruned.values()),
            )

    async def _final_flush(self, completer: Completer) -> None:
        deadline = asyncio.get_running_loop().time() + FINAL_FLUSH_SECONDS
        while True:
            try:
                await completer.flush()
                return
            except db.DB_ERRORS as exc:
                if asyncio.get_running_loop().time() > deadline:
                    log.warning(
                        "exiting with %d results unwritten (%s): their leases will expire",
                        len(completer.buffered),
                        exc,
                    )
                    return
                await asyncio.sleep(0.2)

    async def _release(self, pool: queries.Executor, completer: Completer) -> None:
        """At exit: hand back whatever is recorded under this worker and not running here (a
        claim cut off)."""
        keep = [*self.running, *(task_id for task_id, _ in completer.buffered)]
        with contextlib.suppress(*db.DB_ERRORS):
            self._handed_back(await queries.hand_back(pool, self.id, keep))

    def _on_handed_back(self, ids: list[UUID]) -> None:
        self._handed_back(ids)
        self._on_due(0.0)  # they may be due: claim them (or what is due instead) now

    def _handed_back(self, ids: list[UUID]) -> None:
        if ids:
            self.handed_back += len(ids)
            log.warning("handed back %d claimed attempts that never reached this worker", len(ids))

    def _lose(self, task_id: UUID, attempt: int) -> None:
        """The heartbeat found this attempt resolved by the rescuer: stop it, drop its result."""
        running = self.running.get(task_id)
        if running is None or running.claimed.attempt != attempt:
            return  # it finished meanwhile; its result is fenced like any other
        self.lost += 1
        log.warning(
            "task %s attempt %d: lease lost (the rescuer resolved it); cancelling the handler",
            task_id,
            attempt,
        )
        running.ctx.cancelled.set()
        running.task.cancel()

    def _on_due(self, seconds: float) -> None:
        """Something is due in `seconds` (a NOTIFY, or the LISTEN connection coming back)."""
        due_at = asyncio.get_running_loop().time() + max(seconds, 0.0)
        if due_at < self._due_at:
            self._due_at = due_at
            self._wake.set()

    async def _claim_loop(self, pool: queries.Executor, completer: Completer) -> None:
        settings = self.settings
        types = self.executor.task_types
        loop = asyncio.get_running_loop()
        backoff = 0.1
        while not self._stopping.is_set():
            # Clear before deciding: a set event returns from wait() without yielding, and the loop
            # would spin. Whatever set it is re-read below (slots, _due_at).
            self._wake.clear()
            # Results not yet written count against the slots beyond one concurrency's worth:
            # when writing falls behind (a slow database), claiming slows down with it instead
            # of piling up running rows and ever larger result batches.
            backlog = max(0, completer.unwritten - settings.concurrency)
            free = settings.concurrency - len(self.running) - backlog
            if free <= 0:
                if len(self.running) < settings.concurrency:
                    self.throttled += 1  # held off by the backlog alone
                await self._sleep(None)  # until an attempt finishes or results are written
                continue
            wait = self._due_at - loop.time()
            if wait > 0:
                self.idle_sleeps += 1
                await self._sleep(wait)
                continue
            # Until the claim answers, the alarm is unset: a NOTIFY for a task committed after the
            # claim's snapshot sets it meanwhile, and the min() below keeps it.
            self._due_at = math.inf
            self._claim_seq += 1
            claim_id = f"{self.id}#{self._claim_seq}"
            try:
                if self._hand_back_due:
                    await self.abandoned.run_once()
                    self._hand_back_due = False
                sent = loop.time()  # next_due_in counts from the claim's start, not its answer
                claim = await queries.claim_due(pool, free, claim_id, settings.lease_seconds, types)
                backoff = 0.1
            except db.DB_ERRORS as exc:
                # The claim may have committed with its answer lost on the way, or may commit
                # later: its rows are handed back before the next claim and on every heartbeat.
                self.abandoned.add(claim_id)
                self._hand_back_due = True
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
                # snapshot: woken early, the claim finds nothing and says again), at most the
                # horizon.
                horizon = settings.wake_horizon_seconds
                nap = horizon if claim.next_due_in is None else min(claim.next_due_in, horizon)
                self._due_at = min(self._due_at, sent + nap)

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
        ctx = self.executor.context(claimed)
        task = asyncio.create_task(self._attempt(claimed, ctx, completer))
        self.running[claimed.task_id] = Running(claimed, ctx, task)

    async def _attempt(self, claimed: ClaimedTask, ctx: TaskContext, completer: Completer) -> None:
        try:
            outcome = await self.executor.run(claimed, ctx)
        except asyncio.CancelledError:
            return  # lease lost, or the worker exits: the attempt is the rescuer's to resolve
        else:
            completer.add(outcome)
        finally:
            self.running.pop(claimed.task_id, None)
            self._wake.set()
