"""The results: a rich table on the terminal, docs/benchmarks.md (runs accumulate), raw JSON."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import re
import statistics
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .ceiling import CeilingRun
from .drain import DrainRun
from .submit import BULK_BATCH, BULK_SENDERS, BulkRun, HttpRun

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "benchmarks.md"
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
    workers: int
    runs: int
    ceiling_connections: int
    ceiling_batch: int
    requests: int
    senders: int


@dataclass(frozen=True)
class Results:
    date: datetime
    commit: str
    machine: Machine
    params: Params
    load_before: tuple[float, float, float]  # load average (1, 5, 15 min) as the bench began
    drain: list[DrainRun]
    ceiling: list[CeilingRun]
    health: HttpRun
    post: HttpRun
    bulk: BulkRun


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


# -- the figures --------------------------------------------------------------------------------


def _runs(rates: list[float]) -> str:
    return "runs " + " · ".join(f"{rate:,.0f}" for rate in rates)


def _http(run: HttpRun) -> tuple[str, str]:
    failed = f" ({run.failed:,} failed)" if run.failed else ""
    detail = (
        f"p50 {run.p50_ms:.0f} ms, p99 {run.p99_ms:.0f} ms; CPU per request: "
        f"API {run.api_cpu_ms:.2f} ms, client {run.client_cpu_ms:.2f} ms"
    )
    return f"{run.requests_per_s:,.0f} req/s{failed}", detail


def figure_rows(r: Results) -> list[tuple[str, str, str]]:
    """(figure, result, detail), the same on the terminal and in the doc."""
    p = r.params
    drain = statistics.median(run.tasks_per_s for run in r.drain)
    ceiling = statistics.median(run.tasks_per_s for run in r.ceiling)
    return [
        (
            f"Drain: {p.count:,} due noop tasks, {p.workers} `duetime worker`",
            f"**{drain:,.0f} tasks/s**",
            f"median of {len(r.drain)}; {_runs([run.tasks_per_s for run in r.drain])}",
        ),
        (
            f"Raw SQL ceiling: claim + complete, {p.ceiling_connections} connections, "
            f"batch {p.ceiling_batch}",
            f"{ceiling:,.0f} tasks/s",
            f"median of {len(r.ceiling)}; {_runs([run.tasks_per_s for run in r.ceiling])}",
        ),
        ("Drain / raw ceiling", f"{drain / ceiling:.0%}", ""),
        (f"GET /health, {p.requests:,} requests, {p.senders} senders", *_http(r.health)),
        (f"POST /task (submit_task.py), {p.requests:,} tasks, {p.senders} senders", *_http(r.post)),
        ("POST /task / GET /health", f"{r.post.requests_per_s / r.health.requests_per_s:.0%}", ""),
        (
            f"POST /tasks (bulk, {BULK_BATCH:,} per request), {r.bulk.tasks:,} tasks, "
            f"{BULK_SENDERS} senders",
            f"{r.bulk.tasks_per_s:,.0f} tasks/s"
            + (f" ({r.bulk.failed:,} requests failed)" if r.bulk.failed else ""),
            f"goal ≥ 50,000 tasks/s; API CPU {r.bulk.api_cpu_ms:.0f} ms per 1,000 tasks",
        ),
    ]


def drain_notes(r: Results) -> str:
    """How the drain runs went inside: the workers' start skew, claim sizes, the split."""
    skews = [max(w.first_claim_s for w in run.workers) for run in r.drain]
    sizes = [run.tasks / sum(w.claims for w in run.workers) for run in r.drain]
    splits = [" / ".join(f"{w.tasks:,}" for w in run.workers) for run in r.drain]
    return (
        f"Drain runs, run by run: the last worker's first claim came "
        f"{' · '.join(f'{s:.2f}' for s in skews)} s after the first one's; "
        f"mean claim {' · '.join(f'{s:.0f}' for s in sizes)} tasks; "
        f"tasks per worker {' · '.join(splits)}."
    )


def print_table(r: Results, console: Console) -> None:
    table = Table(title=f"duetime bench · {r.commit} · {r.date:%Y-%m-%d %H:%M} UTC")
    table.add_column("figure")
    table.add_column("result", justify="right")
    table.add_column("detail")
    for row in figure_rows(r):
        table.add_row(*(cell.replace("`", "").replace("**", "") for cell in row))
    console.print(table)
    console.print(drain_notes(r), highlight=False)


