"""The results: a rich table on the terminal, docs/benchmarks.md (runs accumulate), raw JSON."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import re
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .ceiling import CeilingRun
from .drain import DrainRun
from .figures import figure_rows, goal_rows, notes
from .lag import LagRun
from .peer import PeerRun
from .plot import write_plot
from .scale import ScaleRun
from .schedules import ScheduleResults
from .submit import BulkRun, HttpRun

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "benchmarks.md"
PLOT = ROOT / "docs" / "benchmarks.png"
RESULTS_DIR = ROOT / "bench-results"
# A run's section in DOC lies between these markers; a new run keeps every earlier section.
RUN_SECTION = re.compile(r"^<!-- bench-run .*?^<!-- /bench-run -->$", re.DOTALL | re.MULTILINE)


@dataclass(frozen=True)
class Machine:
    cpus: int
    cpu_model: str
    memory_gib: float
    system: str
    python: str
    postgres: str
    database: str  # where the server was: embedded in a temp dir, or DATABASE_URL's


@dataclass(frozen=True)
class Params:
    count: int
    workers: list[int]
    batches: list[int]
    runs: int
    requests: int
    senders: int
    lag_tasks: int
    lag_spread: int
    scale_rows: int
    skipped: list[str]


@dataclass(frozen=True)
class Results:
    date: datetime
    commit: str
    machine: Machine
    params: Params
    load_before: tuple[float, float, float]  # load average (1, 5, 15 min) as the bench began
    ceiling: dict[int, list[CeilingRun]]  # by rows per claim
    drain: dict[int, list[DrainRun]]  # by worker processes
    peer: dict[int, list[PeerRun]]  # by PgQueuer processes
    http: tuple[HttpRun, HttpRun, BulkRun] | None  # GET /health, POST /task, POST /tasks
    lag: list[LagRun]  # idle, then busy
    scale: list[ScaleRun]  # empty, then loaded
    minimal: list[CeilingRun] = dataclasses.field(default_factory=list)  # minimal table, batch 100
    schedules: ScheduleResults | None = None  # the drain beside schedules, the scheduler's pass


def machine(postgres: str, database: str) -> Machine:
    cpuinfo = _read("/proc/cpuinfo")
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    mem_kib = re.search(r"^MemTotal:\s*(\d+) kB", _read("/proc/meminfo"), re.MULTILINE)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return Machine(
        cpus=cpus or 0,
        cpu_model=model.group(1).strip() if model else platform.processor() or "unknown",
        memory_gib=int(mem_kib.group(1)) / 2**20 if mem_kib else 0.0,
        system=f"{platform.system()} {platform.release()}",
        python=platform.python_version(),
        postgres=postgres,
        database=database,
    )


def _read(path: str) -> str:
    return Path(path).read_text() if Path(path).exists() else ""


def git_commit() -> str:
    """The short HEAD, with +dirty when the work tree has changes (read-only git calls)."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "--no-optional-locks", *args], cwd=ROOT, capture_output=True, text=True
        )
        return done.stdout.strip() if done.returncode == 0 else ""

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + ("+dirty" if git("status", "--porcelain") else "")


def print_table(r: Results, console: Console) -> None:
    def plain(cell: str) -> str:
        return cell.replace("`", "").replace("**", "")

    goals = Table(title=f"issue 5's goals · {r.commit} · {r.date:%Y-%m-%d %H:%M} UTC")
    for column in ("goal", "measured", ""):
        goals.add_column(column)
    for row in goal_rows(r):
        goals.add_row(*map(plain, row))
    console.print(goals)
    table = Table(title="figures")
    table.add_column("figure")
    table.add_column("result", justify="right")
    table.add_column("detail")
    for row in figure_rows(r):
        table.add_row(*map(plain, row))
    console.print(table)
    for line in notes(r):
        console.print(plain(line), highlight=False)


# -- docs/benchmarks.md ------------------------------------------------------------------------

