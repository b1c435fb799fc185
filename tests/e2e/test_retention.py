"""A million tasks through two workers with a retention of one second: every one runs and is
pruned, and the table with its indexes stays the size one wave needs instead of growing with
every task ever run."""

from __future__ import annotations

import os
import re
import time

import pytest

from tests.e2e.fleet import Fleet, count, execute, fetchrow, insert_tasks, wait_until

pytestmark = pytest.mark.e2e

TOTAL = int(os.environ.get("E2E_RETENTION_TASKS", "1000000"))
WAVE = min(TOTAL, 100_000)
ENV = {
    "DUETIME_RETENTION_DONE_SECONDS": "1",
    "DUETIME_PRUNE_INTERVAL_SECONDS": "1",
    "DUETIME_LOG_LEVEL": "INFO",  # the shutdown line counts what each worker pruned
}
SIZES = """
SELECT pg_relation_size('tasks') AS heap, pg_indexes_size('tasks') AS indexes,
       pg_total_relation_size('tasks') AS total
"""
PRUNED = re.compile(r"stopped: .* (\d+) pruned")


def test_a_million_tasks_with_a_short_retention_leave_the_table_bounded(
    fleet: Fleet, dsn: str
) -> None:
    workers = fleet.workers(2, **ENV)
    fleet.wait_listening(2)
    peaks, sizes = [], []
    t0 = time.monotonic()
    for wave in range(TOTAL // WAVE):
        insert_tasks(dsn, "noop", WAVE)
        wait_until(
            lambda: fleet.alive(workers) and count(dsn) == 0,
            within=180,
            what=f"wave {wave} to run and be pruned",
            every=0.5,
        )
        peak = fetchrow(dsn, SIZES)
        assert peak is not None
        peaks.append(dict(peak))
        # Stands in for autovacuum, whose wake-up (autovacuum_naptime, server-wide, 60 s by
        # default) is longer than a wave here: the space the pruner freed becomes reusable.
        execute(dsn, "VACUUM tasks")
        row = fetchrow(dsn, SIZES)
        assert row is not None
        sizes.append(dict(row))
        print(f"wave {wave} at {time.monotonic() - t0:.0f}s: {peaks[-1]} -> vacuum -> {sizes[-1]}")
    fleet.stop()

    pruned = [int(m) for w in workers for m in PRUNED.findall(fleet.log_of(w))]
    assert len(pruned) == 2, [fleet.log_of(w) for w in workers]
    # Only finished rows are pruned, and none is left: every task ran, then went.
    assert sum(pruned) == TOTAL
    # Btree pages emptied by one vacuum are only recycled by a later one, so the indexes grow
    # for the first few waves (how many depends on timing: two here, four on a slower machine)
    # and then only reuse space. Bounded means the second half of the run, half a million more
    # tasks, raises neither the high-water mark before each vacuum nor the size after it; a
    # table keeping every task would have doubled by then.
    half = max(1, len(sizes) // 2)
    for measured in (peaks, sizes):  # before and after each wave's vacuum
        first = max(size["total"] for size in measured[:half])
        assert all(size["total"] <= 1.1 * first for size in measured[half:]), measured
