"""Wakes the claim loop on NOTIFY duetime_due, over one dedicated LISTEN connection.

If the connection drops, the loop still wakes on its timer (never later than the wake horizon);
this re-listens with backoff and wakes the loop once it is back, in case a notification was missed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg

log = logging.getLogger(__name__)
CHANNEL = "duetime_due"


class Waker:
    def __init__(self, dsn: str, wake: asyncio.Event) -> None:
        self._dsn = dsn
        self._wake = wake
        self.connected = asyncio.Event()

    def _on_notify(self, *_: Any) -> None:
        self._wake.set()

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
                self._wake.set()
                await lost.wait()
                log.warning("LISTEN connection lost; reconnecting")
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("LISTEN failed (%s)", exc)
            finally:
                self.connected.clear()
                if not conn.is_closed():
                    conn.terminate()
