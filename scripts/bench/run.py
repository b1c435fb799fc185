"""`just bench`: every figure of issue 5 in one run, into docs/benchmarks.md and a PNG.

    uv run python -m scripts.bench.run [--count 50000] [--workers 1,2,4] [--batches 1,10,100]
        [--runs 3] [--requests 10000] [--senders 64] [--lag-tasks 5000] [--lag-spread 10]
        [--scale-rows 1000000] [--skip peer,lag,scale,submit,schedules] [--deadline 1800]
        [--dry-run]

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
from .ceiling import CEILING_CONNECTIONS, CeilingRun, ceiling_once, minimal_ceiling_once
from .drain import DrainRun, drain_once
from .figures import GOAL_BATCH
from .lag import LagRun, lag_once
from .peer import PeerRun, pgqueuer_once
from .report import Params, Results, git_commit, machine, print_table, write_doc, write_json
from .scale import ScaleRun, scale_once
from .schedules import (
    BESIDE_SCHEDULES,
    PASS_SCHEDULES,
    ScheduleResults,
    beside_once,
    passes_once,
    plain_once,
)
from .submit import http_rates

SECTIONS = ("peer", "submit", "lag", "scale", "schedules")  # the ones --skip can leave out
LAG_WORKERS = 2
SCALE_WORKERS = 2
SCHEDULE_WORKERS = 2


def _positive(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {raw}")
    return value


def _positives(raw: str) -> list[int]:
    try:
        return sorted({_positive(part) for part in raw.split(",") if part.strip()})
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"a comma-separated list of numbers, got {raw!r}") from exc


def _sections(raw: str) -> set[str]:
    names = {part.strip() for part in raw.split(",") if part.strip()}
    unknown = names - set(SECTIONS)
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown section {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}"
        )
    return names


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--count", type=_positive, default=50_000, help="due tasks per drain run")
    p.add_argument(
        "--workers", type=_positives, default=[1, 2, 4], help="worker (and PgQueuer) processes"
    )
    p.add_argument("--batches", type=_positives, default=[1, 10, 100], help="raw SQL batch sizes")
    p.add_argument("--runs", type=_positive, default=3, help="runs of each drain and ceiling")
    p.add_argument("--requests", type=_positive, default=10_000, help="HTTP requests per figure")
    p.add_argument("--senders", type=_positive, default=64, help="concurrent HTTP senders")
    p.add_argument("--lag-tasks", type=_positive, default=5_000, help="tasks in the lag figure")
    p.add_argument("--lag-spread", type=_positive, default=10, help="lag tasks due over this, s")
    p.add_argument(
        "--scale-rows", type=_positive, default=1_000_000, help="future and finished ballast rows"
    )
    p.add_argument("--skip", type=_sections, default=set(), help=f"leave out: {','.join(SECTIONS)}")
    p.add_argument("--deadline", type=_positive, default=1800, help="give up after this, s")
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
        written = write_doc(results)
        path = write_json(results)
        console.print(f"written: {os.path.relpath(path)}, {', '.join(written)}")
    return 0


def measure(args: argparse.Namespace, console: Console) -> Results:
    commit, date = git_commit(), datetime.now(UTC)  # before this run writes anything
    load_before = os.getloadavg()
    deadline = time.monotonic() + args.deadline
    database_url = os.environ.get("DATABASE_URL") or None
    where = "DATABASE_URL's server" if database_url else "embedded, data in a temp dir"
    ceiling: dict[int, list[CeilingRun]] = {batch: [] for batch in args.batches}
    drain: dict[int, list[DrainRun]] = {n: [] for n in args.workers}
    peer: dict[int, list[PeerRun]] = {}
    lag: list[LagRun] = []
    scale: list[ScaleRun] = []
    minimal: list[CeilingRun] = []
    http = None
    schedules = None
    with database.server(database_url) as server_dsn, database.fresh_database(server_dsn) as dsn:
        postgres = asyncio.run(database.server_version(dsn))
        # The runs alternate between the systems, so a load that drifts on a shared machine
        # hits them all alike.
        for n in range(1, args.runs + 1):
            for batch in args.batches:
                with console.status(f"run {n}: raw SQL ceiling, batch {batch}"):
                    run = ceiling_once(dsn, _ceiling_count(args.count, batch), batch=batch)
                    got = asyncio.run(asyncio.wait_for(run, deadline - time.monotonic()))
                    ceiling[batch].append(got)
            if "peer" not in args.skip:  # the bound on any one-row-per-job queue, PgQueuer's too
                with console.status(f"run {n}: minimal queue table, batch {GOAL_BATCH}"):
                    count = _ceiling_count(args.count, GOAL_BATCH)
                    run = minimal_ceiling_once(dsn, count, batch=GOAL_BATCH)
                    minimal.append(asyncio.run(asyncio.wait_for(run, deadline - time.monotonic())))
            for workers in args.workers:
                with console.status(f"run {n}: duetime drain, {workers} workers"):
                    drain[workers].append(drain_once(dsn, args.count, workers, deadline))
                if "peer" not in args.skip:
                    with console.status(f"run {n}: PgQueuer drain, {workers} processes"):
                        ran = pgqueuer_once(dsn, args.count, workers, deadline)
                        peer.setdefault(workers, []).append(ran)
            console.print(_progress(n, ceiling, drain, peer), highlight=False)
        asyncio.run(database.truncate(dsn))
        if "submit" not in args.skip:
            with console.status(f"GET /health, POST /task and /tasks, {args.requests:,} each"):
                http = http_rates(dsn, args.requests, args.senders, deadline)
        if "lag" not in args.skip:
            for busy in (False, True):
                with console.status(f"start lag, {'busy' if busy else 'idle'} workers"):
                    lag.append(
                        lag_once(dsn, args.lag_tasks, args.lag_spread, LAG_WORKERS, busy, deadline)
                    )
        if "scale" not in args.skip:
            # The empty table's runs, then the ballast's, loaded once (it takes a minute).
            for rows in (0, args.scale_rows):
                for n in range(1, args.runs + 1):
                    with console.status(f"scale run {n}: {rows:,} future + {rows:,} finished"):
                        scaled = scale_once(
                            dsn,
                            args.count,
                            SCALE_WORKERS,
                            rows,
                            rows,
                            deadline,
                            reuse_ballast=rows > 0 and n > 1,
                        )
                        scale.append(scaled)
        if "schedules" not in args.skip:
            schedules = _schedules(dsn, args, deadline, console)
    params = Params(
        count=args.count,
        workers=args.workers,
        batches=args.batches,
        runs=args.runs,
        requests=args.requests,
        senders=args.senders,
        lag_tasks=args.lag_tasks,
        lag_spread=args.lag_spread,
        scale_rows=args.scale_rows,
        skipped=sorted(args.skip),
    )
    return Results(
        date,
        commit,
        machine(postgres, where),
        params,
        load_before,
        ceiling,
        drain,
        peer,
        http,
        lag,
        scale,
        minimal,
        schedules,
    )


def _schedules(
    dsn: str, args: argparse.Namespace, deadline: float, console: Console
) -> ScheduleResults:
    """The drain with no schedules and beside some, alternating, then the scheduler's passes."""
    got = ScheduleResults()
    workers = SCHEDULE_WORKERS
    for n in range(1, args.runs + 1):
        with console.status(f"schedules run {n}: duetime drain, {workers} workers, no schedules"):
            got.plain.append(plain_once(dsn, args.count, workers, deadline))
        with console.status(f"schedules run {n}: the same beside {BESIDE_SCHEDULES:,} schedules"):
            got.beside.append(beside_once(dsn, args.count, workers, deadline))
        with console.status(f"schedules run {n}: scheduler passes over {PASS_SCHEDULES:,}"):
            passes = passes_once(dsn, deadline)
            got.passes.extend(passes)
        console.print(
            f"schedules run {n} (tasks/s): plain {got.plain[-1].tasks_per_s:,.0f} · beside "
            f"{got.beside[-1].drain.tasks_per_s:,.0f} ({got.beside[-1].made} occurrences made); "
            "passes (ms): " + " · ".join(f"{p.due} {p.wall_ms:,.0f}" for p in passes),
            highlight=False,
        )
    return got


def _ceiling_count(count: int, batch: int) -> int:
    """Small batches are slow: 2,000 claims per connection tell their rate as well as more."""
    return min(count, batch * 2000 * CEILING_CONNECTIONS)


def _progress(
    n: int,
    ceiling: dict[int, list[CeilingRun]],
    drain: dict[int, list[DrainRun]],
    peer: dict[int, list[PeerRun]],
) -> str:
    parts = [f"ceiling@{b} {runs[-1].tasks_per_s:,.0f}" for b, runs in ceiling.items()]
    parts += [f"duetime×{w} {runs[-1].tasks_per_s:,.0f}" for w, runs in drain.items()]
    parts += [f"PgQueuer×{w} {runs[-1].jobs_per_s:,.0f}" for w, runs in peer.items()]
    return f"run {n} (tasks/s): " + " · ".join(parts)


if __name__ == "__main__":
    sys.exit(main())
