"""20 worker processes, 20,000 tasks whose attempts fail at random (30%), up to 3 attempts each:
every task ends terminal, no attempt runs twice, each task's attempts match its recorded runs, and
each task's fate is exactly the one its pseudo-random draws (fleet.flaky_fails) decree."""

from __future__ import annotations

import os
import time
from uuid import UUID

import pytest

from tests.e2e.draws import FLAKY_FAILURE_RATE, flaky_fails
from tests.e2e.fleet import (
    CREATE_EXECUTIONS,
    Fleet,
    execute,
    fetch,
    fetchrow,
    fetchval,
    insert_tasks,
    wait_until,
)

pytestmark = pytest.mark.e2e
WORKERS = 20
COUNT = 20_000
MAX_ATTEMPTS = 3
# Connections: 20 x (2 pooled + 1 LISTEN + 1 for the handler's side table) = 80, within a
# server's max_connections=100 (CI's PostgreSQL 15) with room for the test's own.
CONNECTIONS = WORKERS * (2 + 1 + 1)
ENV = {
    "DUETIME_WORKER_POOL_SIZE": "2",
    "E2E_HANDLER_POOL_SIZE": "1",
    # 6,000 failing attempts would each log a traceback: CPU this 2-core test has no room for.
    "DUETIME_LOG_LEVEL": os.environ.get("E2E_LOG_LEVEL", "ERROR"),
}


def fate(task_id: UUID) -> tuple[str, int]:
    """(status, attempts) the task must end with: done at its first attempt that does not fail."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        if not flaky_fails(task_id, attempt):
            return "done", attempt
    return "failed", MAX_ATTEMPTS


def test_20_workers_20000_flaky_tasks_every_attempt_runs_once(fleet: Fleet, dsn: str) -> None:
    execute(dsn, CREATE_EXECUTIONS)
    t0 = time.monotonic()
    workers = fleet.workers(WORKERS, **ENV)
    fleet.wait_listening(WORKERS, within=60)
    print(f"{WORKERS} workers up in {time.monotonic() - t0:.1f}s")

    t1 = time.monotonic()
    ids = insert_tasks(
        dsn,
        "flaky",
        COUNT,
        max_attempts=MAX_ATTEMPTS,
        backoff="exponential",
        backoff_base_seconds=0.05,
        backoff_cap_seconds=0.2,
    )
    peak = 0  # the fleet's connections (workers' and handlers'), at their most

    def all_terminal() -> bool:
        nonlocal peak
        row = fetchrow(
            dsn,
            """SELECT (SELECT count(*) FROM tasks WHERE status IN ('done', 'failed')) AS ended,
                      (SELECT count(*) FROM pg_stat_activity
                       WHERE datname = current_database()
                         AND (application_name LIKE 'duetime%'
                              OR application_name = 'e2e-handler')) AS connections""",
        )
        assert row is not None
        peak = max(peak, row["connections"])
        return fleet.alive(workers) and row["ended"] == COUNT

    wait_until(all_terminal, 75, "every task to end done or failed", every=0.5)
    print(f"{COUNT} tasks terminal in {time.monotonic() - t1:.1f}s; {peak} connections at most")
    assert peak <= CONNECTIONS, "the fleet went over its connection budget"

    duplicates = fetchval(
        dsn,
        """SELECT count(*) FROM (SELECT 1 FROM executions GROUP BY task_id, attempt
                                 HAVING count(*) > 1) AS d""",
    )
    assert duplicates == 0, "an attempt ran twice"
    mismatched = fetchval(
        dsn,
        """SELECT count(*) FROM tasks t
           LEFT JOIN (SELECT task_id, count(*) AS n, max(attempt) AS last
                      FROM executions GROUP BY task_id) e ON e.task_id = t.id
           WHERE t.attempts <> coalesce(e.n, 0) OR t.attempts <> coalesce(e.last, 0)""",
    )
    assert mismatched == 0, "a task's attempts differ from its recorded runs"

    rows = fetch(dsn, "SELECT id, status, attempts, error_reason FROM tasks")
    got = {r["id"]: (r["status"], r["attempts"]) for r in rows}
    assert got.keys() == set(ids)
    wrong = {i: (got[i], fate(i)) for i in ids if got[i] != fate(i)}
    sample = list(wrong.items())[:5]
    assert not wrong, f"{len(wrong)} tasks ended otherwise than their draws say: {sample}"
    failed = [r for r in rows if r["status"] == "failed"]
    assert failed, f"at a {FLAKY_FAILURE_RATE:.0%} failure rate some tasks fail 3 times"
    assert {r["error_reason"] for r in failed} == {"error"}
    retried = sum(1 for r in rows if r["status"] == "done" and r["attempts"] > 1)
    assert retried, "some tasks must succeed on a retry"
    pids = fetchval(dsn, "SELECT count(DISTINCT worker_pid) FROM executions")
    assert isinstance(pids, int)
    print(
        f"done {COUNT - len(failed)} ({retried} after a retry), failed {len(failed)}; "
        f"{pids} workers ran attempts"
    )
    assert pids >= WORKERS // 2, "the work was shared"
