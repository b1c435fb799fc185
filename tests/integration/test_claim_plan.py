"""The claim's plan walks the partial index on submitted rows, whatever the statistics say."""

from __future__ import annotations

import json

import asyncpg
import pytest

from shared import db, queries


async def _load_behind_stale_statistics(conn: asyncpg.Connection) -> None:
    # Statistics taken while the table was empty, then a load: the case that makes a planner that
    # trusts statistics sort every due row on every claim.
    await conn.execute("ANALYZE tasks")
    await conn.execute("""
        INSERT INTO tasks (id, task_type, status, execution_time, started_at, finished_at, attempts)
        SELECT gen_random_uuid(), 'noop', 'done', now() - interval '1 day', now(), now(), 1
        FROM generate_series(1, 20000);
        INSERT INTO tasks (id, task_type, execution_time)
        SELECT gen_random_uuid(), 'noop', now() + make_interval(secs => g)
        FROM generate_series(1, 20000) AS g;
        INSERT INTO tasks (id, task_type, execution_time)
        SELECT gen_random_uuid(), 'noop', now() - interval '1 minute'
        FROM generate_series(1, 20000);
    """)


def _nodes(plan: dict) -> list[dict]:
    found = [plan]
    for child in plan.get("Plans", []):
        found.extend(_nodes(child))
    return found


@pytest.mark.parametrize("plan_mode", ["force_custom_plan", "force_generic_plan"])
async def test_claim_walks_the_partial_due_index_in_order(dsn: str, plan_mode: str) -> None:
    conn = await asyncpg.connect(dsn, server_settings=db.WORKER_SERVER_SETTINGS)
    try:
        await _load_behind_stale_statistics(conn)
        await conn.execute(f"SET plan_cache_mode = {plan_mode}")
        await conn.execute(f"PREPARE claim AS {queries.sql()['task_claim_due']}")
        async with conn.transaction():
            raw = await conn.fetchval(
                "EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE claim(100, 'w', 30, ARRAY['noop'], NULL)"
            )
    finally:
        await conn.close()
    nodes = _nodes(json.loads(raw)[0]["Plan"])
    due_scans = [
        n for n in nodes if n.get("Relation Name") == "tasks" and n.get("Alias") == "tasks"
    ]
    assert [n["Node Type"] for n in due_scans] == ["Index Scan"], due_scans
    assert due_scans[0]["Index Name"] == "tasks_due_idx"
    # The ordered walk stops after LIMIT rows: it never touches the other 19,900 due rows.
    assert due_scans[0]["Actual Rows"] == 100
    assert not any(n["Node Type"] == "Sort" for n in nodes)
