"""A worker paused (SIGSTOP) past its lease comes back with a finished result in hand: the
rescuer has meanwhile given the task (retry on loss) to another worker, whose attempt 2 is the
one `done`. The paused worker's late completion of attempt 1 is fenced off: the row does not move.
"""

from __future__ import annotations

import os
import signal

import pytest

from tests.e2e.fleet import (
    CREATE_EXECUTIONS,
    Fleet,
    execute,
    fetchval,
    insert_tasks,
    runs,
    task_row,
    wait_exit,
    wait_until,
)

pytestmark = pytest.mark.e2e
LEASE = 2.0
RESCUE = 0.5
FAST = {"DUETIME_LEASE_SECONDS": str(LEASE), "DUETIME_RESCUE_INTERVAL_SECONDS": str(RESCUE)}
FIRST_RUN = 3.0  # seconds attempt 1 sleeps: it ends while its worker is paused


def test_a_paused_worker_s_stale_completion_is_rejected(fleet: Fleet, dsn: str) -> None:
    execute(dsn, CREATE_EXECUTIONS)
    workers = fleet.workers(2, **FAST)
    fleet.wait_listening(2)
    # slow_sync runs in a thread deaf to cancellation: once resumed, attempt 1 always completes.
    [task_id] = insert_tasks(
        dsn,
        "slow_sync",
        payload={"seconds": [FIRST_RUN, 0.2]},
        retry_on_loss=True,
        max_attempts=2,
        backoff="fixed",
        backoff_base_seconds=0,
    )
    wait_until(lambda: fleet.alive(workers) and len(runs(dsn, task_id)) == 1, 30, "attempt 1")
    [(_, pid)] = runs(dsn, task_id)
    [paused] = [w for w in workers if w.pid == pid]
    [other] = [w for w in workers if w is not paused]
    os.kill(paused.pid, signal.SIGSTOP)
    try:
        finished = "SELECT finished_at FROM executions WHERE task_id = $1 AND attempt = 1"
        assert fetchval(dsn, finished, task_id) is None, "paused too late: attempt 1 had ended"

        # The lease runs out; the other worker's rescuer puts the task back, the other runs it.
        wait_until(
            lambda: fleet.alive([other]) and task_row(dsn, task_id)["status"] == "done",
            LEASE + RESCUE + 10,
            "attempt 2 to be done by the other worker",
        )
        before = task_row(dsn, task_id)
        assert before["attempts"] == 2
        assert before["result"] == {"pid": other.pid, "attempt": 2}
        assert runs(dsn, task_id) == [(1, paused.pid), (2, other.pid)]
        # Resume only once attempt 1's sleep is over, so the paused worker wakes to a result.
        wait_until(
            lambda: (
                fetchval(
                    dsn,
                    "SELECT now() - started_at > make_interval(secs => $2) FROM executions "
                    "WHERE task_id = $1 AND attempt = 1",
                    task_id,
                    FIRST_RUN + 0.5,
                )
                is True
            ),
            FIRST_RUN + 5,
            "attempt 1's sleep to be over",
        )
    finally:
        os.kill(paused.pid, signal.SIGCONT)

    wait_until(
        lambda: fleet.alive([paused]) and fetchval(dsn, finished, task_id) is not None,
        10,
        "the resumed attempt 1 to complete its run",
    )
    # Its worker's shutdown flushes every result it holds: after it, the stale one was tried.
    paused.send_signal(signal.SIGTERM)
    wait_exit(paused, 30, "the resumed worker to stop")
    after = task_row(dsn, task_id)
    assert after == before, "the stale completion of attempt 1 changed the row"
    assert after["status"] == "done"
    assert runs(dsn, task_id) == [(1, paused.pid), (2, other.pid)], "each attempt ran once"
    # It noticed (a WARNING: its result dropped, or its lease found lost), not just failed to write.
    assert f"task {task_id} attempt 1" in fleet.log_of(paused)
