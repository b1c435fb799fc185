"""`duetime dev`: PostgreSQL, migrations, the API and N workers on one machine, until Ctrl-C.

The API and the workers are started with exactly the commands compose runs (`duetime api`,
`duetime worker`), as child processes in their own process group so one Ctrl-C stops them in order.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import httpx
from rich.console import Console

from shared import db, migrate
from shared.settings import Settings

console = Console(stderr=True)


def api_args(host: str, port: int) -> list[str]:
    """`duetime api …` as dev, the e2e tests and docker-compose.yml all start it."""
    return ["api", "--host", host, "--port", str(port)]


WORKER_ARGS = ["worker"]
MIGRATE_ARGS = ["migrate"]


def duetime_command() -> list[str]:
    """The `duetime` console script of this environment (or `python -m duetime` without one)."""
    script = Path(sys.executable).parent / "duetime"
    if script.exists():
        return [str(script)]
    found = shutil.which("duetime")
    return [found] if found else [sys.executable, "-m", "duetime"]


def run_dev(settings: Settings, *, workers: int) -> int:
    server = None
    if settings.database_url is None:
        from shared.embedded import EmbeddedPostgres

        server = EmbeddedPostgres(settings.data_dir)
        with console.status(f"starting embedded PostgreSQL in {server.pgdata}"):
            server_dsn = server.start()
            asyncio.run(db.ensure_database(server_dsn, db.EMBEDDED_DATABASE))
        dsn = db.with_database(server_dsn, db.EMBEDDED_DATABASE)
    else:
        dsn = settings.database_url
    try:
        with console.status("applying migrations"):
            migrate.upgrade(dsn)
        return _run_processes(
            settings.with_(database_url=dsn), workers, embedded=server is not None
        )
    finally:
        if server is not None:
            server.stop()
            console.print("embedded PostgreSQL stopped")


def _run_processes(settings: Settings, workers: int, *, embedded: bool) -> int:
    base = f"http://{settings.host}:{settings.port}"
    env = {**_environ(), **settings.to_env(), "DUETIME_BAR_URL": f"{base}/health"}
    cmd = duetime_command()
    children: list[tuple[str, subprocess.Popen[bytes]]] = []

    def spawn(role: str, args: list[str]) -> None:
        children.append(
            (
                role,
                subprocess.Popen(
                    [*cmd, *args], env={**env, "DUETIME_ROLE": role}, start_new_session=True
                ),
            )
        )

    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if stopping:  # a second Ctrl-C: no more waiting
            for _, child in children:
                child.kill()
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        spawn("api", api_args(settings.host, settings.port))
        if not _wait_healthy(f"{base}/health", children[0][1], lambda: stopping):
            console.print("[red]the API did not start; see its log above[/red]")
            return 1
        for n in range(workers):
            spawn(f"worker-{n + 1}", WORKER_ARGS)
        _banner(settings, base, workers, embedded)
        while not stopping:
            for role, child in children:
                if child.poll() is not None:
                    console.print(f"[red]{role} exited with {child.returncode}; stopping[/red]")
                    return 1
            time.sleep(0.2)
        return 0
    finally:
        _stop(children)


def _environ() -> dict[str, str]:
    import os

    return dict(os.environ)


def _wait_healthy(url: str, child: subprocess.Popen[bytes], stopping: object) -> bool:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and child.poll() is None:
        if callable(stopping) and stopping():
            return False
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return False


def _stop(children: list[tuple[str, subprocess.Popen[bytes]]]) -> None:
    # Workers first (they finish running attempts and flush), then the API.
    for _, child in reversed(children):
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 40
    for role, child in reversed(children):
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            console.print(f"{role} did not stop in time; killing it")
            child.kill()
            child.wait()


def _banner(settings: Settings, base: str, workers: int, embedded: bool) -> None:
    db_line = settings.database_url or ""
    lines = [
        f"API        {base}   (OpenAPI: {base}/schema)",
        f"Workers    {workers} processes x {settings.concurrency} concurrent attempts",
        f"Database   {db_line}" + ("  (embedded PostgreSQL)" if embedded else ""),
        "",
        f"Try:  curl -X POST {base}/task -H 'content-type: application/json' \\",
        '         -d \'{"task_type": "baz", "execution_time": "2026-01-01T00:00:00Z"}\'',
        f"      uv run python scripts/submit_task.py --url {base} --count 1000 --watch",
        "",
        "Ctrl-C stops everything.",
    ]
    console.rule("duetime dev is running")
    for line in lines:
        console.print(line, soft_wrap=True, highlight=False, markup=False)
    console.rule()