# -- docs/benchmarks.md ------------------------------------------------------------------------

HEADER = """\
# Benchmarks

<!-- Written by `just bench` (scripts/bench/report.py): change that, not this file. The sections
between bench-run markers are kept, newest first, when a run adds its own. -->

`just bench` measures the figures below on the machine it runs on and adds them to this file,
the newest run first and earlier runs under [History](#history); the raw results go to
`bench-results/` as JSON (not committed). The server is an embedded PostgreSQL in a temp dir,
or the one in `DATABASE_URL` (the bench creates and drops its own database there). Figures
from different machines, or from a shared machine at different times, do not compare; the
ratios within one run do.

## What is measured

**Drain rate.** A fresh table (TRUNCATE) gets `--count` (20,000) `noop` tasks, all already due,
in one `INSERT … SELECT … generate_series`, then `ANALYZE`. Then `--workers` (2) worker processes
start with exactly the CLI's command (`duetime worker`: default concurrency 100, log level
WARNING) and run until every task is done (a count polled every 0.2 s, with a deadline); they
are stopped with SIGTERM. The rate is the table's own: tasks / (max(`finished_at`) −
min(`started_at`)), so process start-up is not counted but everything after the first claim
is, including any time the first worker up claims alone while the other is still starting (the
note under each table says how long). Three runs (`--runs`); the figure is their median.

**Raw SQL ceiling.** The same load, drained without a worker: 2 asyncpg connections (with the
worker's server settings) each loop over the worker's own statements, `task_claim_due` for 100
rows then `task_finish_many` of that batch, with no handler, no pool and no buffering, until a
claim comes back empty. Timed the same way, three runs. It is what the claim path gives on this
server; the drain rate's distance from it is the cost of everything else in the worker.

**Submit rate.** One `duetime api` process on a free loopback port. First `GET /health`: 10,000
requests from 64 concurrent senders, each with its own `httpx.AsyncClient` and one keep-alive
connection (the style of `scripts/submit_task.py`): the ceiling of the HTTP stack with this
client. Then `scripts/submit_task.py --count 10000 --concurrency 64 --json`, as a user runs it
(its default task mix, due within ±30 min, no workers running): requests/s and latency p50/p99
as the script reports them. Both time from before the clients are made. The client, the API and
PostgreSQL share the machine's cores, so neither figure is what the API gives with a machine of
its own; the CPU time per request of the API process and of the client (start-up included) shows
which of them set the pace.

**Bulk submit rate.** The same API process: `POST /tasks` with 1,000 `noop` tasks per request
(bodies built before the clock starts), 10 × `--requests` tasks from 4 concurrent senders, in
tasks/s. Issue 5's goal is ≥ 50,000 tasks/s.

"""


def run_section(r: Results) -> str:
    m, p = r.machine, r.params
    load = " / ".join(f"{x:.2f}" for x in r.load_before)
    lines = [
        f"<!-- bench-run {r.date.isoformat()} -->",
        f"### {r.date:%Y-%m-%d %H:%M} UTC · commit `{r.commit}`",
        "",
        f"- Machine: {m.cpus} CPUs ({m.cpu_model}), {m.memory_gib:.1f} GiB memory, {m.system}; "
        f"load average at the start {load} (1 / 5 / 15 min)",
        f"- {m.postgres} ({m.database}); Python {m.python}",
        f"- `just bench --count {p.count} --workers {p.workers} --runs {p.runs} "
        f"--requests {p.requests} --senders {p.senders}`",
        "",
        "| figure | result | detail |",
        "|---|--:|---|",
        *(f"| {' | '.join(row)} |" for row in figure_rows(r)),
        "",
        drain_notes(r),
        "<!-- /bench-run -->",
    ]
    return "\n".join(lines)


def write_doc(r: Results, doc: Path = DOC) -> None:
    earlier = RUN_SECTION.findall(doc.read_text()) if doc.exists() else []
    history = "\n\n".join(earlier) if earlier else "No earlier runs."
    text = f"{HEADER}## Latest run\n\n{run_section(r)}\n\n## History\n\n{history}\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)


def write_json(r: Results, directory: Path = RESULTS_DIR) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{r.date:%Y%m%dT%H%M%SZ}-{r.commit}.json"
    record = dataclasses.asdict(r)
    record["date"] = r.date.isoformat()
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path
