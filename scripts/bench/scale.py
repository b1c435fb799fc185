"""Scale: the claim's cost and the drain rate with a large table of future and finished tasks.

    uv run python -m scripts.bench.scale [--count 20000] [--workers 2] [--future 1000000]
        [--finished 1000000] [--runs 1] [--random-ids] [--deadline 900]

The same drain as drain.py (due noop tasks, `duetime worker` processes, timed by the table
itself), once on a table holding only the due tasks and once with the ballast beside them:
`--future` submitted tasks due in 1 to 30 days and `--finished` done or failed ones from the
last 6 days. Ids are UUIDv7 as the API's (`--random-ids`: UUIDv4, to see what locality is worth).
Goal: with 1M + 1M ballast rows, drain at least 80% of the empty table's rate, with the claim's
plan unchanged. The server is DATABASE_URL's (the bench creates and drops its own database) or an
embedded one in a temp dir.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from rich.console import Console

from shared import db, queries
from shared.devserver import WORKER_ARGS
from shared.registry import BUILTIN_TASK_TYPES

from . import database
from .database import connected
from .drain import POLL_SECONDS, DrainRun
from .processes import Processes, process_env

GOAL_RATIO = 0.8  # of the empty table's drain rate
CLAIM_LIMIT = 100  # a worker's claim with the default concurrency 100
CLAIM_TYPES = sorted(BUILTIN_TASK_TYPES)  # what a default worker claims: its handlers' types
LEASE_SECONDS = 30.0
EXPLAIN_RUNS = 3  # the median one is kept: the first may pay for hint bits and a cold cache

# Ids as the API issues them (shared/ids.py): UUIDv7, whose first 48 bits are the creation time
# in ms, so the rows of the tasks that run now sit at the right end of the primary key and of
# tasks_page_idx whatever the table holds. `{created}` is the creation time's column.
UUID7 = """encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
    PLACING substring(int8send(floor(extract(epoch FROM {created}) * 1000)::bigint) FROM 3)
    FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid"""
RANDOM_ID = "gen_random_uuid()"  # UUIDv4, for comparison: every touch lands on a random leaf

# The ballast, each in id order (ORDER BY 1): the indexes on id then fill leaf by leaf instead
# of at random, which keeps 1M + 1M rows within a minute on a 128 MB shared_buffers. Future tasks
# are noop ones, a type the worker claims: the claim's next-due look finds the earliest at once,
# as it would in a real queue. They were created over the last 6 days.
LOAD_FUTURE = """
INSERT INTO tasks (id, task_type, execution_time, created_at)
SELECT {id}, 'noop', now() + interval '1 day' + random() * interval '29 days', created
FROM (SELECT now() - random() * interval '6 days' AS created
      FROM generate_series(1, $1::int)) AS g
ORDER BY 1
"""
# 90% done, 10% failed, each run once within the last 6 days: inside the default retention (7
# days done, 30 failed), so the workers' pruner leaves them be and the table stays this size.
LOAD_FINISHED = """
INSERT INTO tasks (id, task_type, status, execution_time, created_at, started_at, finished_at,
                   attempts, worker_id, last_error, error_reason)
SELECT {id}, 'noop', CASE WHEN failed THEN 'failed' ELSE 'done' END::task_status,
       created, created, created + interval '5 milliseconds', created + interval '10 milliseconds',
       1, 'ballast', CASE WHEN failed THEN 'ballast' END, CASE WHEN failed THEN 'error' END
FROM (
    SELECT n % 10 = 0 AS failed, now() - interval '1 hour' - random() * interval '6 days' AS created
    FROM generate_series(1, $1::int) AS n
) AS g
ORDER BY 1
"""
# database.LOAD_DUE_NOOP with the ids of tasks created now.
LOAD_DUE = """
INSERT INTO tasks (id, task_type, execution_time)
SELECT {id}, 'noop', now() - interval '1 day' + n * interval '1 millisecond'
FROM generate_series(1, $1::int) AS n
"""
# Due tasks not finished yet, through the partial indexes only (never the whole table).
UNFINISHED = """
SELECT (SELECT count(*) FROM tasks WHERE status = 'submitted' AND execution_time <= $1)
     + (SELECT count(*) FROM tasks WHERE status = 'started_executing')
