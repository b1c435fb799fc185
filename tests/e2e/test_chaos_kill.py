"""SIGKILL a worker mid-attempt: its attempt resolves by its task's policy within lease + rescue
interval (failed with reason `lost`, or run again elsewhere with retry on loss), and no other task
notices: the survivor runs every other task exactly once, even ones longer than a lease."""

from __future__ import annotations

import subprocess
import time
from typing import Any, NamedTuple
from uuid import UUID

import pytest

from tests.e2e.fleet import (
    CREATE_EXECUTIONS,
    Fleet,
    count,
    execute,
    fetch,
    fetchval,
    insert_tasks,
    runs,
    task_row,
    wait_until,
)

pytestmark = pytest.mark.e2e
LEASE = 2.0
RESCUE = 0.5
SLACK = 3.0  # scheduling noise on a loaded 2-core machine
FAST = {"DUETIME_LEASE_SECONDS": str(LEASE), "DUETIME_RESCUE_INTERVAL_SECONDS": str(RESCUE)}
LONG = 2.5 * LEASE  # bystanders that outlive a lease: only heartbeats keep them


class Killed(NamedTuple):
    victim: UUID
    doomed: subprocess.Popen[bytes]
    survivor: subprocess.Popen[bytes]
    killed_at: float  # time.monotonic()
    bystanders: list[UUID]


def kill_mid_attempt(fleet: Fleet, dsn: str, **policy: Any) -> Killed:
    """A worker with room for one attempt (the victim's) is SIGKILLed while it runs; a second
    worker runs bystanders due before and after the kill, some of them longer than a lease."""
    execute(dsn, CREATE_EXECUTIONS)
    doomed = fleet.worker(DUETIME_CONCURRENCY="1", **FAST)
    fleet.wait_listening(1)
    # Attempt 1 would run for a minute; attempt 2, if the policy allows one, is quick.
    [victim] = insert_tasks(dsn, "slow", payload={"seconds": [60, 0.2]}, **policy)
    wait_until(
        lambda: fleet.alive([doomed]) and runs(dsn, victim) == [(1, doomed.pid)],
        30,
        "the victim's first attempt to start",
    )
    survivor = fleet.worker(**FAST)
    fleet.wait_listening(2)
    long = insert_tasks(dsn, "slow", 4, payload={"seconds": LONG})
    quick = insert_tasks(dsn, "record", 200)
    later = insert_tasks(dsn, "record", 200, due_in=LEASE / 2)  # due about when it is killed
    wait_until(
        lambda: fleet.alive([survivor]) and ran(dsn, long) == len(long),
        30,
        "the long bystanders to start",
    )
    doomed.kill()
    killed_at = time.monotonic()
    doomed.wait(10)
    return Killed(victim, doomed, survivor, killed_at, long + quick + later)


def ran(dsn: str, ids: list[UUID]) -> int:
    """How many of these tasks have run at least once."""
    query = "SELECT count(DISTINCT task_id) FROM executions WHERE task_id = ANY($1)"
    n = fetchval(dsn, query, ids)
    assert isinstance(n, int)
    return n


def assert_bystanders_untouched(fleet: Fleet, dsn: str, killed: Killed) -> None:
    ids = killed.bystanders
    wait_until(
        lambda: (
            fleet.alive([killed.survivor])
            and count(dsn, "id = ANY($1) AND status IN ('done', 'failed')", ids) == len(ids)
        ),
        30,
        "every bystander to finish",
    )
    assert count(dsn, "id = ANY($1) AND status = 'done' AND attempts = 1", ids) == len(ids)
    rows = fetch(
        dsn,
        """SELECT task_id, count(*) AS n, min(attempt) AS attempt, min(worker_pid) AS pid
           FROM executions WHERE task_id = ANY($1) GROUP BY task_id""",
        ids,
    )
    assert len(rows) == len(ids), "a bystander never ran"
    assert all(r["n"] == 1 and r["attempt"] == 1 for r in rows), "a bystander ran twice"
    assert {r["pid"] for r in rows} == {killed.survivor.pid}


def test_sigkill_mid_attempt_fails_the_task_as_lost_and_nothing_else(
    fleet: Fleet, dsn: str
) -> None:
    killed = kill_mid_attempt(fleet, dsn)  # the default policy: at most one start, ever

    wait_until(
        lambda: task_row(dsn, killed.victim)["status"] == "failed",
        LEASE + RESCUE + SLACK,
        "the rescuer to fail the lost attempt (within lease + rescue interval)",
    )
    print(f"victim failed {time.monotonic() - killed.killed_at:.2f}s after the kill")
    row = task_row(dsn, killed.victim)
    assert row["error_reason"] == "lost"
    assert row["attempts"] == 1
    assert row["lease_expires_at"] is None
    assert_bystanders_untouched(fleet, dsn, killed)
    assert runs(dsn, killed.victim) == [(1, killed.doomed.pid)], "never started again"
    assert task_row(dsn, killed.victim)["status"] == "failed", "and it stays failed"


def test_sigkill_mid_attempt_with_retry_on_loss_runs_attempt_2_elsewhere(
    fleet: Fleet, dsn: str
) -> None:
    killed = kill_mid_attempt(
        fleet, dsn, retry_on_loss=True, max_attempts=2, backoff="fixed", backoff_base_seconds=0
    )

    wait_until(
        lambda: task_row(dsn, killed.victim)["attempts"] == 2,
        LEASE + RESCUE + SLACK,
        "the rescuer to put the lost attempt back and another worker to start attempt 2",
    )
    print(f"attempt 2 started {time.monotonic() - killed.killed_at:.2f}s after the kill")
    wait_until(lambda: task_row(dsn, killed.victim)["status"] == "done", 10, "attempt 2 to finish")
    row = task_row(dsn, killed.victim)
    lag = (row["started_at"] - row["execution_time"]).total_seconds()
    print(f"attempt 2 started {lag:.2f}s after the rescuer put the task back")
    assert row["attempts"] == 2
    assert row["result"] == {"pid": killed.survivor.pid, "attempt": 2}
    assert (row["error_reason"], row["last_error"]) == (None, None), "a success clears the loss"
    assert runs(dsn, killed.victim) == [(1, killed.doomed.pid), (2, killed.survivor.pid)]
    assert_bystanders_untouched(fleet, dsn, killed)
