"""`just bench`: drain rate, raw SQL ceiling and submit rate, into docs/benchmarks.md.

    uv run python -m scripts.bench.run [--count 20000] [--workers 2] [--runs 3]
        [--requests 10000] [--senders 64] [--deadline 280] [--dry-run]

The server is an embedded PostgreSQL in a temp dir (deleted at the end), or DATABASE_URL's, where
the bench creates and drops its own database. Every wait has a deadline (the bench gives up once
--deadline seconds have passed) and every process started is stopped, also on errors and Ctrl-C.
Only loopback traffic.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from types import FrameType

from rich.console import Console

from . import database
from .ceiling import CeilingRun, ceiling_once
from .drain import DrainRun, drain_once
from .report import Params, Results, git_commit, machine, print_table, write_doc, write_json
from .submit import http_rates

CEILING_CONNECTIONS = 2
CEILING_BATCH = 100  # a worker's claim size with the default concurrency 100


def _positive(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {raw}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--count", type=_positive, default=20_000, help="due tasks per drain run")
    p.add_argument("--workers", type=_positive, default=2, help="worker processes")
    p.add_argument("--runs", type=_positive, default=3, help="drain and ceiling runs each")
    p.add_argument("--requests", type=_positive, default=10_000, help="HTTP requests per figure")
    p.add_argument("--senders", type=_positive, default=64, help="concurrent HTTP senders")
    p.add_argument("--deadline", type=_positive, default=280, help="give up after this, s")
    p.add_argument("--dry-run", action="store_true", help="print only; write no files")
    return p.parse_args(argv)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM cleans up as Ctrl-C does: every `finally` runs


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console()
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        results = measure(args, console)
    except (TimeoutError, RuntimeError) as exc:  # everything started has been stopped by now
        console.print(f"[red]bench failed:[/red] {exc}", highlight=False)
        return 1
    print_table(results, console)
    if not args.dry_run:
        write_doc(results)
        path = write_json(results)
        console.print(f"written: {os.path.relpath(path)} and docs/benchmarks.md")
    return 0


def measure(args: argparse.Namespace, console: Console) -> Results:
    commit, date = git_commit(), datetime.now(UTC)  # before this run writes anything
    load_before = os.getloadavg()
    deadline = time.monotonic() + args.deadline
    database_url = os.environ.get("DATABASE_URL") or None
    where = "DATABASE_URL's server" if database_url else "embedded, data in a temp dir"
    drain: list[DrainRun] = []
    ceiling: list[CeilingRun] = []
    with database.server(database_url) as server_dsn, database.fresh_database(server_dsn) as dsn:
        postgres = asyncio.run(database.server_version(dsn))
        # Drain and ceiling runs alternate, so a load that drifts on a shared machine hits both.
        for n in range(1, args.runs + 1):
            with console.status(f"drain run {n}: {args.count:,} tasks, {args.workers} workers"):
                drain.append(drain_once(dsn, args.count, args.workers, deadline))
            with console.status(f"raw SQL ceiling run {n}"):
                run = ceiling_once(
                    dsn, args.count, connections=CEILING_CONNECTIONS, batch=CEILING_BATCH
                )
                ceiling.append(asyncio.run(asyncio.wait_for(run, deadline - time.monotonic())))
            console.print(
                f"run {n}: drain {drain[-1].tasks_per_s:,.0f} tasks/s, "
                f"raw SQL ceiling {ceiling[-1].tasks_per_s:,.0f} tasks/s"
            )
        asyncio.run(database.truncate(dsn))
        with console.status(f"GET /health and POST /task, {args.requests:,} requests each"):
            health, post, bulk = http_rates(dsn, args.requests, args.senders, deadline)
    params = Params(
        count=args.count,
        workers=args.workers,
        runs=args.runs,
        ceiling_connections=CEILING_CONNECTIONS,
        ceiling_batch=CEILING_BATCH,
        requests=args.requests,
        senders=args.senders,
    )
    return Results(
        date,
        commit,
        machine(postgres, where),
        params,
        load_before,
        drain,
        ceiling,
        health,
        post,
        bulk,
    )


if __name__ == "__main__":
    sys.exit(main())