HEADER = """\
# Benchmarks

<!-- Written by `just bench` (scripts/bench/report.py): change that, not this file. The sections
between bench-run markers are kept, newest first, when a run adds its own. -->

`just bench` measures the figures below on the machine it runs on. It adds them to this file,
newest run first, with earlier runs under [History](#history), and draws the latest run's
throughput in [benchmarks.png](benchmarks.png). The raw results go to `bench-results/` as JSON,
which is not committed. The server is an embedded PostgreSQL in a temp dir, or the one in
`DATABASE_URL`; either way the bench creates and drops its own database. Every figure of a run is
measured on the same server in the same sitting. Figures from different machines, or from a
shared machine at different times, do not compare; the ratios within one run do. A full run
takes about ten minutes; `--skip peer,lag,scale,submit,schedules` leaves sections out.

## What is measured

**Raw SQL limit.** A fresh table (TRUNCATE) gets due `noop` tasks in one `INSERT … SELECT …
generate_series`, then `ANALYZE`. Two asyncpg connections, with the worker's server settings,
each loop over the worker's own statements until a claim comes back empty: `task_claim_due` for
1, 10 or 100 rows (`--batches`), then `task_finish_many` of that batch. There is no handler, no
pool and no buffering. The rate is the table's own: tasks / (max(`finished_at`) −
min(`started_at`)). The count is `--count` (50,000), at most 4,000 claims' worth for small
batches. This is what the claim path gives on this server and table shape; the drain's distance
from it is the cost of everything else in the worker.

**Minimal queue table.** Once per run, when PgQueuer runs too: the same two loops at batch 100 on
a table made for the purpose (`id`, `status`, `execution_time`, `attempts`, `worker_id`,
`started_at`, `finished_at`; a primary key and one partial index on due rows; no payload, no
checks) with the least claim and completion that table allows, then dropped. No queue that keeps
one row per job and claims with `SKIP LOCKED`, PgQueuer included, can drain faster on this server:
this is the claim and the completion with nothing else. The peer goal's row shows it as a
multiple of PgQueuer's drain.

**duetime drain.** The same load of `--count` tasks. Then 1, 2 and 4 (`--workers`) worker
processes start with exactly the CLI's command (`duetime worker`: default concurrency 100, log
level WARNING) and run until every task is done. The bench polls a count every 0.2 s, with a
deadline, then stops the workers with SIGTERM. The rate is timed by the table, as above, so
process start-up is not counted. Everything after the first claim is, including any time the
first worker up claims alone while the others are still starting; the notes under the table say
how long that was.

**PgQueuer drain.** PgQueuer (a dev-only dependency) drains the same number of no-op jobs in its
own tables, in the same database, with the same number of processes. Its schema is installed as
`pgq install` does it, with its `pgq autovac` table settings. The jobs are enqueued in bulk, then
analysed. Each process (`scripts/bench/peer_consumer.py`) runs one `PgQueuer` on one asyncpg
connection under uvloop, with `batch_size=100`, the documented advice for short jobs, and its
other settings at their defaults. The module's docstring gives the sources. The rate is timed by
PgQueuer's own log table, from the first `picked` to the last `successful`. The runs of all three
alternate (ceiling, duetime, PgQueuer, for each process count), `--runs` (3) times; each figure
is the median.

**Submit rate.** One `duetime api` process on a free loopback port. `GET /health` takes 10,000
requests from 64 concurrent senders, each with its own `httpx.AsyncClient` and one keep-alive
connection, in the style of `scripts/submit_task.py`: the ceiling of the HTTP stack with this
client. Then `scripts/submit_task.py --count 10000 --concurrency 64 --json` runs as a user runs
it: its default task mix, due within ±30 min, no workers running. Its requests/s and latency
p50/p99 are as the script reports them. Both are timed from before the clients are made. The
client, the API and PostgreSQL share the machine's cores, so neither figure is what the API gives
with a machine of its own. The CPU time per request of the API process and of the client shows
which one set the pace. Then `POST /tasks` sends 1,000 `noop` tasks per request, 10 ×
`--requests` tasks from 4 concurrent senders, in tasks/s; the bodies are built before the clock
starts.

**Start lag.** Two workers start on an empty table and are warmed up until each has LISTENed
and a first batch is done. Then 5,000 (`--lag-tasks`) tasks due evenly over the next 10 s
(`--lag-spread`), starting 1 s ahead, go in with one INSERT and the NOTIFY the API would send.
The lag of a task is `started_at − execution_time`: the start of the claim that took it. `idle`
means the workers have nothing else to do. `busy` adds a background stream of 1,000 tasks/s
due now, inserted and announced every 10 ms, which the workers run beside the measured ones with
free slots left; only the measured tasks count. "Started early" counts tasks that started
before they were due, and it must be 0.

**Scale.** The drain of `--count` due tasks by 2 workers, `--runs` times on a table holding
only those, then `--runs` times beside 1,000,000 (`--scale-rows`) future tasks (due in 1 to 30
days) and 1,000,000 finished ones (90% done, 10% failed, all within their retention), loaded once
in bulk and vacuumed; each run's drained tasks join the finished ones. Ids are UUIDv7, as the API
makes them. Before each drain, `EXPLAIN (ANALYZE, BUFFERS)` of one claim of 100 rows, rolled
back, gives its time, its buffers and the shape of its plan. The goal compares the medians and
wants one plan shape across all runs.

**Schedules.** Every worker runs the scheduler beside its claim loop, on the same pool: about
once a second it leases the schedules due within 10 s (a statement per 100) and makes each one's
occurrences (a statement per schedule). The drain of `--count` tasks by 2 workers runs `--runs`
times with no schedules, alternating with the same drain beside 1,000 enabled schedules of the
type `noop`, every 60 s, their due times spread evenly over the minute. They are inserted in one
statement, then one pass in the bench process makes their occurrences due within 10 s, as a
fleet already running would have: from then on each pass of a worker's scheduler finds the ~17
schedules a second that have come within the horizon since. The workers run the occurrences too;
only the bench's own tasks (of no schedule) are counted, and the row says how many occurrences
the workers made during each drain. The goal compares the two medians. Then, with no workers and
nothing else running, `Scheduler(pool, horizon=10).run_once()` runs in the bench process on a
pool of one connection over 10,000 schedules every 60 s: once with all due within the next 10 s
(one pass takes every one), then 5 times a second apart on the database's clock after a pass
that filled the horizon (about 167 each). The time is the pass's wall time at the client over
loopback, with the part spent awaiting statements; "server backend CPU" is the `/proc` CPU time
(10 ms ticks) of the server process that served the pool, when the server runs on this machine.

## Why the drain is not 3× PgQueuer's

The goal asks the drain with 2 processes for 3× PgQueuer's. On this machine (2 cores shared by
PostgreSQL and the processes) no queue of one row per job can get there with a worker in Python:
the minimal queue table's bare loop, with no handler and nothing but the two statements, reaches
3.4–3.6× PgQueuer's drain, and a worker adds its own work on the same two cores. Measured by
hand at 1d8fc9d (`/proc` CPU times over a drain of 100,000 tasks by 2 workers): PostgreSQL spent
80 µs per task, the two workers 37 µs per task (decoding the claim, one asyncio task per attempt,
the completion batch). Two cores divided by 117 µs is 17,000 tasks/s at most; that drain ran at
13,900. Even the minimal table's ~54 µs of server and client time plus the worker's 37 µs would
give about 22,000 tasks/s, 2.1× PgQueuer.

What made a task cheaper (each measured A/B in one sitting; figures in the commits):
- **The task_type CHECK** (migration 0005). PostgreSQL checks every CHECK of a row on every
  INSERT and UPDATE. `~ '^[A-Za-z0-9_.:-]{1,100}$'` cost 13 µs a row (the regex engine expands
  the bounded repetition); `+` with a length comparison costs 0.8 µs. Bulk inserts: Postgres CPU
  16.3 → 11.5 ms per 1,000 tasks. Drain: +7% with the type `noop`, more with longer type names.
- **No index on every row's `(status, id)`** (migration 0004): each claim, heartbeat and finish
  added an entry to it. `tasks_page_idx` holds only submitted, failed and deleted rows. Drain +8%.
- **Bulk submit**: Litestar decoded each body twice more after the strict check (now it takes
  the strict check's result); ids are made as asyncpg's own UUID type from bytes; each distinct
  policy of a batch is sent once and each task names its own by number (5 arrays a task, not 10).
  API CPU 34 → 16 ms per 1,000 tasks; 27,000 → 51,000 tasks/s.

Measured and not taken: a completion statement for all-`done` batches (+3.5% on the raw loop, a
second statement to keep right); the claim without its next-due look (no difference).

## Choices measured once

These were measured by hand on this machine, not by every run; they explain why the code is as
it is.

- **uvicorn, not granian** (2026-11-23, granian 2.8.7, uvicorn 0.54 with uvloop and httptools,
  one process each). Through the bench's own client the two are level, because the client uses
  4–5 times the server's CPU per request. Under `wrk` (64 connections), granian serves
  `GET /health` about 1.5× faster, because its Rust I/O thread uses the second core; pinned to
  one core, the gain is about 8%. On `POST /task` it serves no more requests and uses 15–18%
  more CPU per request (0.37 against 0.31 ms): the cost of that endpoint is in Litestar, msgspec
  and asyncpg, not in HTTP parsing. Granian's shutdown also waits without limit for in-flight
  requests, or kills the worker before the app closes its pool. duetime stays on uvicorn.
- **No fillfactor on `tasks`.** A lower fillfactor pays off through HOT updates, and no update of
  a task can be HOT: the claim and the finish change `status`, which an index holds and the
  partial indexes test. Fillfactor 70 against 100, raw SQL limit at batch 100, 4 alternating runs
  each on PostgreSQL 15: medians 15,154 against 14,082 tasks/s, with the runs overlapping. That
  is not enough to justify a table a third larger.
- **`INSERT … unnest`, not COPY, for inserts.** In an A/B, `copy_records_to_table` took 34–37 ms
  per 1,000 tasks against 37–39 ms for `unnest`. The cost is in the rows and their indexes, not
  in the statement. `unnest` also returns what the API needs (the earliest due time) in the same
  round trip.
- **A deadline on every statement costs nothing measurable** (2026-12-03, commit 2e14014, PG 15
  at 127.0.0.1). `wrk -t1 -c64 -d10s` against one `duetime api` process, the API as shipped
  (`TimedPool`: two `asyncio.timeout_at` scopes per statement) alternating with the same API
  whose `TimedPool._run` was patched to acquire and run without them. `GET /task/{id}` (one
  statement a request), 8 rounds: timed ÷ untimed 1.02, 0.98, 0.82, 1.08, 1.14, 0.89, 1.00,
  0.69, median 0.99 (4,400–7,500 req/s either way); `POST /task` with distinct bodies, 3 rounds:
  0.97, 1.40, 0.92. The spread is the machine's; the deadline's cost is below it.

"""


