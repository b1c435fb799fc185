"""The run's figures as rows: issue 5's goals against what was measured, then every figure."""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING

from .scale import Verdict
from .schedules import BESIDE_SCHEDULES, INTERVAL_SECONDS, PassRun
from .submit import BULK_BATCH, BULK_SENDERS, HttpRun

if TYPE_CHECKING:
    from .ceiling import CeilingRun
    from .report import Results

Row = tuple[str, str, str]  # (figure, result, detail); markdown, stripped on the terminal

PEER_FACTOR_GOAL = 3.0
CEILING_SHARE_GOAL = 0.5
POST_SHARE_GOAL = 0.6
BULK_GOAL = 50_000
LAG_P99_GOAL_MS = 50.0
SCALE_SHARE_GOAL = 0.8
SCHEDULES_SHARE_GOAL = 0.9
GOAL_WORKERS = 2  # the goals compare 2 processes with 2
GOAL_BATCH = 100


def _median(rates: list[float]) -> float:
    return statistics.median(rates) if rates else float("nan")


def _runs(rates: list[float]) -> str:
    return f"median of {len(rates)}; runs " + " · ".join(f"{rate:,.0f}" for rate in rates)


def _rates(runs: list[CeilingRun]) -> list[float]:
    return [run.tasks_per_s for run in runs]


def _met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def goal_rows(r: Results) -> list[Row]:
    """(goal, measured, verdict) for each of issue 5's goals this run measured."""
    rows: list[Row] = []
    drain = _median([run.tasks_per_s for run in r.drain.get(GOAL_WORKERS, [])])
    peer = _median([run.jobs_per_s for run in r.peer.get(GOAL_WORKERS, [])])
    ceiling = _median([run.tasks_per_s for run in r.ceiling.get(GOAL_BATCH, [])])
    if r.peer.get(GOAL_WORKERS) and r.drain.get(GOAL_WORKERS):
        factor = drain / peer
        bound = ""
        if r.minimal:  # what no queue of one row per job could beat here, with no handler at all
            bound = f" (a minimal queue table's raw loop: {_median(_rates(r.minimal)) / peer:.1f}×)"
        rows.append(
            (
                f"drain, 2 processes ≥ {PEER_FACTOR_GOAL:.0f}× PgQueuer with 2",
                f"{factor:.1f}×{bound}",
                _met(factor >= PEER_FACTOR_GOAL),
            )
        )
    if r.ceiling.get(GOAL_BATCH) and r.drain.get(GOAL_WORKERS):
        share = drain / ceiling
        rows.append(
            (
                f"drain, 2 processes ≥ {CEILING_SHARE_GOAL:.0%} of the raw SQL limit at batch 100",
                f"{share:.0%}",
                _met(share >= CEILING_SHARE_GOAL),
            )
        )
    if r.http is not None:
        health, post, bulk = r.http
        share = post.requests_per_s / health.requests_per_s
        rows.append(
            (
                f"POST /task ≥ {POST_SHARE_GOAL:.0%} of GET /health",
                f"{share:.0%}",
                _met(share >= POST_SHARE_GOAL),
            )
        )
        rows.append(
            (
                f"bulk POST /tasks ≥ {BULK_GOAL:,} tasks/s",
                f"{bulk.tasks_per_s:,.0f} tasks/s",
                _met(bulk.tasks_per_s >= BULK_GOAL),
            )
        )
    for lag in r.lag:
        if not lag.busy:
            rows.append(
                (
                    f"start lag p99 ≤ {LAG_P99_GOAL_MS:.0f} ms with free slots (idle workers)",
                    f"{lag.p99_ms:.0f} ms",
                    _met(lag.p99_ms <= LAG_P99_GOAL_MS and lag.early == 0),
                )
            )
    verdict = scale_verdict(r)
    if verdict is not None:
        rows.append(
            (
                f"1M + 1M rows: drain ≥ {SCALE_SHARE_GOAL:.0%} of the empty table's, same plan",
                f"{verdict.ratio:.0%}, plan "
                + ("unchanged" if verdict.plan_unchanged else "**changed**"),
                _met(verdict.ratio >= SCALE_SHARE_GOAL and verdict.plan_unchanged),
            )
        )
    beside = schedules_share(r)
    if beside is not None:
        rows.append(
            (
                f"drain beside {BESIDE_SCHEDULES:,} active schedules ≥ {SCHEDULES_SHARE_GOAL:.0%} "
                "of the plain drain",
                f"{beside:.0%}",
                _met(beside >= SCHEDULES_SHARE_GOAL),
            )
        )
    return rows


