"""Tells the workers when a newly inserted task is due soon: at most one NOTIFY per interval.

Inserts report the seconds until their batch's earliest task; due within the wake horizon means a
sleeping worker might not look in time, so it gets a NOTIFY carrying "due in N s" (as measured when
sent). Inserts landing within one interval share one NOTIFY, sent after they committed. A NOTIFY
lost to a crash costs at most the wake horizon: a worker never sleeps longer.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from shared import queries

log = logging.getLogger(__name__)


class DueNotifier:
    def __init__(self, pool: queries.Executor, *, horizon: float, interval: float = 0.01) -> None:
        self._pool = pool
        self._horizon = horizon
        self._interval = interval
        self._due_at: float | None = None  # loop time of the earliest task not yet announced
        self._last_sent = float("-inf")
        self._sender: asyncio.Task[None] | None = None
        self.sent = 0

    def due_in(self, seconds: float, since: float | None = None) -> None:
        """A batch whose earliest task is due in `seconds` (≤ 0: now) has committed.

        `since` is the loop time the seconds count from: taken just before the statement was
        sent, since the database measured them at its start (now()). Counting them from the
        answer instead would make the alarm late by the insert's own duration (about 0.2 s for
        5,000 rows), and every task due in that time would start that late.
        """
        if seconds > self._horizon:
            return  # a worker's timer looks again before then
        loop = asyncio.get_running_loop()
        due_at = (loop.time() if since is None else since) + seconds
        self._due_at = due_at if self._due_at is None else min(self._due_at, due_at)
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send())

    async def _send(self) -> None:
        loop = asyncio.get_running_loop()
        while self._due_at is not None:
            wait = self._last_sent + self._interval - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)  # inserts meanwhile join this NOTIFY
            due_at, self._due_at = self._due_at, None
            if due_at is None:
                return
            self._last_sent = loop.time()
            try:
                await queries.notify_due(self._pool, due_at - loop.time())
                self.sent += 1
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("NOTIFY failed (%s); workers find the task on their timer", exc)

    async def close(self) -> None:
        if self._sender is not None:
            await self._sender