"""
# The run's tasks are the ones started since it began: the finished ballast started days ago and
# the future ballast never does. Both stamps are now(), their transaction's start, as in drain.py.
RUN_WINDOW = """
SELECT count(*) FILTER (WHERE status = 'done') AS done,
       count(*) FILTER (WHERE error_reason = 'lost') AS lost,
       extract(epoch FROM max(finished_at) - min(started_at))::float8 AS seconds
FROM tasks
WHERE started_at >= $1
"""
RUN_SHARES = """
WITH run AS (SELECT worker_id, status, started_at, finished_at FROM tasks WHERE started_at >= $1)
SELECT split_part(worker_id, '#', 1) AS worker_id, count(*) AS tasks,
       count(DISTINCT started_at) AS claims,
       extract(epoch FROM min(started_at) - (SELECT min(started_at) FROM run))::float8
           AS first_claim_s,
       extract(epoch FROM max(finished_at) - (SELECT min(started_at) FROM run))::float8
           AS last_finish_s
FROM run
WHERE status = 'done'
GROUP BY 1
ORDER BY first_claim_s
"""


@dataclass(frozen=True)
class ScaleRun:
    future_rows: int
    finished_rows: int
    drain: DrainRun
    claim_ms: float  # one claim of CLAIM_LIMIT due rows: EXPLAIN ANALYZE's execution time
    claim_buffers: int  # shared hit + read of that claim
    plan_shape: str  # the claim's plan nodes, depth first, without costs
    load_seconds: float  # the ballast's INSERTs, VACUUM ANALYZE and CHECKPOINT


@dataclass(frozen=True)
class Verdict:
    ratio: float  # the loaded table's drain rate over the empty one's
    plan_unchanged: bool

    @property
    def met(self) -> bool:
        return self.ratio >= GOAL_RATIO and self.plan_unchanged


def compare(empty: ScaleRun, loaded: ScaleRun) -> Verdict:
    return Verdict(
        loaded.drain.tasks_per_s / empty.drain.tasks_per_s,
        empty.plan_shape == loaded.plan_shape,
    )


def _ids(statement: str, random_ids: bool, created: str = "now()") -> str:
    return statement.format(id=RANDOM_ID if random_ids else UUID7.format(created=created))


def load_ballast(dsn: str, future: int, finished: int, *, random_ids: bool = False) -> None:
    """Add `future` tasks due in 1 to 30 days and `finished` done/failed ones, VACUUM ANALYZE."""
    asyncio.run(_load_ballast(dsn, future, finished, random_ids))


async def _load_ballast(dsn: str, future: int, finished: int, random_ids: bool) -> None:
    # The sorts by id are this session's: enough memory to do them without temp files.
    async with connected(dsn, server_settings={"work_mem": "256MB"}) as conn:
        if future:
            await conn.execute(_ids(LOAD_FUTURE, random_ids, "created"), future)
        if finished:
            await conn.execute(_ids(LOAD_FINISHED, random_ids, "created"), finished)
        await conn.execute("VACUUM ANALYZE tasks")  # visibility map set, as a settled table's
        # The load's WAL (about 1 GB for 1M + 1M) starts checkpoints that would run into the
        # drain: flush it now. Only a superuser or pg_checkpoint may; without, the drain pays.
        with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CHECKPOINT")


def scale_once(
    dsn: str,
    count: int,
    workers: int,
    future: int,
    finished: int,
    deadline: float,
    *,
    random_ids: bool = False,
    reuse_ballast: bool = False,
) -> ScaleRun:
    """An empty table, the ballast, `count` due noop tasks; EXPLAIN one claim, then drain them.

    `deadline` is a time.monotonic() value: past it, the wait gives up with TimeoutError.
    `random_ids`: UUIDv4 ids instead of the API's UUIDv7, for comparison. `reuse_ballast`: the
    table already holds this ballast (an earlier run's); its drained tasks join the finished.
    """
    started = time.monotonic()
    if not reuse_ballast:
        asyncio.run(database.truncate(dsn))
        load_ballast(dsn, future, finished, random_ids=random_ids)
    load_seconds = time.monotonic() - started
    asyncio.run(_load_due(dsn, count, random_ids))
    claim_ms, claim_buffers, plan_shape = asyncio.run(explain_claim(dsn))
    since = asyncio.run(_now(dsn))  # after the EXPLAINs, whose claims were rolled back
    procs = Processes(process_env(dsn))
    started = time.monotonic()
    try:
        for _ in range(workers):
            procs.start(WORKER_ARGS)
        asyncio.run(_wait_drained(dsn, count, since, deadline, procs.check_alive))
        wall = time.monotonic() - started
    finally:
        procs.stop()
    drain = asyncio.run(_measure(dsn, count, since, wall))
    return ScaleRun(future, finished, drain, claim_ms, claim_buffers, plan_shape, load_seconds)


async def _load_due(dsn: str, count: int, random_ids: bool) -> None:
    async with connected(dsn) as conn:
        await conn.execute(_ids(LOAD_DUE, random_ids), count)
        await conn.execute("ANALYZE tasks")


async def _now(dsn: str) -> datetime:
    async with connected(dsn) as conn:
        now: datetime = await conn.fetchval("SELECT now()")
        return now


async def explain_claim(dsn: str) -> tuple[float, int, str]:
    """(ms, shared buffers, plan shape) of the median of EXPLAIN_RUNS claims, each rolled back.

    On a connection set up as the worker's: the planner settings are part of the plan.
    """
    settings = {"application_name": "duetime-bench", **db.WORKER_SERVER_SETTINGS}
    async with connected(dsn, server_settings=settings) as conn:
        plans = [await _explain_once(conn) for _ in range(EXPLAIN_RUNS)]
    plans.sort(key=lambda p: float(p["Execution Time"]))
    plan = plans[len(plans) // 2]
    root = plan["Plan"]
    buffers = int(root["Shared Hit Blocks"]) + int(root["Shared Read Blocks"])
    return float(plan["Execution Time"]), buffers, plan_shape(root)


async def _explain_once(conn: asyncpg.Connection) -> dict[str, Any]:
    statement = "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + queries.sql()["task_claim_due"]
    tx = conn.transaction()
    await tx.start()
    try:
        raw = await conn.fetchval(
            statement, CLAIM_LIMIT, "bench-explain", LEASE_SECONDS, CLAIM_TYPES, None
        )
    finally:
        await tx.rollback()
    explained: list[dict[str, Any]] = json.loads(raw)
    return explained[0]


_RETURNS = re.compile(r" \(returns [^)]*\)")


def plan_shape(node: dict[str, Any]) -> str:
    """The plan's nodes depth first, 'A > B > C': type, subplan, index and relation, no costs."""
    return " > ".join(_shape_nodes(node))


def _shape_nodes(node: dict[str, Any]) -> list[str]:
    label = node["Node Type"]
    if "Subplan Name" in node:  # "CTE due", "InitPlan 3 (returns $6)": no parameter numbers
        label = f"[{_RETURNS.sub('', node['Subplan Name'])}] {label}"
    if "Index Name" in node:
        label += f" using {node['Index Name']}"
    if "Relation Name" in node:
        label += f" on {node['Relation Name']}"
    if "CTE Name" in node:
        label += f" on {node['CTE Name']}"
    labels = [label]
    for child in node.get("Plans", []):
        labels.extend(_shape_nodes(child))
    return labels


async def _wait_drained(
    dsn: str, count: int, since: datetime, deadline: float, check: Callable[[], None]
) -> None:
    async with connected(dsn) as conn:
        await database.poll_count(
            conn,
            UNFINISHED,
            since,
            until=lambda unfinished: unfinished == 0,
            what=lambda left: f"only {count - left:,} of {count:,} tasks finished in time",
            deadline=deadline,
            check=check,
            every=POLL_SECONDS,
        )


async def _measure(dsn: str, count: int, since: datetime, wall: float) -> DrainRun:
    async with connected(dsn) as conn:
        row = await conn.fetchrow(RUN_WINDOW, since)
        shares = await conn.fetch(RUN_SHARES, since)
    assert row is not None
    done: int = row["done"]
    seconds: float = row["seconds"]
    if done != count:
        lost: int = row["lost"]
        raise RuntimeError(
            f"{done:,} of {count:,} tasks are done; of the rest {lost:,} lost their lease"
        )
    return DrainRun.of(count, seconds, wall, shares)


def _positive(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {raw}")
    return value


def _not_negative(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {raw}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--count", type=_positive, default=20_000, help="due tasks per drain run")
    p.add_argument("--workers", type=_positive, default=2, help="worker processes")
    p.add_argument("--future", type=_not_negative, default=1_000_000, help="future ballast rows")
    p.add_argument("--finished", type=_not_negative, default=1_000_000, help="finished ballast")
    p.add_argument("--runs", type=_positive, default=1, help="empty and loaded runs each")
    p.add_argument("--random-ids", action="store_true", help="UUIDv4 ids instead of UUIDv7")
    p.add_argument("--deadline", type=_positive, default=900, help="give up after this, s")
    return p.parse_args(argv)


def _line(run: ScaleRun) -> str:
    return (
        f"{run.future_rows:,} future + {run.finished_rows:,} finished: "
        f"ballast loaded in {run.load_seconds:.1f}s; "
        f"drain {run.drain.tasks_per_s:,.0f} tasks/s ({run.drain.seconds:.2f}s); "
        f"claim {run.claim_ms:.2f} ms, {run.claim_buffers:,} buffers"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console()
    try:
        empty, loaded = measure(args, console)
    except (TimeoutError, RuntimeError) as exc:  # everything started has been stopped by now
        console.print(f"[red]scale bench failed:[/red] {exc}", highlight=False)
        return 1
    for name, runs in (("empty", empty), ("loaded", loaded)):
        console.print(f"{name} plan: {runs[-1].plan_shape}", highlight=False)
    verdicts = [compare(e, f) for e, f in zip(empty, loaded, strict=True)]
    ratio = statistics.median(v.ratio for v in verdicts)
    unchanged = all(v.plan_unchanged for v in verdicts)
    met = ratio >= GOAL_RATIO and unchanged
    console.print(
        f"loaded/empty drain rate {ratio:.0%} (goal {GOAL_RATIO:.0%}), "
        f"plan {'unchanged' if unchanged else 'CHANGED'}: goal {'met' if met else 'NOT met'}",
        highlight=False,
    )
    return 0


def measure(args: argparse.Namespace, console: Console) -> tuple[list[ScaleRun], list[ScaleRun]]:
    """(empty runs, loaded runs), alternating: a load drifting on a shared machine hits both."""
    deadline = time.monotonic() + args.deadline
    database_url = os.environ.get("DATABASE_URL") or None
    empty: list[ScaleRun] = []
    loaded: list[ScaleRun] = []
    with database.server(database_url) as server_dsn, database.fresh_database(server_dsn) as dsn:
        for n in range(1, args.runs + 1):
            for runs, future, finished in ((empty, 0, 0), (loaded, args.future, args.finished)):
                with console.status(f"run {n}: {future:,} future + {finished:,} finished rows"):
                    run = scale_once(
                        dsn,
                        args.count,
                        args.workers,
                        future,
                        finished,
                        deadline,
                        random_ids=args.random_ids,
                    )
                runs.append(run)
                console.print(f"run {n}: {_line(run)}", highlight=False)
    return empty, loaded


if __name__ == "__main__":
    sys.exit(main())