def schedules_share(r: Results) -> float | None:
    """The median drain rate beside schedules over the median without, in the same section;
    None unless both were measured."""
    if r.schedules is None or not r.schedules.plain or not r.schedules.beside:
        return None
    beside = _median([run.drain.tasks_per_s for run in r.schedules.beside])
    return beside / _median([run.tasks_per_s for run in r.schedules.plain])


def scale_verdict(r: Results) -> Verdict | None:
    """The loaded table's median drain rate over the empty one's, and whether every run's claim
    had the same plan; None unless both were measured."""
    empty = [run for run in r.scale if not run.future_rows]
    loaded = [run for run in r.scale if run.future_rows]
    if not empty or not loaded:
        return None
    rate = _median([run.drain.tasks_per_s for run in loaded])
    return Verdict(
        rate / _median([run.drain.tasks_per_s for run in empty]),
        len({run.plan_shape for run in r.scale}) == 1,
    )


def _http(run: HttpRun) -> tuple[str, str]:
    failed = f" ({run.failed:,} failed)" if run.failed else ""
    detail = (
        f"p50 {run.p50_ms:.0f} ms, p99 {run.p99_ms:.0f} ms; CPU per request: "
        f"API {run.api_cpu_ms:.2f} ms, client {run.client_cpu_ms:.2f} ms"
    )
    return f"{run.requests_per_s:,.0f} req/s{failed}", detail


def figure_rows(r: Results) -> list[Row]:
    """Every figure the run measured, the same on the terminal and in the doc."""
    p = r.params
    rows: list[Row] = []
    for batch, ceiling in sorted(r.ceiling.items()):
        rates = _rates(ceiling)
        rows.append(
            (
                f"Raw SQL limit: claim + complete, 2 connections, batch {batch} "
                f"({ceiling[0].tasks:,} tasks)",
                f"{_median(rates):,.0f} tasks/s",
                _runs(rates),
            )
        )
    if r.minimal:
        rates = _rates(r.minimal)
        rows.append(
            (
                f"Raw SQL limit of a minimal queue table (7 columns, 1 index), batch {GOAL_BATCH} "
                f"({r.minimal[0].tasks:,} tasks)",
                f"{_median(rates):,.0f} tasks/s",
                _runs(rates),
            )
        )
    for workers, drain in sorted(r.drain.items()):
        rates = [run.tasks_per_s for run in drain]
        rows.append(
            (
                f"duetime drain: {p.count:,} noop tasks, {workers} `duetime worker`",
                f"**{_median(rates):,.0f} tasks/s**",
                _runs(rates),
            )
        )
        if workers in r.peer:
            rates = [run.jobs_per_s for run in r.peer[workers]]
            rows.append(
                (
                    f"PgQueuer drain: {p.count:,} no-op jobs, {workers} consumer processes",
                    f"{_median(rates):,.0f} jobs/s",
                    _runs(rates),
                )
            )
    if r.http is not None:
        health, post, bulk = r.http
        rows += [
            (f"GET /health, {p.requests:,} requests, {p.senders} senders", *_http(health)),
            (
                f"POST /task (submit_task.py), {p.requests:,} tasks, {p.senders} senders",
                *_http(post),
            ),
            (
                f"POST /tasks (bulk, {BULK_BATCH:,} per request), {bulk.tasks:,} tasks, "
                f"{BULK_SENDERS} senders",
                f"{bulk.tasks_per_s:,.0f} tasks/s"
                + (f" ({bulk.failed:,} requests failed)" if bulk.failed else ""),
                f"API CPU {bulk.api_cpu_ms:.0f} ms per 1,000 tasks",
            ),
        ]
    for lag in r.lag:
        rows.append(
            (
                f"Start lag, {lag.tasks:,} tasks due over {p.lag_spread} s, "
                f"{'busy' if lag.busy else 'idle'} workers (2)",
                f"p99 {lag.p99_ms:.0f} ms",
                f"p50 {lag.p50_ms:.1f} ms, max {lag.max_ms:.0f} ms; started early: {lag.early}",
            )
        )
    for ballast in sorted({run.future_rows for run in r.scale}):
        runs = [run for run in r.scale if run.future_rows == ballast]
        rates = [run.drain.tasks_per_s for run in runs]
        rows.append(
            (
                f"Scale: drain of {p.count:,} beside {ballast:,} future + "
                f"{runs[0].finished_rows:,} finished rows (2 workers)",
                f"{_median(rates):,.0f} tasks/s",
                f"{_runs(rates)}; one claim of 100: "
                f"{_median([run.claim_ms for run in runs]):.2f} ms, "
                f"{_median([run.claim_buffers for run in runs]):,.0f} buffers",
            )
        )
    if r.schedules is not None:
        rows += _schedule_rows(r)
    return rows


