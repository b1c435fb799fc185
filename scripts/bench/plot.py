"""The run's throughput as a PNG: duetime against PgQueuer by process count, and the raw SQL
ceiling by batch size, all from one run on one machine."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .report import Results


def write_plot(r: Results, path: Path) -> None:
    import matplotlib  # a dev dependency, imported only when a run writes its plot

    matplotlib.use("Agg")  # no display: render to a file
    from matplotlib import pyplot as plt

    fig, (drain_ax, ceiling_ax) = plt.subplots(
        1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 2]}
    )
    procs = sorted(r.drain)
    width = 0.38
    xs = range(len(procs))
    duetime = [statistics.median(run.tasks_per_s for run in r.drain[n]) for n in procs]
    bars = drain_ax.bar([x - width / 2 for x in xs], duetime, width, label="duetime worker")
    drain_ax.bar_label(bars, fmt="{:,.0f}", fontsize=8)
    if r.peer:
        peer = [statistics.median(run.jobs_per_s for run in r.peer.get(n, [])) for n in procs]
        bars = drain_ax.bar([x + width / 2 for x in xs], peer, width, label="PgQueuer")
        drain_ax.bar_label(bars, fmt="{:,.0f}", fontsize=8)
    drain_ax.set_xticks(list(xs), [f"{n} process{'es' if n > 1 else ''}" for n in procs])
    drain_ax.set_ylabel("tasks/s (median of runs)")
    drain_ax.set_title(f"Drain of {r.params.count:,} due no-op tasks")
    drain_ax.legend(loc="upper left")

    batches = sorted(r.ceiling)
    rates = [statistics.median(run.tasks_per_s for run in r.ceiling[b]) for b in batches]
    bars = ceiling_ax.bar([str(b) for b in batches], rates, color="tab:gray")
    ceiling_ax.bar_label(bars, fmt="{:,.0f}", fontsize=8)
    ceiling_ax.set_xlabel("rows per claim")
    ceiling_ax.set_title("Raw SQL ceiling, 2 connections")

    fig.suptitle(
        f"duetime bench · {r.commit} · {r.date:%Y-%m-%d %H:%M} UTC · "
        f"{r.machine.cpus} CPUs, PostgreSQL {r.machine.postgres.split()[1]}",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
