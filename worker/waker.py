"""Tells the claim loop when a new task is due, from NOTIFY duetime_due on a dedicated connection.

Each notification carries "due in N seconds". If the connection drops, the loop still wakes on its
timer (never later than the wake horizon); this re-listens with backoff and, once back, reports
"due now" in case a notification was missed while it was away.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import asyncpg

from worker.service import Every, Service

log = logging.getLogger(__name__)
CHANNEL = "duetime_due"


class Waker(Service):
    name = "LISTEN"
    # A pass is one LISTEN session: the next starts as soon as one ends; a connection that fails
    # is retried after 0.1 s, doubling up to 5 s.
    every = Every(0.0, jitter=0.0, retry=0.1, max_retry=5.0)

    def __init__(self, dsn: str, on_due: Callable[[float], None]) -> None:
        self._dsn = dsn
        self._on_due = on_due
        self.connected = asyncio.Event()

    def _on_due_notify(self, conn: Any, pid: int, channel: str, payload: object) -> None:
        try:
            due_in = float(str(payload))
        except ValueError:
            due_in = 0.0  # a NOTIFY from elsewhere without our payload: look now
        self._on_due(due_in)

    async def run_once(self) -> None:
        """Connect, LISTEN, report "due now" (a notification may have been missed meanwhile)
        and wait until the connection is lost."""
        lost = asyncio.Event()
        conn = await asyncpg.connect(
            self._dsn, server_settings={"application_name": "duetime-worker-listen"}
        )
        try:
            conn.add_termination_listener(lambda _: lost.set())
            await conn.add_listener(CHANNEL, self._on_due_notify)
            self.connected.set()
            self._on_due(0.0)
            await lost.wait()
            log.warning("LISTEN connection lost; reconnecting")
        finally:
            self.connected.clear()
            if not conn.is_closed():
                conn.terminate()
