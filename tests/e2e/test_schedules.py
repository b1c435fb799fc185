"""A one-second schedule run by 10 worker processes, each running the scheduler with no leader:
exactly one task per second, none missing, none doubled, none started early; then every worker
SIGKILLed for longer than the schedulers' horizon and restarted: the missed occurrences are caught
up as `catch_up: latest` says (only the most recent one), and the cadence goes on."""

from __future__ import annotations

import itertools
import signal
from datetime import datetime, timedelta

import httpx
import pytest

from tests.e2e.fleet import CREATE_EXECUTIONS, Fleet, execute, fetch, fetchval, wait_until

pytestmark = pytest.mark.e2e
WORKERS = 10
SECONDS = 30
HORIZON = 10.0  # worker/scheduler.py: occurrences are made this far ahead


def done_occurrences(dsn: str) -> list[datetime]:
    rows = fetch(
        dsn,
        "SELECT occurrence FROM tasks WHERE schedule = 'tick' AND status = 'done' ORDER BY 1",
    )
    return [r["occurrence"] for r in rows]


def test_one_task_per_second_with_ten_schedulers_and_a_fleet_down(fleet: Fleet, dsn: str) -> None:
    execute(dsn, CREATE_EXECUTIONS)
    url = fleet.api()
    workers = fleet.workers(WORKERS)
    fleet.wait_listening(WORKERS)
    created = httpx.post(
        f"{url}/schedules", json={"name": "tick", "task_type": "record", "cron": "* * * * * *"}
    )
    assert created.status_code == 201, created.text
    first = datetime.fromisoformat(created.json()["next_runs"][0])
    last = first + timedelta(seconds=SECONDS - 1)
    wait_until(
        lambda: fleet.alive(workers) and len(done_occurrences(dsn)) >= SECONDS,
        SECONDS + 30,
        f"{SECONDS} occurrences to be done",
        every=0.5,
    )
    window = [o for o in done_occurrences(dsn) if o <= last]
    assert window == [first + timedelta(seconds=i) for i in range(SECONDS)], "one a second"
    runs = fetch(
        dsn,
        """SELECT t.occurrence, count(e.*) AS runs, min(e.started_at) - t.occurrence AS lag
           FROM tasks t JOIN executions e ON e.task_id = t.id
           WHERE t.schedule = 'tick' AND t.occurrence <= $1 GROUP BY t.occurrence""",
        last,
    )
    assert len(runs) == SECONDS
    assert all(r["runs"] == 1 for r in runs), "an occurrence ran twice"
    assert all(r["lag"] >= timedelta(0) for r in runs), "an occurrence started early"
    print(f"start lag max {max(r['lag'] for r in runs).total_seconds() * 1000:.0f} ms")

    # Every worker killed; down for longer than the horizon, so occurrences are missed.
    for worker in workers:
        worker.send_signal(signal.SIGKILL)
    for worker in workers:
        worker.wait(10)
    made_up_to = fetchval(dsn, "SELECT max(occurrence) FROM tasks WHERE schedule = 'tick'")
    assert isinstance(made_up_to, datetime)
    wait_until(
        lambda: fetchval(dsn, "SELECT now()") > made_up_to + timedelta(seconds=5),  # type: ignore[operator]
        HORIZON + 20,
        "five occurrences to be missed",
        every=0.5,
    )
    restarted_at = fetchval(dsn, "SELECT now()")
    assert isinstance(restarted_at, datetime)
    workers = fleet.workers(WORKERS)
    wait_until(
        lambda: (
            fleet.alive(workers)
            and fetchval(
                dsn,
                "SELECT count(*) FROM tasks WHERE schedule = 'tick' AND status = 'done' "
                "AND occurrence > $1",
                restarted_at,
            )
            >= 5
        ),
        60,
        "the cadence to go on after the restart",
        every=0.5,
    )
    rows = fetch(
        dsn,
        "SELECT occurrence FROM tasks WHERE schedule = 'tick' AND occurrence > $1 ORDER BY 1",
        made_up_to,
    )
    after: list[datetime] = [r["occurrence"] for r in rows]
    # catch_up latest: of the occurrences due while no scheduler ran (five or more), at most one
    # is made (the latest before the first pass; it may fall just after restarted_at) …
    assert len([o for o in after if o <= restarted_at]) <= 1, after
    # … so the seconds from the kill to the last one made hold at least four without a task.
    assert (after[-1] - made_up_to).total_seconds() - len(after) >= 4, after
    gaps = [b - a for a, b in itertools.pairwise(after)]
    assert gaps[-4:] == [timedelta(seconds=1)] * 4
    ran_twice = fetchval(
        dsn,
        "SELECT count(*) FROM (SELECT FROM executions GROUP BY task_id HAVING count(*) > 1) AS d",
    )
    assert ran_twice == 0, "a task ran twice"
