"""Load generator: submit many tasks to a duetime API, report how it went, optionally watch them.

    uv run python scripts/submit_task.py [--count 10000] [--spread-minutes 30] [--types foo,bar,baz]
        [--url http://127.0.0.1:8000] [--concurrency 64] [--ids-file PATH]
        [--watch [--timeout 3600]] [--json]

Each task gets a random type from --types and an execution_time uniform in [now - M, now + M].
Only --url is ever contacted (proxy variables in the environment are ignored). --json prints the
summary as one JSON object on stdout instead of the table (and, with --watch, a second line with
the final counts); the progress display stays on stderr.

Exit codes: 0 every task accepted (and, with --watch, every accepted task reached done, failed or
deleted); 1 some were rejected; 2 bad arguments; 3 --watch gave up (--timeout passed, or the API
answered the list call with an error).
"""

import argparse
import asyncio
import functools
import math
import random
import ssl
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import httpx
import msgspec
from rich.console import Console
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

ACTIVE = ("submitted", "started_executing")
TERMINAL = ("done", "failed", "deleted")
PAGE_SIZE = 1000  # the API's maximum page: fewest round trips per poll
POLL_SECONDS = 0.5
EXIT_OK, EXIT_REJECTED, EXIT_WATCH_FAILED = 0, 1, 3


@dataclass(frozen=True)
class Options:
    count: int
    spread_minutes: float
    url: str
    concurrency: int
    types: tuple[str, ...]
    watch: bool
    ids_file: Path | None
    timeout: float
    json: bool = False


def _at_least(minimum: float, kind: Callable[[str], float]) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        value = kind(raw)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {raw}")
        return value

    return parse


def _type_list(raw: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in raw.split(",") if name.strip())
    if not names:
        raise argparse.ArgumentTypeError("needs at least one task type")
    return names


def parse_args(argv: Sequence[str] | None = None) -> Options:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add = p.add_argument
    add("--count", type=_at_least(0, int), default=10_000, help="tasks to submit")
    add("--spread-minutes", type=_at_least(0, float), default=30.0, help="M (default 30)")
    add("--url", default="http://127.0.0.1:8000", help="the API's base URL")
    add("--concurrency", type=_at_least(1, int), default=64, help="requests in flight, pool size")
    add("--types", type=_type_list, default=("foo", "bar", "baz"), help="comma-separated types")
    add("--watch", action="store_true", help="then follow the tasks until all are finished")
    add("--ids-file", type=Path, help="write the accepted task ids here, one a line")
    add("--timeout", type=_at_least(0.001, float), default=3600.0, help="--watch limit, seconds")
    add("--json", action="store_true", help="print the summary as one JSON object on stdout")
    ns = p.parse_args(argv)
    url: str = ns.url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        p.error(f"--url must be an http:// or https:// URL, got {ns.url!r}")
    return Options(**{**vars(ns), "url": url})


def _utcnow() -> datetime:
    return datetime.now(UTC)


def make_body(
    clock: Callable[[], datetime], rng: random.Random, spread: timedelta, types: Sequence[str]
) -> dict[str, str]:
    now = clock()
    if now.tzinfo is None:
        raise ValueError("the clock must return an aware datetime: the API refuses naive times")
    offset = timedelta(seconds=rng.uniform(-1.0, 1.0) * spread.total_seconds())
    return {"task_type": rng.choice(types), "execution_time": (now + offset).isoformat()}


