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

log = logging.getLogger(__name__)
CHANNEL = "duetime_due"


class Waker:
    def __init__(self, dsn: str, on_due: Callable[[float], None]) -> None:
        self._dsn = dsn
        self._on_due = on_due
        self.connected = asyncio.Event()

    def _on_notify(self, conn: Any, pid: int, channel: str, payload: object) -> None:
        try:
            due_in = float(str(payload))
        except ValueError:
            due_in = 0.0  # a NOTIFY from elsewhere without our payload: look now
        self._on_due(due_in)

    async def run(self) -> None:
        backoff = 0.1
        while True:
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(
                    self._dsn, server_settings={"application_name": "duetime-worker-listen"}
                )
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("LISTEN connection failed (%s); retrying in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            try:
                conn.add_termination_listener(lambda _, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, self._on_notify)
                backoff = 0.1
                self.connected.set()
                self._on_due(0.0)
                await lost.wait()
                log.warning("LISTEN connection lost; reconnecting")
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("LISTEN failed (%s)", exc)
            finally:
                self.connected.clear()
                if not conn.is_closed():
                    conn.terminate()
