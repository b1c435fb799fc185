"""The bench's report: each goal next to its measured ratio, earlier runs kept, the plot drawn."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

from scripts.bench.ceiling import CeilingRun
from scripts.bench.drain import DrainRun, WorkerShare
from scripts.bench.figures import figure_rows, goal_rows
from scripts.bench.lag import LagRun
from scripts.bench.peer import PeerRun
from scripts.bench.report import Machine, Params, Results, write_doc
from scripts.bench.scale import ScaleRun
from scripts.bench.schedules import BesideRun, PassRun, ScheduleResults
from scripts.bench.submit import BulkRun, HttpRun

PLAN = "Append > [CTE due] Limit > LockRows > Index Scan using tasks_due_idx on tasks"


def drain(rate: float) -> DrainRun:
    return DrainRun(1000, 1000 / rate, rate, 1.0, [WorkerShare("w", 1000, 10, 0.0, 0.1)])


def results(date: datetime, *, scale_plan: str = PLAN) -> Results:
    return Results(
        date=date,
        commit="abc1234",
        machine=Machine(2, "CPU", 23.5, "Linux", "3.11", "PostgreSQL 18.6 on x86_64", "embedded"),
        params=Params(1000, [1, 2], [10, 100], 1, 100, 8, 100, 2, 1000, []),
        load_before=(0.1, 0.2, 0.3),
        ceiling={
            10: [CeilingRun(1000, 0.1, 10_000.0, 10)],
            100: [CeilingRun(1000, 0.05, 20_000, 5)],
        },
        drain={1: [drain(9_000)], 2: [drain(12_000)]},
        peer={
            1: [PeerRun(1000, 0.5, 2_000, 1.0, "log")],
            2: [PeerRun(1000, 0.25, 5_000, 1, "log")],
        },
        http=(
            HttpRun(100, 0, 0.1, 1000, 50, 100, 0.2, 1.0),
            HttpRun(100, 0, 0.2, 500, 80, 150, 0.5, 1.4),
            BulkRun(10_000, 10, 0, 0.2, 60_000, 20),
        ),
        lag=[LagRun(100, False, 3, 40, 60, 0), LagRun(100, True, 5, 90, 120, 0)],
        scale=[
            ScaleRun(0, 0, drain(12_000), 1.0, 100, PLAN, 0.0),
            ScaleRun(1000, 1000, drain(9_000), 1.2, 120, scale_plan, 1.0),
        ],
    )


def pass_run(due: str, wall_ms: float, taken: int, cpu: float | None = 40.0) -> PassRun:
    calls = {"schedule_take_due": taken // 100 + 1, "schedule_materialize": taken}
    return PassRun(10_000, due, taken, taken, wall_ms, calls, wall_ms * 0.9, cpu)


def schedule_results() -> ScheduleResults:
    return ScheduleResults(
        plain=[drain(10_000), drain(12_000), drain(11_000)],
        beside=[BesideRun(drain(r), 1000, 25) for r in (9_000, 10_500, 9_500)],
        passes=[
            pass_run("all", 8_000, 10_000, 3_300),
            *(pass_run("steady", ms, 167) for ms in (100, 120, 110)),
        ],
    )


def test_each_goal_stands_next_to_its_measured_ratio() -> None:
    got = goal_rows(results(datetime(2026, 1, 1, tzinfo=UTC)))
    assert [(measured, verdict) for _, measured, verdict in got] == [
        ("2.4×", "**not met**"),  # 12,000 / 5,000 against 3×
        ("60%", "met"),  # 12,000 / 20,000 against 50%
        ("50%", "**not met**"),  # 500 / 1,000 req/s against 60%
        ("60,000 tasks/s", "met"),
        ("40 ms", "met"),  # the idle run's p99
        ("75%, plan unchanged", "**not met**"),  # 9,000 / 12,000 against 80%
    ]


def test_the_peer_goal_shows_what_a_minimal_queue_table_allows() -> None:
    r = results(datetime(2026, 1, 1, tzinfo=UTC))
    r.minimal.extend([CeilingRun(1000, 0.1, 10_000, 10), CeilingRun(1000, 0.1, 14_000, 10)])
    assert goal_rows(r)[0][1:] == (
        "2.4× (a minimal queue table's raw loop: 2.4×)",  # 12,000 (median) / 5,000
        "**not met**",
    )


def test_a_changed_plan_misses_the_scale_goal() -> None:
    r = results(datetime(2026, 1, 1, tzinfo=UTC), scale_plan=PLAN.replace("Index", "Seq"))
    assert goal_rows(r)[-1][1:] == ("75%, plan **changed**", "**not met**")


def test_the_schedules_goal_compares_the_medians_of_one_section() -> None:
    r = results(datetime(2026, 1, 1, tzinfo=UTC))
    r = dataclasses.replace(r, schedules=schedule_results())
    assert goal_rows(r)[-1] == (
        "drain beside 1,000 active schedules ≥ 90% of the plain drain",
        "86%",  # 9,500 / 11,000
        "**not met**",
    )


def test_the_schedule_figures_list_every_run_and_each_pass() -> None:
    r = dataclasses.replace(results(datetime(2026, 1, 1, tzinfo=UTC)), schedules=schedule_results())
    rows = {figure: (result, detail) for figure, result, detail in figure_rows(r)}
    plain = rows["Schedules: drain of 1,000 noop tasks, 2 `duetime worker`, no schedules"]
    assert plain == ("11,000 tasks/s", "median of 3; runs 10,000 · 12,000 · 11,000")
    beside = next(v for k, v in rows.items() if k.startswith("Schedules: the same drain beside"))
    assert beside == (
        "9,500 tasks/s",
        "median of 3; runs 9,000 · 10,500 · 9,500; "
        "occurrences the workers' schedulers made while they ran: 25 · 25 · 25",
    )
    passes = [v for k, v in rows.items() if k.startswith("Scheduler pass, 10,000 schedules")]
    assert passes == [
        (
            "8,000 ms",
            "median of 1; tasks made 10,000; 0.80 ms per schedule; 10,101 statements, "
            "awaited 7,200 ms; server backend CPU 3,300 ms",
        ),
        (
            "110 ms",
            "median of 3; tasks made 167; 0.66 ms per schedule; 169 statements, awaited 99 ms; "
            "server backend CPU 40 ms",
        ),
    ]


def test_a_pass_without_the_server_cpu_says_nothing_of_it() -> None:
    s = ScheduleResults(passes=[pass_run("all", 8_000, 10_000, None)])
    r = dataclasses.replace(results(datetime(2026, 1, 1, tzinfo=UTC)), schedules=s)
    detail = figure_rows(r)[-1][2]
    assert "awaited 7,200 ms" in detail
    assert "CPU" not in detail


def test_the_doc_keeps_earlier_runs_and_only_the_newest_shows_the_plot(tmp_path: Path) -> None:
    doc, plot = tmp_path / "benchmarks.md", tmp_path / "benchmarks.png"
    write_doc(results(datetime(2026, 1, 1, tzinfo=UTC)), doc, plot)
    newest = results(datetime(2026, 1, 2, tzinfo=UTC))
    write_doc(dataclasses.replace(newest, schedules=schedule_results()), doc, plot)
    text = doc.read_text()
    latest, history = text.split("## History")
    assert "2026-01-02" in latest
    assert "2026-01-01" not in latest
    assert "2026-01-01" in history
    assert latest.count("![throughput, this run](benchmarks.png)") == 1
    assert "benchmarks.png" not in history
    assert "| drain, 2 processes ≥ 3× PgQueuer with 2 | 2.4× | **not met** |" in latest
    goal = "| drain beside 1,000 active schedules ≥ 90% of the plain drain | 86% | **not met** |"
    assert goal in latest
    assert "| Scheduler pass, 10,000 schedules, a pass a second (steady state)" in latest
    assert plot.read_bytes().startswith(b"\x89PNG")