def _cli(p: Params) -> str:
    def listed(values: list[int]) -> str:
        return ",".join(map(str, values))

    skip = f" --skip {','.join(p.skipped)}" if p.skipped else ""
    return (
        f"just bench --count {p.count} --workers {listed(p.workers)} "
        f"--batches {listed(p.batches)} --runs {p.runs} --requests {p.requests} "
        f"--senders {p.senders} --lag-tasks {p.lag_tasks} --lag-spread {p.lag_spread} "
        f"--scale-rows {p.scale_rows}{skip}"
    )


def run_section(r: Results, plot: str | None = None) -> str:
    m = r.machine
    load = " / ".join(f"{x:.2f}" for x in r.load_before)
    lines = [
        f"<!-- bench-run {r.date.isoformat()} -->",
        f"### {r.date:%Y-%m-%d %H:%M} UTC · commit `{r.commit}`",
        "",
        f"- Machine: {m.cpus} CPUs ({m.cpu_model}), {m.memory_gib:.1f} GiB memory, {m.system}; "
        f"load average at the start {load} (1 / 5 / 15 min)",
        f"- {m.postgres} ({m.database}); Python {m.python}",
        f"- `{_cli(r.params)}`",
        "",
        "| issue 5's goal | measured | |",
        "|---|--:|---|",
        *(f"| {' | '.join(row)} |" for row in goal_rows(r)),
        "",
        "| figure | result | detail |",
        "|---|--:|---|",
        *(f"| {' | '.join(row)} |" for row in figure_rows(r)),
        "",
        *(f"{line}\n" for line in notes(r)),
        *([f"![throughput, this run]({plot})", ""] if plot else []),
        "<!-- /bench-run -->",
    ]
    return "\n".join(lines)


def write_doc(r: Results, doc: Path = DOC, plot: Path = PLOT) -> list[str]:
    """The doc with this run on top (and its plot beside it); the paths written."""
    write_plot(r, plot)
    earlier = RUN_SECTION.findall(doc.read_text()) if doc.exists() else []
    # The plot file is the latest run's: an earlier section must not claim it.
    earlier = [re.sub(r"^!\[throughput, this run\]\(.*\)\n\n?", "", s, flags=re.M) for s in earlier]
    history = "\n\n".join(earlier) if earlier else "No earlier runs."
    section = run_section(r, os.path.relpath(plot, doc.parent))
    text = f"{HEADER}## Latest run\n\n{section}\n\n## History\n\n{history}\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)
    return [os.path.relpath(path, ROOT) for path in (doc, plot)]


def write_json(r: Results, directory: Path = RESULTS_DIR) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{r.date:%Y%m%dT%H%M%SZ}-{r.commit}.json"
    record = dataclasses.asdict(r)
    record["date"] = r.date.isoformat()
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path