def percentile(values: Iterable[float], q: float) -> float:
    """Nearest-rank percentile: always one of the observed values, never an interpolation."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be within [0, 100], got {q}")
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass(frozen=True)
class Outcome:
    label: str  # "201", another status code, or "error: <exception class>"
    seconds: float | None  # None when no response came back: a refused connection has no latency
    task_id: UUID | None = None


@dataclass
class Summary:
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    task_ids: list[UUID] = field(default_factory=list)


def summarize(outcomes: Iterable[Outcome]) -> Summary:
    summary = Summary()
    for outcome in outcomes:
        if outcome.seconds is not None:
            summary.latencies_ms.append(outcome.seconds * 1000)
        if outcome.task_id is not None:
            summary.accepted += 1
            summary.task_ids.append(outcome.task_id)
        else:
            summary.rejected[outcome.label] += 1
    return summary


class _HasId(msgspec.Struct):  # POST's answer, and a row of a list page: only the id matters
    task_id: UUID


class _Page(msgspec.Struct):
    tasks: list[_HasId]
    next_cursor: str | None


async def submit_one(client: httpx.AsyncClient, body: dict[str, str]) -> Outcome:
    start = time.perf_counter()
    try:
        response = await client.post("/task", json=body)
    except httpx.HTTPError as exc:
        return Outcome(f"error: {type(exc).__name__}", None)
    seconds = time.perf_counter() - start
    if response.status_code != 201:
        return Outcome(str(response.status_code), seconds)
    try:
        return Outcome("201", seconds, msgspec.json.decode(response.content, type=_HasId).task_id)
    except msgspec.DecodeError:
        return Outcome("201 without a task_id", seconds)


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.speed
        return Text("—/s" if speed is None else f"{speed:,.0f}/s", style="cyan")


@functools.cache
def _tls() -> ssl.SSLContext:
    # One context for every client: httpx builds a new one per client otherwise (~35 ms of CPU
    # each, loading the CA bundle), which 64 senders would pay inside the measured time.
    return ssl.create_default_context()


def make_client(url: str, connections: int) -> httpx.AsyncClient:
    # trust_env=False: no proxy from the environment, so nothing but --url is ever contacted.
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(
        base_url=url, limits=limits, timeout=30.0, trust_env=False, verify=_tls()
    )


async def submit_all(opts: Options, console: Console) -> list[Outcome]:
    rng, spread = random.Random(), timedelta(minutes=opts.spread_minutes)
    outcomes: list[Outcome] = []
    todo = iter(range(opts.count))  # shared by the workers: each index is taken exactly once
    columns = (
        TextColumn("submitting"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("submit", total=opts.count)

        async def worker() -> None:
            # One client, one keep-alive connection per sender: httpx's shared pool costs ~8 ms of
            # CPU per request at 64 connections (it rescans the pool), which would make this
            # script, not the API, the bottleneck.
            async with make_client(opts.url, 1) as client:
                for _ in todo:
                    body = make_body(_utcnow, rng, spread, opts.types)
                    outcomes.append(await submit_one(client, body))
                    progress.advance(bar)

        await asyncio.gather(*(worker() for _ in range(min(opts.concurrency, opts.count))))
    return outcomes


def summary_table(summary: Summary, elapsed: float) -> Table:
    table = Table(title="submit_task", show_header=False)
    table.add_row("accepted (201)", f"{summary.accepted:,}")
    for label, n in sorted(summary.rejected.items()):
        table.add_row(label if label.startswith("error") else f"rejected {label}", f"{n:,}")
    total = summary.accepted + summary.rejected.total()
    table.add_row("total time", f"{elapsed:.2f} s")
    table.add_row("requests/s", f"{total / elapsed:,.0f}" if elapsed > 0 else "—")
    if summary.latencies_ms:
        for name, q in (("p50", 50.0), ("p99", 99.0), ("max", 100.0)):
            table.add_row(f"latency {name}", f"{percentile(summary.latencies_ms, q):.1f} ms")
    return table


def summary_record(summary: Summary, elapsed: float) -> dict[str, object]:
    """The summary table's figures, for --json: rates per second, latencies in milliseconds."""
    total = summary.accepted + summary.rejected.total()
    latency = summary.latencies_ms
    return {
        "accepted": summary.accepted,
        "rejected": dict(sorted(summary.rejected.items())),
        "total": total,
        "seconds": elapsed,
        "requests_per_s": total / elapsed if elapsed > 0 else None,
        "latency_ms": {
            name: percentile(latency, q) if latency else None
            for name, q in (("p50", 50.0), ("p99", 99.0), ("max", 100.0))
        },
    }


