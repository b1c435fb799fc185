"""Makes the tasks of recurring schedules, a short horizon ahead, on every worker, with no leader.

Each pass leases the schedules whose next occurrence falls within the horizon (SKIP LOCKED, so
schedulers side by side share them out), plans each one's occurrences (shared.schedule.plan: the
catch-up and overlap rules), and inserts them in one fenced statement that also moves the
schedule's next_at on. No schedule state lives in a process: a scheduler that dies mid-pass
leaves its schedules to another once their lease runs out, and the unique (schedule, occurrence)
key makes each occurrence one task whichever scheduler gets there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

import asyncpg

from shared import queries
from shared.ids import new_task_id
from shared.schedule import Cadence, ScheduleError, plan
from worker.service import Every, Service

log = logging.getLogger(__name__)
HORIZON_SECONDS = 10.0  # occurrences are made this far ahead: a one-second cron starts on time
LEASE_SECONDS = 30.0


class Scheduler(Service):
    name = "creating scheduled tasks"

    def __init__(
        self,
        pool: queries.Executor,
        *,
        interval: float = 1.0,
        horizon: float = HORIZON_SECONDS,
        batch: int = 100,
        on_made: Callable[[float], None] = lambda due_in: None,
    ) -> None:
        self._pool = pool
        self.every = Every(interval)
        self._horizon = horizon
        self._batch = batch
        self._on_made = on_made  # a task due in N s was made (the worker's own claim loop)
        self.made = 0

    async def run_once(self, now: datetime | None = None) -> int:
        """One pass over every schedule due within the horizon; the tasks made."""
        made = 0
        earliest: float | None = None
        while True:
            rows = await queries.take_due_schedules(
                self._pool, self._batch, self._horizon, LEASE_SECONDS, now
            )
            for row in rows:
                result = await self._materialize(row)
                made += result.made
                if result.due_in is not None:
                    earliest = result.due_in if earliest is None else min(earliest, result.due_in)
            if len(rows) < self._batch:
                break
        if earliest is not None:
            await queries.notify_due(self._pool, earliest)  # the workers that run these types
            self._on_made(earliest)
        self.made += made
        return made

    async def _materialize(self, row: asyncpg.Record) -> queries.Materialized:
        try:
            planned = plan(
                Cadence.of_row(row),
                row["next_at"],
                row["db_now"],
                horizon=self._horizon,
                overlap=row["overlap"],
                catch_up=row["catch_up"],
                catch_up_limit=row["catch_up_limit"],
            )
        except ScheduleError as exc:  # written by hand around the API: stop it, say why
            log.error(
                "schedule %s cannot run (%s); it is left without a next run", row["name"], exc
            )
            return await queries.materialize(
                self._pool, row["name"], row["lease_until"], [], [], None
            )
        ids = [new_task_id() for _ in planned.occurrences]
        return await queries.materialize(
            self._pool, row["name"], row["lease_until"], planned.occurrences, ids, planned.next_at
        )

    def summary(self, did: int) -> str | None:
        return f"made {did} scheduled tasks" if did else None
