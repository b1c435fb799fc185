"""The claim's plan walks the partial index on submitted rows, whatever the statistics say."""

from __future__ import annotations

import json

import asyncpg
import pytest

from shared import db, queries
from tests.integration.plans import nodes


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
    found = nodes(json.loads(raw)[0]["Plan"])
    due_scans = [
        n for n in found if n.get("Relation Name") == "tasks" and n.get("Alias") == "tasks"
    ]
    assert [n["Node Type"] for n in due_scans] == ["Index Scan"], due_scans
    assert due_scans[0]["Index Name"] == "tasks_due_idx"
    # The ordered walk stops after LIMIT rows: it never touches the other 19,900 due rows.
    assert due_scans[0]["Actual Rows"] == 100
    assert not any(n["Node Type"] == "Sort" for n in found)
    # The UPDATE finds the claimed rows by index, never by reading the table: a generic plan
    # guesses LIMIT $1 at a tenth of the due rows, which made a join hash a sequential scan.
    assert not any(n["Node Type"] in ("Seq Scan", "Hash Join") for n in found), found
    [update] = [n for n in found if n["Node Type"] == "ModifyTable"]
    [lookup] = [n for n in nodes(update) if n.get("Alias") == "t" and "Scan" in n["Node Type"]]
    assert (lookup["Node Type"], lookup["Actual Rows"]) == ("Index Scan", 100), lookup


async def _running_behind_stale_statistics(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    # Statistics that saw no running row (ANALYZE ran before the claims, as it usually does: a
    # row runs for milliseconds), then 5,000 running rows.
    await _load_behind_stale_statistics(conn)
    await conn.execute("ANALYZE tasks")
    claimed: list[asyncpg.Record] = []
    for _ in range(50):
        claimed += (await queries.claim_due(conn, 100, "w", 30, ["noop"])).rows
    return claimed


@pytest.mark.parametrize("plan_mode", ["force_custom_plan", "force_generic_plan"])
@pytest.mark.parametrize("statement", ["task_finish_many", "task_heartbeat_many"])
async def test_finish_and_heartbeat_look_up_their_batch_by_primary_key(
    dsn: str, plan_mode: str, statement: str
) -> None:
    conn = await asyncpg.connect(dsn, server_settings=db.WORKER_SERVER_SETTINGS)
    try:
        claimed = await _running_behind_stale_statistics(conn)
        batch = claimed[:2000]
        await conn.execute(f"SET plan_cache_mode = {plan_mode}")
        await conn.execute(f"PREPARE stmt AS {queries.sql()[statement]}")
        ids = "'{" + ",".join(str(r["id"]) for r in batch) + "}'"
        attempts = "'{" + ",".join(str(r["attempts"]) for r in batch) + "}'"
        if statement == "task_finish_many":
            n = len(batch)
            nulls = "'{" + ",".join(["NULL"] * n) + "}'"
            done = "'{" + ",".join(["done"] * n) + "}'"
            args = [ids, attempts, done, nulls, nulls, nulls, nulls]
        else:
            args = [ids, attempts, "'w'", "30"]
        tx = conn.transaction()
        await tx.start()
        # EXECUTE takes no bind parameters: the batch goes in as literals.
        raw = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE stmt({', '.join(args)})")
        await tx.rollback()
    finally:
        await conn.close()
    found = nodes(json.loads(raw)[0]["Plan"])
    scans = [n for n in found if n.get("Relation Name") == "tasks" and "Scan" in n["Node Type"]]
    # The batch drives the plan, read once: never a scan of the running rows that re-reads the
    # batch for each one it finds (running rows × batch: seconds under load).
    batches = [n for n in found if n["Node Type"] == "Function Scan"]
    assert [n["Actual Loops"] for n in batches] == [1] * len(batches), batches
    scans = [n for n in found if n.get("Relation Name") == "tasks" and "Scan" in n["Node Type"]]
    assert all(n.get("Index Name") in (None, "tasks_pkey") for n in scans), scans
