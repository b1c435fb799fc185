"""GET /task?status=… pages through an index in every status, whatever the statistics say."""

from __future__ import annotations

import json

import asyncpg
import pytest

from shared import db, queries
from shared.task import TaskStatus
from tests.integration.plans import nodes

COUNTS = {
    TaskStatus.DONE: 20000,
    TaskStatus.SUBMITTED: 20000,
    TaskStatus.FAILED: 300,
    TaskStatus.DELETED: 300,
    TaskStatus.STARTED_EXECUTING: 100,
}
PAGE = 50


async def _load(conn: asyncpg.Connection, analyze: bool) -> None:
    if not analyze:
        await conn.execute("ANALYZE tasks")  # statistics of the empty table: stale after the load
    await conn.execute(
        """
        INSERT INTO tasks (id, task_type, status, execution_time, started_at, finished_at,
            attempts, worker_id, lease_expires_at)
        SELECT gen_random_uuid(), 'noop', s.status::task_status, now(),
            CASE WHEN s.status IN ('done', 'started_executing') THEN now() END,
            CASE WHEN s.status IN ('done', 'failed', 'deleted') THEN now() END,
            CASE WHEN s.status IN ('done', 'started_executing') THEN 1 ELSE 0 END,
            CASE WHEN s.status = 'started_executing' THEN 'w' END,
            CASE WHEN s.status = 'started_executing' THEN now() + interval '1 minute' END
        FROM unnest($1::text[], $2::int[]) AS s(status, n), generate_series(1, s.n)
        """,
        [str(status) for status in COUNTS],
        list(COUNTS.values()),
    )
    if analyze:
        await conn.execute("ANALYZE tasks")


@pytest.mark.parametrize("status", list(COUNTS))
@pytest.mark.parametrize("analyze", [False, True], ids=["stale-statistics", "analyzed"])
@pytest.mark.parametrize("plan_mode", ["force_custom_plan", "force_generic_plan"])
async def test_a_status_page_reads_an_index_never_the_table(
    dsn: str, status: TaskStatus, analyze: bool, plan_mode: str
) -> None:
    conn = await asyncpg.connect(dsn, server_settings=db.API_SERVER_SETTINGS)
    try:
        await _load(conn, analyze)
        await conn.execute(f"SET plan_cache_mode = {plan_mode}")
        page = await queries.list_page(conn, status=status, task_type=None, after=None, limit=PAGE)
        await conn.execute(f"PREPARE page AS {queries.status_page_sql(status)}")
        explain = f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE page(NULL, NULL, {PAGE})"
        raw = await conn.fetchval(explain)
        expected = await conn.fetch(
            "SELECT id FROM tasks WHERE status = $1::task_status ORDER BY id LIMIT $2",
            str(status),
            PAGE,
        )
    finally:
        await conn.close()
    assert [row["id"] for row in page] == [row["id"] for row in expected]
    assert len(page) == min(PAGE, COUNTS[status])
    found = nodes(json.loads(raw)[0]["Plan"])
    scans = [n for n in found if "Scan" in n["Node Type"]]
    assert not any(n["Node Type"] == "Seq Scan" for n in scans), scans
    if status in (TaskStatus.SUBMITTED, TaskStatus.FAILED, TaskStatus.DELETED):
        assert [n.get("Index Name") for n in scans] == ["tasks_page_idx"], scans


@pytest.mark.parametrize("analyze", [False, True], ids=["stale-statistics", "analyzed"])
@pytest.mark.parametrize("plan_mode", ["force_custom_plan", "force_generic_plan"])
async def test_a_schedule_page_reads_its_index(dsn: str, analyze: bool, plan_mode: str) -> None:
    """GET /task?schedule=…: the schedule's rows through tasks_schedule_page_idx, never a scan of
    the table's 40,000 one-off tasks, in id order."""
    conn = await asyncpg.connect(dsn, server_settings=db.API_SERVER_SETTINGS)
    try:
        await _load(conn, analyze)
        await conn.execute(
            """
            INSERT INTO tasks (id, task_type, execution_time, schedule, occurrence)
            SELECT gen_random_uuid(), 'noop', t, s, t
            FROM unnest(ARRAY['a', 'b']) AS s,
                generate_series(now(), now() + interval '999 seconds', interval '1 second') AS t
            """
        )
        await conn.execute(f"SET plan_cache_mode = {plan_mode}")
        page = await queries.list_page(
            conn, status=None, task_type=None, after=None, limit=PAGE, schedule="b"
        )
        await conn.execute(f"PREPARE page AS {queries.sql()['task_list_by_schedule']}")
        raw = await conn.fetchval(
            f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE page('b', NULL, NULL, NULL, {PAGE})"
        )
        expected = await conn.fetch(
            "SELECT id FROM tasks WHERE schedule = 'b' ORDER BY id LIMIT $1", PAGE
        )
    finally:
        await conn.close()
    assert [row["id"] for row in page] == [row["id"] for row in expected]
    assert len(page) == PAGE
    scans = [n for n in nodes(json.loads(raw)[0]["Plan"]) if "Scan" in n["Node Type"]]
    assert [n.get("Index Name") for n in scans] == ["tasks_schedule_page_idx"], scans