def _schedule_rows(r: Results) -> list[Row]:
    assert r.schedules is not None
    s = r.schedules
    rows: list[Row] = []
    if s.plain:
        rates = [run.tasks_per_s for run in s.plain]
        rows.append(
            (
                f"Schedules: drain of {r.params.count:,} noop tasks, 2 `duetime worker`, "
                "no schedules",
                f"{_median(rates):,.0f} tasks/s",
                _runs(rates),
            )
        )
    if s.beside:
        rates = [run.drain.tasks_per_s for run in s.beside]
        rows.append(
            (
                f"Schedules: the same drain beside {s.beside[0].schedules:,} schedules (noop "
                f"every {INTERVAL_SECONDS:.0f} s, due times spread evenly, the horizon filled)",
                f"{_median(rates):,.0f} tasks/s",
                f"{_runs(rates)}; occurrences the workers' schedulers made while they ran: "
                + " · ".join(f"{run.made:,}" for run in s.beside),
            )
        )
    for due, what in (
        ("all", "all due within the 10 s horizon"),
        ("steady", "a pass a second (steady state)"),
    ):
        passes = [run for run in s.passes if run.due == due]
        if passes:
            rows.append(
                (
                    f"Scheduler pass, {passes[0].schedules:,} schedules, {what}: "
                    "`run_once()` wall time from the client, database otherwise idle",
                    f"{_median([run.wall_ms for run in passes]):,.0f} ms",
                    _pass_detail(passes),
                )
            )
    return rows


def _pass_detail(passes: list[PassRun]) -> str:
    """Medians over the passes: what they made, per schedule, statements and where time went."""
    statements = [sum(run.statements.values()) for run in passes]
    cpu = [run.server_cpu_ms for run in passes if run.server_cpu_ms is not None]
    server = f"; server backend CPU {_median(cpu):,.0f} ms" if len(cpu) == len(passes) else ""
    return (
        f"median of {len(passes)}; tasks made {_median([float(run.made) for run in passes]):,.0f}; "
        f"{_median([run.ms_per_schedule for run in passes]):.2f} ms per schedule; "
        f"{_median([float(n) for n in statements]):,.0f} statements, awaited "
        f"{_median([run.statement_ms for run in passes]):,.0f} ms{server}"
    )


def notes(r: Results) -> list[str]:
    """How the runs went inside: the drains' start skew and claim sizes, the claim's plan."""
    lines = []
    for workers, drain in sorted(r.drain.items()):
        skews = [max(w.first_claim_s for w in run.workers) for run in drain]
        sizes = [run.tasks / sum(w.claims for w in run.workers) for run in drain]
        lines.append(
            f"duetime × {workers}, run by run: the last worker's first claim came "
            f"{' · '.join(f'{s:.2f}' for s in skews)} s after the first one's; "
            f"mean claim {' · '.join(f'{s:.0f}' for s in sizes)} tasks."
        )
    if r.scale:
        shapes = {scale.plan_shape for scale in r.scale}
        lines.append(
            "The claim's plan"
            + (" (the same on both tables)" if len(shapes) == 1 else "s, empty then loaded")
            + ": "
            + " / ".join(f"`{shape}`" for shape in sorted(shapes, key=len))
        )
    return lines
