"""Timeouts: an async handler that sleeps forever is cancelled, and a sync one spinning on the CPU
deaf to ctx.cancelled is abandoned after the cancel grace; both tasks end failed with reason
`timeout` within timeout + grace, and the worker goes on claiming other work."""

from __future__ import annotations

import pytest

from tests.e2e.fleet import (
    CREATE_EXECUTIONS,
    Fleet,
    count,
    execute,
    insert_tasks,
    runs,
    task_row,
    wait_until,
)

pytestmark = pytest.mark.e2e
TIMEOUT = 1.0
CANCEL_GRACE = 1.0
SLACK = 2.0
ENV = {
    "DUETIME_CANCEL_GRACE_SECONDS": str(CANCEL_GRACE),
    "DUETIME_LEASE_SECONDS": "2",
    "DUETIME_RESCUE_INTERVAL_SECONDS": "0.5",
}


def test_a_sleeping_and_a_spinning_handler_are_both_timed_out(fleet: Fleet, dsn: str) -> None:
    execute(dsn, CREATE_EXECUTIONS)
    worker = fleet.worker(**ENV)
    fleet.wait_listening(1)
    [sleeper] = insert_tasks(dsn, "forever", timeout_seconds=TIMEOUT)
    # Spins past timeout + grace, then ends: the worker process can exit after the test.
    [spinner] = insert_tasks(dsn, "busy", payload={"seconds": 6}, timeout_seconds=TIMEOUT)

    wait_until(
        lambda: fleet.alive([worker]) and count(dsn, "status IN ('done', 'failed')") == 2,
        TIMEOUT + CANCEL_GRACE + SLACK + 5,  # + start lag
        "both attempts to end",
    )
    for task_id in (sleeper, spinner):
        row = task_row(dsn, task_id)
        took = (row["finished_at"] - row["started_at"]).total_seconds()
        print(f"{row['task_type']}: failed {took:.2f}s after it started")
        assert row["status"] == "failed"
        assert row["error_reason"] == "timeout"
        assert row["attempts"] == 1
        assert TIMEOUT <= took <= TIMEOUT + CANCEL_GRACE + SLACK
        assert runs(dsn, task_id) == [(1, worker.pid)]

    # The abandoned thread may still be spinning; the worker claims and runs new work anyway.
    ids = insert_tasks(dsn, "record", 50)
    wait_until(
        lambda: fleet.alive([worker]) and count(dsn, "id = ANY($1) AND status = 'done'", ids) == 50,
        10,
        "the worker to run new tasks after the timeouts",
    )
