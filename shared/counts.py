"""How many tasks there are of each status and type, cheaply at millions of rows.

Each status is counted exactly, by type, up to EXACT_UP_TO tasks: a bounded walk of its partial
index. A status with more is estimated from PostgreSQL's statistics on (status, task_type), which
autovacuum's ANALYZE keeps fresh (every 2% of the table changed, see migration 0003); the answer
says which statuses are estimates, and an estimate is never below what was counted.
"""

from __future__ import annotations

import msgspec

from shared import queries
from shared.task import TaskStatus

EXACT_UP_TO = 10_000


class StatusCount(msgspec.Struct):
    count: int
    exact: bool  # false: an estimate from the table's statistics, at least EXACT_UP_TO + 1
    by_type: dict[str, int]


class TaskCounts(msgspec.Struct):
    statuses: dict[str, StatusCount]  # every status, in the order of TaskStatus
    exact_up_to: int


async def count_tasks(db: queries.Executor, exact_up_to: int = EXACT_UP_TO) -> TaskCounts:
    counted: dict[str, dict[str, int]] = {status.value: {} for status in TaskStatus}
    for row in await queries.count_bounded(db, exact_up_to + 1):
        counted[row["status"]][row["task_type"]] = row["n"]
    over = {status for status, types in counted.items() if sum(types.values()) > exact_up_to}
    estimated: dict[str, dict[str, int]] = {status: {} for status in over}
    if over:
        for row in await queries.count_estimates(db):
            if row["status"] in over:
                estimated[row["status"]][row["task_type"]] = row["n"]
    statuses = {}
    for status, types in counted.items():
        if status in over:
            guess = estimated[status]
            types = {t: max(types.get(t, 0), guess.get(t, 0)) for t in sorted({*types, *guess})}
            total = max(sum(types.values()), exact_up_to + 1)
        else:
            types, total = dict(sorted(types.items())), sum(types.values())
        statuses[status] = StatusCount(count=total, exact=status not in over, by_type=types)
    return TaskCounts(statuses=statuses, exact_up_to=exact_up_to)
