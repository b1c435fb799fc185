"""GET /stats: counts by status and type, exact up to a bound through the partial indexes,
estimated from the table's statistics beyond it; the bounded count never reads more rows."""

from __future__ import annotations

import json

import asyncpg
import pytest

from shared import db, queries
from shared.counts import count_tasks
from shared.task import TaskStatus
from tests.integration.plans import nodes
from tests.integration.test_api import Client

LOAD = """
INSERT INTO tasks (id, task_type, status, execution_time, started_at, finished_at, attempts,
    worker_id, lease_expires_at)
SELECT gen_random_uuid(), s.task_type, s.status::task_status, now(),
    CASE WHEN s.status IN ('done', 'started_executing') THEN now() END,
    CASE WHEN s.status IN ('done', 'failed', 'deleted') THEN now() END,
    CASE WHEN s.status IN ('done', 'started_executing') THEN 1 ELSE 0 END,
    CASE WHEN s.status = 'started_executing' THEN 'w' END,
    CASE WHEN s.status = 'started_executing' THEN now() + interval '1 minute' END
FROM unnest($1::text[], $2::text[], $3::int[]) AS s(status, task_type, n), generate_series(1, s.n)
"""


async def load(conn: asyncpg.Connection | asyncpg.Pool, counts: dict[tuple[str, str], int]) -> None:
    await conn.execute(
        LOAD,
        [status for status, _ in counts],
        [task_type for _, task_type in counts],
        list(counts.values()),
    )


SMALL = {
    ("submitted", "noop"): 3,
    ("submitted", "baz"): 1,
    ("started_executing", "foo"): 2,
    ("done", "noop"): 7,
    ("failed", "bar"): 1,
}


async def test_small_counts_are_exact_by_status_and_type(client: Client, pool) -> None:
    await load(pool, SMALL)
    response = await client.get("/stats")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["exact_up_to"] == 10_000
    assert list(body["statuses"]) == [status.value for status in TaskStatus]
    assert body["statuses"] == {
        "submitted": {"count": 4, "exact": True, "by_type": {"baz": 1, "noop": 3}},
        "started_executing": {"count": 2, "exact": True, "by_type": {"foo": 2}},
        "done": {"count": 7, "exact": True, "by_type": {"noop": 7}},
        "failed": {"count": 1, "exact": True, "by_type": {"bar": 1}},
        "deleted": {"count": 0, "exact": True, "by_type": {}},
    }


async def test_past_the_bound_a_status_is_estimated_and_never_below_what_was_counted(
    pool,
) -> None:
    await load(pool, {("done", "noop"): 3000, ("done", "baz"): 1000, ("submitted", "noop"): 5})
    # Before any ANALYZE there are no statistics: the bound is all that is known.
    blind = await count_tasks(pool, exact_up_to=100)
    assert (blind.statuses["done"].count, blind.statuses["done"].exact) == (101, False)
    assert sum(blind.statuses["done"].by_type.values()) == 101
    assert blind.statuses["submitted"].count == 5
    assert blind.statuses["submitted"].exact
    await pool.execute("ANALYZE tasks")
    counts = await count_tasks(pool, exact_up_to=100)
    done = counts.statuses["done"]
    assert not done.exact
    # ANALYZE reads every row of a table this small: the estimate is the count.
    assert done.by_type == {"baz": 1000, "noop": 3000}
    assert done.count == 4000
    assert counts.statuses["submitted"].exact
    assert counts.statuses["submitted"].by_type == {"noop": 5}


BIG = {
    ("done", "noop"): 30000,
    ("submitted", "noop"): 30000,
    ("failed", "noop"): 300,
    ("deleted", "noop"): 300,
    ("started_executing", "noop"): 100,
}


@pytest.mark.parametrize("analyze", [False, True], ids=["stale-statistics", "analyzed"])
@pytest.mark.parametrize("plan_mode", ["force_custom_plan", "force_generic_plan"])
async def test_the_bounded_count_walks_an_index_per_status_and_stops_at_the_bound(
    dsn: str, analyze: bool, plan_mode: str
) -> None:
    conn = await asyncpg.connect(dsn, server_settings=db.API_SERVER_SETTINGS)
    try:
        if not analyze:
            await conn.execute("ANALYZE tasks")  # the empty table's: stale after the load
        await load(conn, BIG)
        if analyze:
            await conn.execute("ANALYZE tasks")
        await conn.execute(f"SET plan_cache_mode = {plan_mode}")
        await conn.execute(f"PREPARE counted AS {queries.sql()['task_count_bounded']}")
        raw = await conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE counted(10001)")
    finally:
        await conn.close()
    found = nodes(json.loads(raw)[0]["Plan"])
    scans = [n for n in found if n.get("Relation Name") == "tasks"]
    assert len(scans) == 5, scans
    assert all(n["Node Type"] == "Index Scan" for n in scans), scans
    assert {n["Index Name"] for n in scans} <= {
        "tasks_due_idx",
        "tasks_page_idx",
        "tasks_lease_idx",
        "tasks_finished_idx",
    }, scans
    # However many rows a status holds, its branch reads at most the bound.
    assert max(n["Actual Rows"] for n in scans) == 10001
