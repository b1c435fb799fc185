"""Schedules changed while 3 worker processes run them, each with its own scheduler.

- overlap 'skip' with a handler slower than its one-second cadence: no two runs of the schedule
  ever overlap, and the occurrences that fell while one ran were skipped, not queued;
- PATCH (a new cron and payload) takes effect once the occurrences made ahead (the horizon) have
  run; a pause makes nothing past the horizon of the moment it answered; a DELETE leaves every
  occurrence either run before it or deleted, and a deleted one never runs.

Each bound is a clock reading on the database (the schedulers' own clock), so the test holds on
a fast machine and a slow one alike.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.e2e.fleet import CREATE_EXECUTIONS, Fleet, execute, fetch, fetchval, wait_until

pytestmark = pytest.mark.e2e
WORKERS = 3
HORIZON = timedelta(seconds=10)  # worker/scheduler.py: occurrences are made this far ahead
SLOW = 2.5  # seconds a slow run takes, against a cadence of 1 s


def db_now(dsn: str) -> datetime:
    now = fetchval(dsn, "SELECT now()")
    assert isinstance(now, datetime)
    return now


def tasks_of(dsn: str, name: str) -> list[dict[str, Any]]:
    rows = fetch(
        dsn,
        """SELECT occurrence, status::text, payload->>'v' AS v, (
               SELECT count(*) FROM executions e WHERE e.task_id = t.id) AS runs
           FROM tasks t WHERE schedule = $1 ORDER BY occurrence""",
        name,
    )
    return [dict(r) for r in rows]


def done(dsn: str, name: str, after: datetime | None = None) -> int:
    n = fetchval(
        dsn,
        "SELECT count(*) FROM tasks WHERE schedule = $1 AND status = 'done' "
        "AND ($2::timestamptz IS NULL OR occurrence > $2)",
        name,
        after,
    )
    assert isinstance(n, int)
    return n


def test_overlap_skip_never_runs_two_at_once(fleet: Fleet, dsn: str) -> None:
    execute(dsn, CREATE_EXECUTIONS)
    url = fleet.api()
    workers = fleet.workers(WORKERS)
    fleet.wait_listening(WORKERS)
    body = {
        "name": "slow",
        "task_type": "slow",
        "cron": "* * * * * *",
        "overlap": "skip",
        "payload": {"seconds": SLOW},
    }
    assert (created := httpx.post(f"{url}/schedules", json=body)).status_code == 201, created.text
    wait_until(
        lambda: fleet.alive(workers) and done(dsn, "slow") >= 4, 60, "four slow runs", every=0.5
    )
    runs = fetch(
        dsn,
        """SELECT e.started_at, e.finished_at, t.occurrence FROM executions e
           JOIN tasks t ON t.id = e.task_id WHERE t.schedule = 'slow' ORDER BY e.started_at""",
    )
    finished = [r for r in runs if r["finished_at"] is not None]
    assert len(finished) >= 4
    for before, after in itertools.pairwise(runs):
        assert before["finished_at"] is not None, "a run started while another was running"
        assert after["started_at"] >= before["finished_at"], "two runs overlapped"
    # Each occurrence is made only once its predecessor has finished: SLOW s after it at least.
    made = [t["occurrence"] for t in tasks_of(dsn, "slow")]
    gaps = [b - a for a, b in itertools.pairwise(made)]
    assert all(gap >= timedelta(seconds=SLOW) for gap in gaps), gaps
    assert all(t["runs"] <= 1 for t in tasks_of(dsn, "slow"))


def test_patch_pause_and_delete_take_effect_within_the_horizon(fleet: Fleet, dsn: str) -> None:
    execute(dsn, CREATE_EXECUTIONS)
    url = fleet.api()
    workers = fleet.workers(WORKERS)
    fleet.wait_listening(WORKERS)
    body = {"name": "tick", "task_type": "record", "cron": "* * * * * *", "payload": {"v": 1}}
    assert (created := httpx.post(f"{url}/schedules", json=body)).status_code == 201, created.text
    wait_until(lambda: fleet.alive(workers) and done(dsn, "tick") >= 2, 30, "two runs", every=0.5)

    # PATCH: every other second, another payload. What was made ahead runs as it was made.
    changed = httpx.patch(
        f"{url}/schedules/tick", json={"cron": "*/2 * * * * *", "payload": {"v": 2}}
    )
    assert changed.status_code == 200, changed.text
    patched_at = db_now(dsn)
    wait_until(
        lambda: done(dsn, "tick", after=patched_at + HORIZON) >= 3,
        HORIZON.total_seconds() + 30,
        "three runs of the new cadence",
        every=0.5,
    )
    later = [t for t in tasks_of(dsn, "tick") if t["occurrence"] > patched_at + HORIZON]
    assert all(t["occurrence"].second % 2 == 0 for t in later), later
    assert {t["v"] for t in later} == {"2"}
    assert all(
        b - a == timedelta(seconds=2) for a, b in itertools.pairwise(t["occurrence"] for t in later)
    )

    # Pause: nothing is made past the horizon of the moment it answered.
    assert httpx.post(f"{url}/schedules/tick/pause").status_code == 200
    paused_at = db_now(dsn)
    wait_until(
        lambda: db_now(dsn) > paused_at + HORIZON + timedelta(seconds=3),
        HORIZON.total_seconds() + 30,
        "the paused schedule's horizon to pass",
        every=0.5,
    )
    last = max(t["occurrence"] for t in tasks_of(dsn, "tick"))
    assert last <= paused_at + HORIZON, (last, paused_at)

    # Resume, then delete while occurrences made ahead are still submitted.
    assert httpx.post(f"{url}/schedules/tick/resume").status_code == 200
    wait_until(
        lambda: any(t["status"] == "submitted" for t in tasks_of(dsn, "tick")),
        30,
        "occurrences made ahead after the resume",
        every=0.2,
    )
    deleted = httpx.delete(f"{url}/schedules/tick")
    assert deleted.status_code == 200, deleted.text
    deleted_at = db_now(dsn)
    assert deleted.json()["occurrences_deleted"] >= 1
    wait_until(
        lambda: db_now(dsn) > deleted_at + HORIZON + timedelta(seconds=3),
        HORIZON.total_seconds() + 30,
        "the deleted schedule's horizon to pass",
        every=0.5,
    )
    final = tasks_of(dsn, "tick")
    assert {t["status"] for t in final} <= {"done", "deleted"}, final
    assert all(t["runs"] == 0 for t in final if t["status"] == "deleted"), "a deleted one ran"
    assert all(t["runs"] == 1 for t in final if t["status"] == "done"), "one ran twice"
    assert sum(t["status"] == "deleted" for t in final) == deleted.json()["occurrences_deleted"]
    assert fetchval(dsn, "SELECT count(*) FROM schedules") == 0
    assert fleet.alive(workers)
