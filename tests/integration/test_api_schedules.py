"""The schedules API: create (and refuse, naming the field, writing nothing), read, list, preview
with `next` (DST included), delete with its occurrences; and the scheduler making their tasks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import asyncpg
import pytest

from tests.integration.test_api import Client, assert_error
from worker.scheduler import Scheduler

BASE = {"name": "nightly", "task_type": "noop", "cron": "0 30 2 * * *"}


async def schedules(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    return [dict(r) for r in await pool.fetch("SELECT * FROM schedules ORDER BY name")]


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def test_create_answers_the_schedule_and_its_next_runs(client: Client, pool) -> None:
    body = {**BASE, "timezone": "Europe/Berlin", "payload": {"report": "daily"}, "max_attempts": 3}
    response = await client.post("/schedules", json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["name"] == "nightly"
    assert created["payload"] == {"report": "daily"}
    assert (created["max_attempts"], created["backoff"]) == (3, "exponential")  # resolved
    runs = [parse(r) for r in created["next_runs"]]
    assert len(runs) == 5
    assert all(r.tzinfo is not None and r.utcoffset().total_seconds() == 0 for r in runs)
    assert all(created["next_runs"][i].endswith("Z") for i in range(5))
    assert runs == sorted(runs)
    assert runs[0] > datetime.now(UTC)
    [row] = await schedules(pool)
    assert row["next_at"] == runs[0]
    again = await client.post("/schedules", json=body)
    assert_error(again, 409, "name")
    assert len(await schedules(pool)) == 1


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        ({"cron": "61 * * * *"}, 400, "cron"),
        ({"cron": "* * * *"}, 400, "cron"),
        ({"interval": "PT30S"}, 400, "cron"),  # both
        ({"cron": None}, 400, "cron"),  # neither
        ({"cron": None, "interval": "P1M"}, 400, "interval"),
        ({"cron": None, "interval": 0.5}, 400, "interval"),
        ({"timezone": "Mars/Olympus"}, 400, "timezone"),
        ({"start_at": "2030-01-02T00:00:00Z", "end_at": "2030-01-01T00:00:00Z"}, 400, "end_at"),
        ({"start_at": "2030-01-02T00:00:00"}, 400, "start_at"),
        ({"task_type": "nosuch"}, 422, "task_type"),
        ({"name": "has space"}, 400, "name"),
        ({"overlap": "sometimes"}, 400, "overlap"),
        ({"catch_up_limit": 0}, 400, "catch_up_limit"),
        ({"max_attempts": 0}, 400, "max_attempts"),
        ({"backoff_base_seconds": 60, "backoff_cap_seconds": 1}, 400, "backoff_cap_seconds"),
        ({"colour": "red"}, 400, "colour"),
    ],
)
async def test_bad_schedules_are_refused_naming_the_field(
    client: Client, pool, change: dict[str, Any], status: int, field: str
) -> None:
    body = {k: v for k, v in {**BASE, **change}.items() if v is not None}
    assert_error(await client.post("/schedules", json=body), status, field)
    assert await schedules(pool) == []


async def test_get_list_and_unknown(client: Client) -> None:
    for name in ("a", "b", "c"):
        response = await client.post("/schedules", json={**BASE, "name": name})
        assert response.status_code == 201, response.text
    got = await client.get("/schedules/b")
    assert (got.status_code, got.json()["name"]) == (200, "b")
    assert_error(await client.get("/schedules/nope"), 404)
    first = (await client.get("/schedules?limit=2")).json()
    assert [s["name"] for s in first["schedules"]] == ["a", "b"]
    rest = (await client.get(f"/schedules?limit=2&cursor={first['next_cursor']}")).json()
    assert ([s["name"] for s in rest["schedules"]], rest["next_cursor"]) == (["c"], None)


async def test_next_previews_dst_by_the_code_that_makes_the_tasks(client: Client) -> None:
    body = {**BASE, "timezone": "Europe/Berlin", "enabled": False}
    assert (await client.post("/schedules", json=body)).status_code == 201
    response = await client.get(
        "/schedules/nightly/next", params={"after": "2027-03-27T12:00:00Z", "count": 3}
    )
    assert response.status_code == 200, response.text
    assert response.json()["runs"] == [
        "2027-03-28T01:00:00Z",  # 02:30 does not exist that night: the end of the gap
        "2027-03-29T00:30:00Z",
        "2027-03-30T00:30:00Z",
    ]
    autumn = await client.get(
        "/schedules/nightly/next", params={"after": "2027-10-30T12:00:00Z", "count": 2}
    )
    assert autumn.json()["runs"] == ["2027-10-31T00:30:00Z", "2027-11-01T01:30:00Z"]
    assert_error(await client.get("/schedules/nightly/next?count=101"), 400)
    assert_error(
        await client.get("/schedules/nightly/next?after=2027-01-01T00:00:00"), 400, "after"
    )


async def test_the_scheduler_makes_the_tasks_and_delete_stops_them(client: Client, pool) -> None:
    created = await client.post("/schedules", json={**BASE, "name": "tick", "cron": "* * * * * *"})
    assert created.status_code == 201, created.text
    assert await Scheduler(pool, horizon=5).run_once() >= 5
    task_id = await pool.fetchval("SELECT id FROM tasks WHERE schedule = 'tick' LIMIT 1")
    task = (await client.get(f"/task/{task_id}")).json()
    assert (task["schedule"], task["task_type"], task["status"]) == ("tick", "noop", "submitted")
    submitted = await pool.fetchval("SELECT count(*) FROM tasks WHERE status = 'submitted'")
    deleted = await client.delete("/schedules/tick")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"name": "tick", "occurrences_deleted": submitted}
    assert await pool.fetchval("SELECT count(*) FROM tasks WHERE status = 'submitted'") == 0
    assert await Scheduler(pool, horizon=5).run_once() == 0  # nothing left to make
    assert_error(await client.delete("/schedules/tick"), 404)


async def test_pause_stops_making_occurrences_and_resume_catches_up(client: Client, pool) -> None:
    assert (
        await client.post("/schedules", json={**BASE, "cron": "* * * * * *"})
    ).status_code == 201
    paused = await client.post("/schedules/nightly/pause")
    assert (paused.status_code, paused.json()["enabled"]) == (200, False)
    assert await Scheduler(pool, horizon=5).run_once() == 0  # paused: nothing made
    # Paused long enough to miss occurrences (moved back rather than waited for).
    await pool.execute("UPDATE schedules SET next_at = now() - interval '1 minute'")
    resumed = await client.post("/schedules/nightly/resume")
    assert (resumed.status_code, resumed.json()["enabled"]) == (200, True)
    before = await pool.fetchval("SELECT now()")
    made = await Scheduler(pool, horizon=5).run_once()
    after = await pool.fetchval("SELECT now()")
    runs = [r[0] for r in await pool.fetch("SELECT occurrence FROM tasks ORDER BY occurrence")]
    assert made == len(runs) >= 1 + 4  # the latest missed and what falls within the horizon
    # catch_up latest: of the ~60 missed only the newest, the one in the second the pass ran in
    # (bounded by clock readings around the pass, never by how fast it ran).
    assert before - timedelta(seconds=1) < runs[0] <= after
    assert all(b - a == timedelta(seconds=1) for a, b in pairwise(runs))
    for verb in ("pause", "resume", "trigger"):
        assert_error(await client.post(f"/schedules/nope/{verb}"), 404)


async def test_trigger_makes_one_task_due_now_outside_the_cadence(client: Client, pool) -> None:
    assert (await client.post("/schedules", json={**BASE, "payload": {"k": 1}})).status_code == 201
    triggered = await client.post("/schedules/nightly/trigger")
    assert triggered.status_code == 201, triggered.text
    task = (await client.get(f"/task/{triggered.json()['task_id']}")).json()
    assert (task["schedule"], task["status"], task["payload"]) == ("nightly", "submitted", {"k": 1})
    due = datetime.fromisoformat(task["execution_time"])
    assert abs((due - datetime.now(UTC)).total_seconds()) < 5


async def test_a_schedules_tasks_are_listed_by_its_name(client: Client, pool) -> None:
    for name in ("a", "b"):
        body = {**BASE, "name": name, "cron": "* * * * * *"}
        assert (await client.post("/schedules", json=body)).status_code == 201
    await Scheduler(pool, horizon=5).run_once()
    await client.post("/task", json={"task_type": "noop", "execution_time": "2030-01-01T00:00:00Z"})
    made = [r[0] for r in await pool.fetch("SELECT id FROM tasks WHERE schedule = 'b' ORDER BY id")]
    assert len(made) >= 5
    seen: list[str] = []
    cursor: str | None = None
    while True:  # two at a time, to the end
        params = {"schedule": "b", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/task", params=params)).json()
        assert {t["schedule"] for t in page["tasks"]} <= {"b"}
        seen += [t["task_id"] for t in page["tasks"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [str(i) for i in made]
    # The filters combine; a deleted schedule's tasks are still found by its name.
    assert (await client.delete(f"/task/{made[0]}")).status_code == 200
    deleted = (await client.get("/task", params={"schedule": "b", "status": "deleted"})).json()
    assert [t["task_id"] for t in deleted["tasks"]] == [str(made[0])]
    assert (await client.delete("/schedules/b")).status_code == 200
    after = (await client.get("/task", params={"schedule": "b", "limit": 1000})).json()
    assert [t["task_id"] for t in after["tasks"]] == [str(i) for i in made]
    assert {t["status"] for t in after["tasks"]} == {"deleted"}
    assert (await client.get("/task", params={"schedule": "nope"})).json()["tasks"] == []
    assert_error(await client.get("/task", params={"schedule": "no spaces"}), 400, "schedule")
