"""One PgQueuer consumer for the peer bench: a no-op async entrypoint, until SIGTERM.

    DATABASE_URL=postgresql://... python -m scripts.bench.peer_consumer [--batch-size 100]

Started by scripts/bench/peer.py, one process each. The settings are PgQueuer 1.6.0's documented
ones for throughput (the docs are those of github.com/janbjorge/pgqueuer; the source is the
installed package):

- One PgQueuer over one direct asyncpg connection (PgQueuer.from_asyncpg_connection):
  docs/comparisons/benchmarks.md measures asyncpg at about 1.7x psycopg, and
  docs/guides/performance-tuning.md ("Use a dedicated connection for LISTEN") says to give the
  QueueManager a direct connection, not a pool. Its own tools/benchmark.py consumes likewise.
- The uvloop event loop, as `pgq run` uses it when installed (asyncio_run in
  pgqueuer/adapters/cli/cli.py) and as tools/benchmark.py does.
- batch_size=100 (default 10): performance-tuning.md says to raise it for short jobs (< 1 s) that
  cause many dequeue round trips, and a no-op is the shortest job there is. 100 is also what a
  duetime worker claims per statement (scripts/bench/run.py, CEILING_BATCH), so both sides make
  as many claim round trips. The completion log buffer flushes at batch_size jobs or every 0.1 s
  (JobStatusLogBuffer in pgqueuer/core/qm.py and core/buffers.py), so completions are batched
  alike.
- max_concurrent_tasks unset and concurrency_limit=0 (both the defaults): performance-tuning.md
  calls them safety caps; unset, the dequeue statement has none of the capacity or budget CTEs
  (QueryQueueBuilder.build_dequeue_query in pgqueuer/adapters/persistence/qb.py).
- dequeue_timeout, heartbeat_timeout, log_aggregation_interval: the defaults (30 s each). They only
  act on an idle queue, a job running past 15 s, or every 30 s; no retry executor (the default
  EntrypointExecutor): a no-op never fails.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from collections.abc import Sequence

import uvloop
from pgqueuer import Job, PgQueuer

from .database import connected

ENTRYPOINT = "noop"
BATCH_SIZE = 100


async def consume(dsn: str, batch_size: int) -> None:
    """Run one PgQueuer on its own connection until SIGTERM or SIGINT."""
    async with connected(dsn) as conn:
        pgq = PgQueuer.from_asyncpg_connection(conn)

        @pgq.entrypoint(ENTRYPOINT)
        async def noop(job: Job) -> None:
            return None

        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, pgq.shutdown.set)
        await pgq.run(batch_size=batch_size)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="jobs per dequeue")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)  # PgQueuer's own errors, into the process's log
    uvloop.run(consume(os.environ["DATABASE_URL"], args.batch_size))


if __name__ == "__main__":
    main()
