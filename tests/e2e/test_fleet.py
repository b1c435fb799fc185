"""The API and 10 worker processes through the CLI: every task runs exactly once, never early."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.fleet import CREATE_EXECUTIONS, Fleet, fetchval, submit, wait_until

pytestmark = pytest.mark.e2e
COUNT = 3000


def test_3000_tasks_run_exactly_once_and_never_early(
    fleet: Fleet, dsn: str, tmp_path: Path
) -> None:
    fetchval(dsn, CREATE_EXECUTIONS)
    url = fleet.api()
    workers = fleet.workers(10)
    ids_file = tmp_path / "ids.txt"
    import time

    t0 = time.monotonic()
    result = submit(
        url,
        "--count",
        str(COUNT),
        "--spread-minutes",
        "0.5",
        "--types",
        "record",
        "--concurrency",
        "32",
        "--ids-file",
        str(ids_file),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    print("submit took", time.monotonic() - t0)
    print(result.stdout[-1500:])
    ids = ids_file.read_text().split()
    assert len(set(ids)) == COUNT

    def all_terminal() -> bool:
        assert all(w.poll() is None for w in workers), "a worker died"
        return (
            fetchval(dsn, "SELECT count(*) FROM tasks WHERE status IN ('done', 'failed')") == COUNT
        )

    # The last task is due 30 s after submission started.
    wait_until(all_terminal, 90, "every task to finish")
    print("done after", time.monotonic() - t0)

    assert fetchval(dsn, "SELECT count(*) FROM tasks WHERE status = 'done'") == COUNT
    assert fetchval(dsn, "SELECT count(*) FROM executions") == COUNT
    assert fetchval(dsn, "SELECT count(DISTINCT task_id) FROM executions") == COUNT, "ran twice"
    assert fetchval(dsn, "SELECT count(*) FROM tasks WHERE attempts <> 1") == 0
    early = fetchval(
        dsn,
        """
        SELECT count(*) FROM executions e JOIN tasks t ON t.id = e.task_id
        WHERE e.started_at < t.execution_time""",
    )
    assert early == 0, "a task started before its execution_time"
    # The work was shared: more than one worker process ran tasks.
    assert fetchval(dsn, "SELECT count(DISTINCT worker_pid) FROM executions") > 1
