"""The path to PostgreSQL freezes for a few seconds: every socket stays open, nothing is forwarded
either way (a stalled network path, proxy or server), then it thaws and what was held is delivered.

The API answers 503 + Retry-After within its statement deadline meanwhile, never holding a request
until the thaw; the workers give up on their statements after the deadline and use new
connections after the thaw; and a claim the workers gave up on that reaches the server late, after
the thaw, is handed back rather than left to expire as lost. Every task runs exactly once.

By construction: tasks fall due every few ms from before the freeze until after it, so each worker
has a claim in flight when the path freezes (held, then delivered late), and a prober sends a GET
and a POST one after the other throughout.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import httpx
import pytest

from tests.e2e.fleet import CREATE_EXECUTIONS, Fleet, count, execute, fetchval, wait_until
from tests.integration.db_switch import DatabaseSwitch

pytestmark = pytest.mark.e2e
WORKERS = 2
DEADLINE = 1.0  # DUETIME_DB_TIMEOUT_SECONDS
MARGIN = 2.0  # scheduling noise on a busy machine, far below the freeze
FREEZE = 6.0
TASKS = 600
SPACING = 0.015  # s between due times: 9 s of tasks, the freeze inside them
ENV = {
    "DUETIME_DB_TIMEOUT_SECONDS": str(DEADLINE),
    # Longer than the freeze and the deadlines around it, so no running attempt is lost; a beat
    # every 4 s hands back late claims well before the lease would expire them.
    "DUETIME_LEASE_SECONDS": "12",
}
INSERT_SPREAD = """
INSERT INTO tasks (id, task_type, execution_time)
SELECT gen_random_uuid(), 'record', now() + make_interval(secs => g * $1)
FROM generate_series(1, $2) AS g
"""


@dataclass
class Probe:
    sent: float  # monotonic
    took: float
    status: int | None  # None: no answer at all (the client gave up)
    retry_after: str | None


class Prober:
    """One client, one request at a time, alternating a GET of a known task and a POST."""

    def __init__(self, url: str, task_id: UUID) -> None:
        self.url = url
        self.task_id = task_id
        self.probes: list[Probe] = []
        self.accepted: list[UUID] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        assert not self._thread.is_alive(), "the prober did not stop"

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=15) as client:
            while not self._stop.is_set():
                for method, path, body in (
                    ("GET", f"/task/{self.task_id}", None),
                    ("POST", "/task", {"task_type": "record", "execution_time": _now()}),
                ):
                    sent = time.monotonic()
                    try:
                        response = client.request(method, path, json=body)
                    except httpx.HTTPError:
                        self.probes.append(Probe(sent, time.monotonic() - sent, None, None))
                        continue
                    took = time.monotonic() - sent
                    if response.status_code == 201:
                        self.accepted.append(UUID(response.json()["task_id"]))
                    self.probes.append(
                        Probe(sent, took, response.status_code, response.headers.get("retry-after"))
                    )
                time.sleep(0.02)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def test_a_frozen_database_path_is_503_in_time_and_loses_and_repeats_nothing(
    dsn: str, tmp_path: Path
) -> None:
    execute(dsn, CREATE_EXECUTIONS)
    with DatabaseSwitch(dsn) as switch:
        fleet = Fleet(switch.dsn, tmp_path)
        fleet.env.update(ENV)
        try:
            run_through_a_freeze(fleet, switch, dsn)
        finally:
            switch.thaw()
            fleet.stop()


def run_through_a_freeze(fleet: Fleet, switch: DatabaseSwitch, dsn: str) -> None:
    url = fleet.api()
    workers = fleet.workers(WORKERS)
    fleet.wait_listening(WORKERS)
    known = UUID(
        httpx.post(f"{url}/task", json={"task_type": "record", "execution_time": _now()}).json()[
            "task_id"
        ]
    )
    execute(dsn, INSERT_SPREAD, SPACING, TASKS)
    with Prober(url, known) as prober:
        # Into the stream of due tasks: workers claiming, the prober answered.
        wait_until(lambda: fetchval(dsn, "SELECT count(*) FROM executions") >= 50, 30, "claims")
        wait_until(lambda: any(p.status == 201 for p in prober.probes), 10, "a 201")
        switch.freeze()
        frozen_at = time.monotonic()
        time.sleep(FREEZE)
        switch.thaw()
        thawed_at = time.monotonic()
        wait_until(
            lambda: any(p.sent > thawed_at and p.status == 201 for p in prober.probes),
            10,
            "POST /task to answer 201 after the thaw",
        )
    back = min(p.sent + p.took for p in prober.probes if p.sent > thawed_at and p.status == 201)
    print(f"API answering 201 again {back - thawed_at:.2f}s after the thaw")
    during = [p for p in prober.probes if frozen_at <= p.sent < thawed_at - DEADLINE - MARGIN]
    print(
        f"{len(prober.probes)} probes, {len(during)} sent while frozen: slowest "
        f"{max(p.took for p in during):.2f}s; {len(prober.accepted)} accepted"
    )

    # While frozen, every request is a 503 with Retry-After, each within the deadline.
    assert len(during) >= 2, "the freeze was probed"
    assert {p.status for p in during} == {503}, [p for p in during if p.status != 503]
    assert all(p.retry_after == "1" for p in during)
    assert all(p.took < DEADLINE + MARGIN for p in prober.probes), "no request is held"

    # Safety: every task (the spread, the probes' accepted ones, any 503 that landed after the
    # thaw) is done, ran once, with its attempt counted once.
    wait_until(
        lambda: fleet.alive(workers) and count(dsn, "status <> 'done'") == 0,
        60,
        "every task to be done",
        every=0.5,
    )
    assert count(dsn, "id = ANY($1)", prober.accepted) == len(set(prober.accepted))
    assert count(dsn, "attempts <> 1") == 0, "an attempt counted twice"
    ran_twice = fetchval(
        dsn,
        "SELECT count(*) FROM (SELECT FROM executions GROUP BY task_id HAVING count(*) > 1) AS d",
    )
    assert ran_twice == 0, "a task ran twice"
    assert fetchval(dsn, "SELECT count(*) FROM executions") == count(dsn), "a task never ran"
    # The claims held on the frozen path landed after the thaw, under the ids the workers had
    # given up on, and were handed back: none waited for its lease to be rescued as lost.
    logs = "".join(fleet.log(f"worker-{i}") for i in range(WORKERS))
    assert "handed back" in logs, logs
    assert "lease expired" not in logs
