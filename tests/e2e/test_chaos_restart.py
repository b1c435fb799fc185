"""PostgreSQL stops for a few seconds in the middle of a run and starts again on the same data dir:
the API answers 503 with Retry-After meanwhile and 201 again after, the workers reconnect by
themselves, and every task the API accepted runs exactly once. The test brings its own server."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import httpx
import pytest

from shared import db, migrate
from shared.embedded import EmbeddedPostgres
from tests.e2e.fleet import (
    CREATE_EXECUTIONS,
    Fleet,
    count,
    execute,
    fetch,
    fetchval,
    own_server,
    wait_until,
)

pytestmark = pytest.mark.e2e
WORKERS = 3
OUTAGE = 3.0  # seconds the server stays down
NAP = 1.5  # a nap running when the server stops ends during the outage
ENV = {"DUETIME_LEASE_SECONDS": "10"}  # longer than the outage: no running attempt is lost


class Submitter:
    """POSTs tasks due now from a few senders in a thread, until stopped, half `record`, half
    `nap` (NAP s: some run across the outage); keeps every answer: accepted ids, the
    Retry-After of each 503, anything else."""

    def __init__(self, url: str, senders: int = 2, pause: float = 0.02) -> None:
        self.url = url
        self.senders = senders
        self.pause = pause  # between one sender's requests: ~50 requests/s each
        self.accepted: list[UUID] = []
        self.retry_after: list[str | None] = []  # one per 503
        self.other: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> Submitter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        assert not self._thread.is_alive(), "the submitter did not stop"

    async def _run(self) -> None:
        await asyncio.gather(*(self._send() for _ in range(self.senders)))

    async def _send(self) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=15) as client:
            for i in itertools.count():
                if self._stop.is_set():
                    break
                body: dict[str, object] = {
                    "task_type": "record",
                    "execution_time": datetime.now(UTC).isoformat(),
                }
                if i % 2:
                    body |= {"task_type": "nap", "payload": {"seconds": NAP}}
                try:
                    response = await client.post("/task", json=body)
                except httpx.HTTPError as exc:
                    self.other.append(repr(exc))
                    continue
                if response.status_code == 201:
                    self.accepted.append(UUID(response.json()["task_id"]))
                elif response.status_code == 503:
                    self.retry_after.append(response.headers.get("retry-after"))
                else:
                    self.other.append(f"{response.status_code} {response.text[:300]}")
                await asyncio.sleep(self.pause)


def test_postgres_restart_mid_run_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    with own_server() as server:
        asyncio.run(db.ensure_database(server.dsn(), "duetime"))
        dsn = db.with_database(server.dsn(), "duetime")
        migrate.upgrade(dsn)
        execute(dsn, CREATE_EXECUTIONS)
        fleet = Fleet(dsn, tmp_path)
        try:
            run_through_a_restart(fleet, server, dsn)
        finally:
            fleet.stop()


def run_through_a_restart(fleet: Fleet, server: EmbeddedPostgres, dsn: str) -> None:
    url = fleet.api()
    workers = fleet.workers(WORKERS, **ENV)
    fleet.wait_listening(WORKERS)
    with Submitter(url) as sub:
        wait_until(
            lambda: len(sub.accepted) >= 50 and count(dsn, "status = 'started_executing'") > 0,
            30,
            "50 tasks accepted, some running",
        )
        running = fetch(dsn, "SELECT id FROM tasks WHERE status = 'started_executing'")
        server.stop()
        down_at = time.monotonic()
        wait_until(lambda: len(sub.retry_after) >= 10, 20, "POST /task to answer 503")
        time.sleep(max(0.0, down_at + OUTAGE - time.monotonic()))  # the outage's length
        before_restart = len(sub.accepted)
        server.start()
        up_at = time.monotonic()
        wait_until(
            lambda: len(sub.accepted) >= before_restart + 50, 30, "POST /task to answer 201 again"
        )
        print(f"API accepting again {time.monotonic() - up_at:.2f}s after the restart")
    fleet.wait_listening(WORKERS, within=30)  # the LISTEN connections came back too
    print(f"{len(sub.accepted)} accepted, {len(sub.retry_after)} answered 503")
    print(f"{len(running)} were running when the server stopped")

    assert sub.other == [], "every answer is 201 or 503"
    assert all(h is not None and int(h) > 0 for h in sub.retry_after), set(sub.retry_after)
    accepted = set(sub.accepted)
    cut_off = [r["id"] for r in running]  # their results waited in the workers through the outage
    assert len(accepted) == len(sub.accepted)
    wait_until(
        lambda: fleet.alive(workers) and count(dsn, "status <> 'done'") == 0,
        60,
        "every task to be done",
    )
    # A 503 can hide an insert that committed (the connection died before the answer): such a
    # task exists and runs too, so the table may hold more than the accepted ids, never fewer.
    assert count(dsn, "id = ANY($1)", list(accepted)) == len(accepted), "an accepted task is lost"
    assert count(dsn, "attempts <> 1") == 0
    assert count(dsn, "id = ANY($1) AND status = 'done' AND result IS NOT NULL", cut_off) == len(
        cut_off
    )
    ran_twice = fetchval(
        dsn,
        "SELECT count(*) FROM (SELECT FROM executions GROUP BY task_id HAVING count(*) > 1) AS d",
    )
    assert ran_twice == 0, "a task ran twice"
    assert fetchval(dsn, "SELECT count(*) FROM executions") == count(dsn), "a task never ran"
