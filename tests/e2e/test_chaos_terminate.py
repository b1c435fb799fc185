"""pg_terminate_backend on every duetime connection, three times during a run of 3,000 tasks:
the workers reconnect (LISTEN too) and every task is done exactly once, none lost."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.e2e.fleet import (
    CREATE_EXECUTIONS,
    Fleet,
    count,
    execute,
    fetchval,
    insert_tasks,
    listen_pids,
    terminate_duetime_backends,
    wait_until,
)

pytestmark = pytest.mark.e2e
WORKERS = 4
BATCHES = 6  # of 500 tasks, falling due one second apart
COUNT = 500 * BATCHES


def test_terminating_every_connection_three_times_loses_nothing(fleet: Fleet, dsn: str) -> None:
    execute(dsn, CREATE_EXECUTIONS)
    workers = fleet.workers(WORKERS)
    fleet.wait_listening(WORKERS)
    for second in range(BATCHES):
        insert_tasks(dsn, "record", COUNT // BATCHES, due_in=second)

    def done(at_least: float) -> Callable[[], bool]:
        return lambda: fleet.alive(workers) and count(dsn, "status = 'done'") >= at_least

    def listening_anew(cut: set[int]) -> Callable[[], bool]:
        def check() -> bool:
            listen = listen_pids(dsn)
            return len(listen) == WORKERS and not listen & cut

        return check

    cuts = []
    for progress in (0.2, 0.45, 0.7):  # cut while tasks are running, with work left to do
        wait_until(done(progress * COUNT), 30, f"{progress:.0%} of the tasks to be done")
        listen_before = listen_pids(dsn)
        cut = terminate_duetime_backends(dsn)
        cuts.append(len(cut))
        assert listen_before <= cut, "each cut hits at least every LISTEN connection"
        # Every worker listens again, on a new connection, before the next cut.
        wait_until(listening_anew(cut), 30, "every worker to listen again")
    print("connections cut each time:", cuts)

    wait_until(
        lambda: fleet.alive(workers) and count(dsn, "status = 'done'") == COUNT,
        60,
        "every task to be done",
    )
    assert count(dsn, "attempts <> 1") == 0
    assert fetchval(dsn, "SELECT count(*) FROM executions") == COUNT, "a task ran twice"
    assert fetchval(dsn, "SELECT count(DISTINCT task_id) FROM executions") == COUNT