async def count_ours(client: httpx.AsyncClient, status: str, ours: frozenset[UUID]) -> int:
    """How many of our tasks are in `status`; pages only the id range our tasks span.

    Ids are UUIDv7 and pages are in id order, so starting just below our smallest id and stopping
    past our largest skips other runs' tasks that sit before or after ours.
    """
    low, high = min(ours), max(ours)
    cursor: str | None = str(UUID(int=max(low.int - 1, 0)))
    found = 0
    while cursor is not None:
        params = {"status": status, "limit": str(PAGE_SIZE), "cursor": cursor}
        response = await client.get("/task", params=params)
        response.raise_for_status()
        page = msgspec.json.decode(response.content, type=_Page)
        found += sum(1 for row in page.tasks if row.task_id in ours)
        cursor = page.next_cursor
        if cursor is not None and UUID(cursor) >= high:
            break
    return found


def _watch_table(counts: dict[str, int], total: int, started: float) -> Table:
    table = Table(title=f"watching {total:,} tasks · {time.monotonic() - started:.0f} s")
    table.add_column("status")
    table.add_column("tasks", justify="right")
    for status, n in counts.items():
        table.add_row(status, f"{n:,}")
    return table


async def watch(client: httpx.AsyncClient, ids: Sequence[UUID], console: Console) -> dict[str, int]:
    """Poll until every id is terminal; the final count of our tasks in each status."""
    ours, started = frozenset(ids), time.monotonic()
    counts: dict[str, int] = {s: 0 for s in (*ACTIVE, *TERMINAL)}
    if not ours:
        return counts
    with Live(
        _watch_table(counts, len(ours), started), console=console, refresh_per_second=2
    ) as live:
        while True:
            # Only the active statuses are scanned each poll: they shrink to nothing as the run
            # finishes, while scanning the terminal ones would cost all our tasks every time.
            active = {s: await count_ours(client, s, ours) for s in ACTIVE}
            shown = {**active, "done/failed/deleted": len(ours) - sum(active.values())}
            if not any(active.values()):
                # Terminal statuses are absorbing, so a task counted here really is finished; one
                # that moved (handed back) between the two active scans is missing, and we go on.
                final = {s: await count_ours(client, s, ours) for s in TERMINAL}
                if sum(final.values()) == len(ours):
                    counts = {**active, **final}
                    live.update(_watch_table(counts, len(ours), started), refresh=True)
                    return counts
            live.update(_watch_table(shown, len(ours), started))
            await asyncio.sleep(POLL_SECONDS)


async def run(opts: Options, out: Console, err: Console) -> int:
    async with make_client(opts.url, 2) as client:
        started = time.perf_counter()
        outcomes = await submit_all(opts, err)
        summary = summarize(outcomes)
        elapsed = time.perf_counter() - started
        if opts.json:
            out.out(msgspec.json.encode(summary_record(summary, elapsed)).decode(), highlight=False)
        else:
            out.print(summary_table(summary, elapsed))
        if opts.ids_file is not None:
            opts.ids_file.write_text("".join(f"{task_id}\n" for task_id in summary.task_ids))
        code = EXIT_REJECTED if summary.rejected else EXIT_OK
        if opts.watch:
            try:
                async with asyncio.timeout(opts.timeout):
                    counts = await watch(client, summary.task_ids, err)
            except TimeoutError:
                err.print(f"[red]--watch: not all tasks finished within {opts.timeout:g} s")
                return EXIT_WATCH_FAILED
            except (httpx.HTTPError, msgspec.DecodeError) as exc:
                err.print(f"[red]--watch: listing tasks failed: {exc}")
                return EXIT_WATCH_FAILED
            if opts.json:
                final = {"final": {s: counts[s] for s in TERMINAL}}
                out.out(msgspec.json.encode(final).decode(), highlight=False)
            else:
                out.print("final: " + ", ".join(f"{s} {counts[s]:,}" for s in TERMINAL))
        return code


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(run(parse_args(argv), Console(), Console(stderr=True)))


if __name__ == "__main__":
    sys.exit(main())
