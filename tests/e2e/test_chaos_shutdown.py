"""SIGTERM: the worker stops claiming at once, lets its running attempts finish within --grace
(renewing their leases meanwhile), writes their results and exits; attempts still running when the
grace runs out are left to their leases, which another worker's rescuer resolves. A second SIGTERM
exits at once. A `watcher` worker with no handlers of the tests' types runs only the rescuer."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from tests.e2e.fleet import (
    CREATE_EXECUTIONS,
    Fleet,
    count,
    execute,
    fetch,
    insert_tasks,
    wait_exit,
    wait_until,
)

pytestmark = pytest.mark.e2e
LEASE = 2.0
RESCUE = 0.5
SLACK = 3.0
FAST = {"DUETIME_LEASE_SECONDS": str(LEASE), "DUETIME_RESCUE_INTERVAL_SECONDS": str(RESCUE)}
NO_HANDLERS = {"DUETIME_IMPORTS": ""}  # claims only built-in types: none of these tests' tasks


def executions(dsn: str) -> list[tuple[int, bool]]:
    """(worker pid, whether the run finished) of every recorded run."""
    rows = fetch(dsn, "SELECT worker_pid, finished_at IS NOT NULL AS ended FROM executions")
    return [(r["worker_pid"], r["ended"]) for r in rows]


def test_sigterm_finishes_running_attempts_within_grace_and_starts_no_more(
    fleet: Fleet, dsn: str
) -> None:
    execute(dsn, CREATE_EXECUTIONS)
    grace, run, slots, total = 20.0, 2 * LEASE, 4, 10
    watcher = fleet.worker(**FAST, **NO_HANDLERS)  # would rescue a lease left to lapse in grace
    stopping = fleet.worker("--grace", str(grace), DUETIME_CONCURRENCY=str(slots), **FAST)
    fleet.wait_listening(2)
    ids = insert_tasks(dsn, "slow", total, payload={"seconds": run})
    wait_until(
        lambda: fleet.alive([stopping]) and len(executions(dsn)) == slots, 30, "a full worker"
    )

    stopping.send_signal(signal.SIGTERM)
    took = wait_exit(stopping, grace, "the worker to exit once its attempts are done")
    print(f"exited {took:.2f}s after SIGTERM")
    assert stopping.returncode == 0, fleet.log_of(stopping)
    # Its attempts ran to their end and were written; it started nothing after the signal.
    assert executions(dsn) == [(stopping.pid, True)] * slots
    assert count(dsn, "status = 'done' AND attempts = 1") == slots
    assert count(dsn, "status = 'submitted' AND attempts = 0") == total - slots
    assert took < grace

    fleet.alive([watcher])
    after = fleet.worker(**FAST)  # the rest is anyone's
    wait_until(
        lambda: fleet.alive([after]) and count(dsn, "status = 'done'") == total,
        30,
        "the tasks the stopped worker never started to be done by another",
    )
    assert count(dsn, "id = ANY($1) AND attempts = 1", ids) == total
    assert sorted(executions(dsn)) == sorted(
        [(stopping.pid, True)] * slots + [(after.pid, True)] * (total - slots)
    )


def test_sigterm_leaves_attempts_longer_than_grace_to_their_leases(fleet: Fleet, dsn: str) -> None:
    execute(dsn, CREATE_EXECUTIONS)
    grace, n = 1.0, 3
    watcher = fleet.worker(**FAST, **NO_HANDLERS)
    stopping = fleet.worker("--grace", str(grace), **FAST)
    fleet.wait_listening(2)
    insert_tasks(dsn, "slow", n, payload={"seconds": 60})
    wait_until(lambda: fleet.alive([stopping]) and len(executions(dsn)) == n, 30, "the attempts")

    stopping.send_signal(signal.SIGTERM)
    took = wait_exit(stopping, grace + SLACK, "the worker to exit once its grace is over")
    exited_at = time.monotonic()
    print(f"exited {took:.2f}s after SIGTERM (grace {grace}s)")
    assert took >= grace * 0.9, "it gave its attempts their grace"
    # Started attempts are neither released nor failed by the worker: their leases decide.
    assert count(dsn, "status = 'started_executing' AND attempts = 1") == n

    wait_until(
        lambda: fleet.alive([watcher]) and count(dsn, "status = 'failed'") == n,
        LEASE + RESCUE + SLACK,
        "the watcher's rescuer to resolve the abandoned leases",
    )
    print(f"rescued {time.monotonic() - exited_at:.2f}s after the exit")
    assert count(dsn, "status = 'failed' AND error_reason = 'lost' AND attempts = 1") == n
    assert executions(dsn) == [(stopping.pid, False)] * n


def test_a_second_sigterm_exits_at_once(fleet: Fleet, dsn: str) -> None:
    execute(dsn, CREATE_EXECUTIONS)
    grace = 30.0
    stopping = fleet.worker("--grace", str(grace), **FAST)
    fleet.wait_listening(1)
    insert_tasks(dsn, "slow", 2, payload={"seconds": 60})
    wait_until(lambda: fleet.alive([stopping]) and len(executions(dsn)) == 2, 30, "the attempts")

    stopping.send_signal(signal.SIGTERM)
    with pytest.raises(subprocess.TimeoutExpired):
        stopping.wait(1.0)  # the first one waits for the running attempts
    stopping.send_signal(signal.SIGTERM)
    took = wait_exit(stopping, 2.0, "the worker to exit at the second SIGTERM")
    print(f"exited {took:.2f}s after the second SIGTERM")
