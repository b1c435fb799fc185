"""The bench's report: each goal next to its measured ratio, earlier runs kept, the plot drawn."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from scripts.bench.ceiling import CeilingRun
from scripts.bench.drain import DrainRun, WorkerShare
from scripts.bench.figures import goal_rows
from scripts.bench.lag import LagRun
from scripts.bench.peer import PeerRun
from scripts.bench.report import Machine, Params, Results, write_doc
from scripts.bench.scale import ScaleRun
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


def test_the_doc_keeps_earlier_runs_and_only_the_newest_shows_the_plot(tmp_path: Path) -> None:
    doc, plot = tmp_path / "benchmarks.md", tmp_path / "benchmarks.png"
    write_doc(results(datetime(2026, 1, 1, tzinfo=UTC)), doc, plot)
    write_doc(results(datetime(2026, 1, 2, tzinfo=UTC)), doc, plot)
    text = doc.read_text()
    latest, history = text.split("## History")
    assert "2026-01-02" in latest
    assert "2026-01-01" not in latest
    assert "2026-01-01" in history
    assert latest.count("![throughput, this run](benchmarks.png)") == 1
    assert "benchmarks.png" not in history
    assert "| drain, 2 processes ≥ 3× PgQueuer with 2 | 2.4× | **not met** |" in latest
    assert plot.read_bytes().startswith(b"\x89PNG")
