"""The API's NOTIFY coalescing: a burst of due-soon inserts, one NOTIFY, the earliest delay."""

from __future__ import annotations

import asyncio

import asyncpg

from api.notifier import DueNotifier


async def listen(dsn: str) -> tuple[asyncpg.Connection, asyncio.Queue[float]]:
    got: asyncio.Queue[float] = asyncio.Queue()
    conn = await asyncpg.connect(dsn)
    await conn.add_listener("duetime_due", lambda *args: got.put_nowait(float(args[3])))
    return conn, got


async def test_a_burst_of_inserts_shares_one_notify_with_the_earliest_delay(pool, dsn) -> None:
    conn, got = await listen(dsn)
    try:
        notifier = DueNotifier(pool, horizon=5.0, interval=0.2)
        notifier.due_in(0.0)  # sent at once: nothing was sent within the interval
        await notifier.close()
        for seconds in (3.0, 1.0, 2.0, 4.0):  # within the next interval: one NOTIFY for all
            notifier.due_in(seconds)
        await notifier.close()
        first = await asyncio.wait_for(got.get(), 5)
        second = await asyncio.wait_for(got.get(), 5)
        assert first == 0.0
        assert 0.7 < second <= 1.0  # the earliest, minus the time it waited to be sent
        assert notifier.sent == 2
        assert got.empty()
    finally:
        await conn.close()


async def test_tasks_beyond_the_horizon_wake_nobody(pool, dsn) -> None:
    conn, got = await listen(dsn)
    try:
        notifier = DueNotifier(pool, horizon=5.0)
        notifier.due_in(60.0)
        await notifier.close()
        assert notifier.sent == 0
        notifier.due_in(4.5)
        await notifier.close()
        assert 4.0 < await asyncio.wait_for(got.get(), 5) <= 4.5
    finally:
        await conn.close()


async def test_the_delay_counts_from_when_the_insert_was_sent(pool, dsn) -> None:
    # The database measured "due in 2 s" at the insert's start, sent 0.5 s ago (a slow insert):
    # the task is due in 1.5 s, and the NOTIFY must say so, not 2 s.
    conn, got = await listen(dsn)
    try:
        notifier = DueNotifier(pool, horizon=5.0)
        notifier.due_in(2.0, since=asyncio.get_running_loop().time() - 0.5)
        await notifier.close()
        assert 1.3 < await asyncio.wait_for(got.get(), 5) <= 1.5
    finally:
        await conn.close()
