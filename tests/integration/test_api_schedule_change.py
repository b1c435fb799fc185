"""PATCH /schedules/{name}: any field but the name, checked as a new schedule's (a refusal names
the field and changes nothing); it applies to occurrences not yet made, and fences a pass in
flight."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest

from shared import queries
from shared.ids import new_task_id
from tests.integration.test_api import Client, assert_error
from worker.scheduler import Scheduler

BASE = {"name": "tick", "task_type": "noop", "cron": "* * * * * *", "payload": {"v": 1}}


async def create(client: Client, **fields: Any) -> dict[str, Any]:
    response = await client.post("/schedules", json={**BASE, **fields})
    assert response.status_code == 201, response.text
    return dict(response.json())


async def occurrences(pool) -> list[datetime]:
    return [r[0] for r in await pool.fetch("SELECT occurrence FROM tasks ORDER BY occurrence")]


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        ({"cron": "61 * * * *"}, 400, "cron"),
        ({"cron": "* * * * *", "interval": 60}, 400, "cron"),  # both
        ({"cron": None}, 400, "cron"),  # a cadence cannot be cleared, only replaced
        ({"interval": "P1M"}, 400, "interval"),
        ({"timezone": "Mars/Olympus"}, 400, "timezone"),
        ({"end_at": "2020-01-01T00:00:00Z", "start_at": "2021-01-01T00:00:00Z"}, 400, "end_at"),
        ({"end_at": "2030-01-01T00:00:00"}, 400, "end_at"),
        ({"task_type": "nosuch"}, 422, "task_type"),
        ({"overlap": "sometimes"}, 400, "overlap"),
        ({"catch_up_limit": 0}, 400, "catch_up_limit"),
        ({"backoff_base_seconds": 100, "backoff_cap_seconds": 10}, 400, "backoff_cap_seconds"),
        ({"name": "other"}, 400, "name"),  # the name is the schedule; it cannot change
        ({"payload": {"s": "x" * 70_000}}, 413, "payload"),
    ],
)
async def test_a_bad_change_is_refused_naming_the_field_and_changes_nothing(
    client: Client, pool, change: dict[str, Any], status: int, field: str
) -> None:
    await create(client)
    before = dict(await pool.fetchrow("SELECT * FROM schedules"))
    assert_error(await client.patch("/schedules/tick", json=change), status, field)
    assert dict(await pool.fetchrow("SELECT * FROM schedules")) == before


async def test_an_empty_change_and_an_unknown_schedule(client: Client) -> None:
    await create(client)
    for empty in ({}, {"max_attempts": None}):
        response = await client.patch("/schedules/tick", json=empty)
        assert response.status_code == 400, response.text
        assert "nothing to change" in response.json()["detail"]
    assert_error(await client.patch("/schedules/nope", json={"enabled": False}), 404)


async def test_a_new_cadence_applies_after_the_occurrences_made_already(
    client: Client, pool
) -> None:
    await create(client)
    made = await Scheduler(pool, horizon=5).run_once()
    old = await occurrences(pool)
    assert made == len(old) >= 5
    response = await client.patch("/schedules/tick", json={"interval": "PT1H"})
    assert response.status_code == 200, response.text
    changed = response.json()
    assert (changed["cron"], changed["interval_seconds"]) == (None, 3600.0)
    runs = [datetime.fromisoformat(r) for r in changed["next_runs"]]
    # An interval set now counts from now: its first run an hour after the change, which is
    # after every occurrence the old cadence made.
    assert runs[0] > old[-1]
    assert all(b - a == timedelta(hours=1) for a, b in pairwise(runs))
    assert await Scheduler(pool, horizon=5).run_once() == 0  # nothing due within the horizon now
    assert await occurrences(pool) == old  # those made already stay


async def test_a_new_cron_starts_after_the_last_occurrence_made(client: Client, pool) -> None:
    """Every two seconds instead of every second: the occurrences made ahead (5 s) are not made
    again nor doubled by the new cadence, which starts after the last of them."""
    await create(client)
    await Scheduler(pool, horizon=5).run_once()
    old = await occurrences(pool)
    response = await client.patch("/schedules/tick", json={"cron": "*/2 * * * * *"})
    assert response.status_code == 200, response.text
    first = datetime.fromisoformat(response.json()["next_runs"][0])
    assert old[-1] < first <= old[-1] + timedelta(seconds=2)
    assert first.second % 2 == 0
    await Scheduler(pool, horizon=9).run_once()
    new = (await occurrences(pool))[len(old) :]
    assert new
    assert new[0] == first
    assert all(b - a == timedelta(seconds=2) for a, b in pairwise(new))


async def test_a_new_payload_goes_to_the_occurrences_made_after_the_change(
    client: Client, pool
) -> None:
    await create(client)
    assert await Scheduler(pool, horizon=5).run_once() >= 5
    response = await client.patch("/schedules/tick", json={"payload": {"v": 2}})
    assert (response.status_code, response.json()["payload"]) == (200, {"v": 2})
    # A longer horizon reaches at least 3 more one-second occurrences than the first pass did.
    assert await Scheduler(pool, horizon=8).run_once() >= 3
    rows = await pool.fetch("SELECT occurrence, payload::text AS p FROM tasks ORDER BY occurrence")
    payloads = [r["p"] for r in rows]
    first_new = payloads.index('{"v": 2}')
    assert set(payloads[:first_new]) == {'{"v": 1}'}  # made before: unchanged
    assert set(payloads[first_new:]) == {'{"v": 2}'}


async def test_a_cron_in_a_zone_replaces_an_interval(client: Client) -> None:
    await create(client, cron=None, interval=30)
    response = await client.patch(
        "/schedules/tick", json={"cron": "0 0 9 * * 1-5", "timezone": "America/New_York"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["cron"], body["interval_seconds"], body["timezone"]) == (
        "0 0 9 * * 1-5",
        None,
        "America/New_York",
    )
    for run in body["next_runs"]:
        assert datetime.fromisoformat(run).hour in (13, 14)  # 9:00 in New York, EDT or EST
        assert datetime.fromisoformat(run).weekday() < 5


async def test_policy_and_fields_change_and_null_clears_the_end(client: Client, pool) -> None:
    await create(client, end_at="2099-01-01T00:00:00Z", backoff_base_seconds=1)
    response = await client.patch(
        "/schedules/tick",
        json={"backoff_base_seconds": 500, "overlap": "skip", "catch_up": "all", "end_at": None},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    # The cap the schedule had (the default, 300) rises to the new base, as on create.
    assert (body["backoff_base_seconds"], body["backoff_cap_seconds"]) == (500, 500)
    assert (body["overlap"], body["catch_up"], body["end_at"]) == ("skip", "all", None)
    assert body["max_attempts"] == 1  # unnamed: unchanged
    row = await pool.fetchrow("SELECT * FROM schedules")
    assert (row["backoff_base_seconds"], row["overlap"], row["end_at"]) == (500, "skip", None)


async def test_enabled_false_pauses(client: Client, pool) -> None:
    await create(client)
    response = await client.patch("/schedules/tick", json={"enabled": False})
    assert (response.status_code, response.json()["enabled"]) == (200, False)
    assert await Scheduler(pool, horizon=5).run_once() == 0


async def test_a_change_fences_a_pass_in_flight(client: Client, pool) -> None:
    """A pass that took the schedule before the change writes nothing after it: the change
    cleared the lease that the pass's write is fenced by."""
    await create(client)
    [taken] = await queries.take_due_schedules(pool, 10, 5, 30)
    assert (await client.patch("/schedules/tick", json={"payload": {"v": 2}})).status_code == 200
    late = await queries.materialize(
        pool, "tick", taken["lease_until"], [taken["next_at"]], [new_task_id()], None
    )
    assert (late.made, late.moved) == (0, False)
    assert await pool.fetchval("SELECT count(*) FROM tasks") == 0
    assert await pool.fetchval("SELECT next_at FROM schedules") is not None
