"""Real duetime processes, started through the CLI exactly as compose and `duetime dev` start them.

The processes import tests/e2e/e2e_handlers.py; the test process itself never does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
import httpx

from shared import queries
from shared.devserver import WORKER_ARGS, api_args, duetime_command
from shared.embedded import EmbeddedPostgres

T = TypeVar("T")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SUBMIT_SCRIPT = ROOT / "scripts" / "submit_task.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until(condition: Callable[[], bool], within: float, what: str, every: float = 0.1) -> None:
    """Until `condition()`, checked every `every` s (each check may open a connection: on a
    long wait for a busy fleet, check less often); fails after `within` s."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        time.sleep(every)


class Fleet:
    """Starts processes with one environment; stops them all (SIGTERM, then SIGKILL) at the end."""

    def __init__(self, dsn: str, logs: Path) -> None:
        self.env = {
            **os.environ,
            "DATABASE_URL": dsn,
            "PYTHONPATH": str(HERE),
            "DUETIME_IMPORTS": "e2e_handlers",
            "DUETIME_LOG_LEVEL": os.environ.get("E2E_LOG_LEVEL", "WARNING"),
        }
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []
        self.names: dict[int, str] = {}  # pid -> the name of its log
        self._workers = 0

    def start(self, name: str, args: list[str], **env: str) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [*duetime_command(), *args],
            env={**self.env, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
        self.procs.append(proc)
        self.names[proc.pid] = name
        return proc

    def api(self, name: str = "api", **env: str) -> str:
        port = free_port()
        proc = self.start(name, api_args("127.0.0.1", port), **env)
        url = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            assert proc.poll() is None, f"api exited: {self.log(name)}"
            try:
                return httpx.get(f"{url}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, 30, "the API to answer /health")
        return url

    def workers(self, n: int, *args: str, **env: str) -> list[subprocess.Popen[bytes]]:
        return [self.worker(*args, **env) for _ in range(n)]

    def worker(self, *args: str, **env: str) -> subprocess.Popen[bytes]:
        """One more `duetime worker [args]`, logging to worker-<n>.log (n counts from 0)."""
        name = f"worker-{self._workers}"
        self._workers += 1
        return self.start(name, [*WORKER_ARGS, *args], **env)

    def wait_listening(self, n: int, within: float = 60) -> None:
        """Until n workers hold their LISTEN connection: started, connected, claiming."""
        dsn = self.env["DATABASE_URL"]
        query = """SELECT count(*) FROM pg_stat_activity
                   WHERE datname = current_database()
                     AND application_name = 'duetime-worker-listen'"""
        wait_until(lambda: fetchval(dsn, query) == n, within, f"{n} workers to listen")

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]

    def log_of(self, proc: subprocess.Popen[bytes]) -> str:
        return self.log(self.names[proc.pid])

    def alive(self, procs: list[subprocess.Popen[bytes]]) -> bool:
        """True while every one of `procs` runs; fails, quoting its log, when one has exited."""
        for proc in procs:
            assert proc.poll() is None, (
                f"{self.names[proc.pid]} exited ({proc.returncode}): {self.log_of(proc)}"
            )
        return True

    def stop(self, within: float = 20) -> None:
        """SIGTERM (and SIGCONT, for a paused one) to all; SIGKILL what is left after `within`."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.send_signal(signal.SIGCONT)
        deadline = time.monotonic() + within
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_exit(proc: subprocess.Popen[bytes], within: float, what: str) -> float:
    """Seconds until `proc` exits; fails if it is still running after `within`."""
    t0 = time.monotonic()
    try:
        proc.wait(within)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{what}: still running after {within}s") from None
    return time.monotonic() - t0


CREATE_EXECUTIONS = """
CREATE TABLE executions (
    task_id uuid NOT NULL,
    attempt integer NOT NULL,
    worker_pid integer NOT NULL,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    run_id uuid,  -- one per run: a handler retrying its insert through an outage writes it once
    finished_at timestamptz  -- stamped by the handlers that report the end of their run
)
"""  # no unique key on purpose: a second run of an attempt shows up as a second row


def _on(dsn: str, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    async def go() -> T:
        conn = await asyncpg.connect(dsn)
        try:
            return await work(conn)
        finally:
            await conn.close()

    return asyncio.run(go())


def fetchval(dsn: str, query: str, *args: object) -> object:
    return _on(dsn, lambda conn: conn.fetchval(query, *args))


def fetch(dsn: str, query: str, *args: object) -> list[asyncpg.Record]:
    return _on(dsn, lambda conn: conn.fetch(query, *args))


def fetchrow(dsn: str, query: str, *args: object) -> asyncpg.Record | None:
    return _on(dsn, lambda conn: conn.fetchrow(query, *args))


def execute(dsn: str, query: str, *args: object) -> str:
    return _on(dsn, lambda conn: conn.execute(query, *args))


def task_row(dsn: str, task_id: UUID) -> dict[str, Any]:
    """The task's row; its result decoded from JSON."""
    row = fetchrow(dsn, "SELECT * FROM tasks WHERE id = $1", task_id)
    assert row is not None, f"no task {task_id}"
    found = dict(row)
    if found["result"] is not None:
        found["result"] = json.loads(found["result"])
    return found


def runs(dsn: str, task_id: UUID) -> list[tuple[int, int]]:
    """(attempt, worker pid) of each recorded run of a task, in attempt order."""
    rows = fetch(
        dsn,
        """SELECT attempt, worker_pid FROM executions WHERE task_id = $1
           ORDER BY attempt, started_at""",
        task_id,
    )
    return [(r["attempt"], r["worker_pid"]) for r in rows]


def count(dsn: str, where: str = "true", *args: object) -> int:
    """SELECT count(*) FROM tasks WHERE <where>."""
    n = fetchval(dsn, f"SELECT count(*) FROM tasks WHERE {where}", *args)
    assert isinstance(n, int)
    return n


INSERT_TASKS = """
INSERT INTO tasks (
    id, task_type, execution_time, payload, max_attempts, backoff, backoff_base_seconds,
    backoff_cap_seconds, retry_on_loss, timeout_seconds
)
SELECT gen_random_uuid(), $1, now() + make_interval(secs => $2), $3::jsonb, $4, $5, $6, $7, $8, $9
FROM generate_series(1, $10)
RETURNING id
"""


def insert_tasks(
    dsn: str,
    task_type: str,
    n: int = 1,
    *,
    due_in: float = 0.0,
    payload: dict[str, Any] | None = None,
    max_attempts: int = 1,
    backoff: str = "fixed",
    backoff_base_seconds: float = 0.0,
    backoff_cap_seconds: float = 0.0,
    retry_on_loss: bool = False,
    timeout_seconds: float = 300.0,
) -> list[UUID]:
    """n tasks due in `due_in` s, each with this policy, inserted in one statement as the API would
    have resolved them; then the NOTIFY the API sends. Their ids, in insertion order."""

    async def work(conn: asyncpg.Connection) -> list[UUID]:
        rows = await conn.fetch(
            INSERT_TASKS,
            task_type,
            due_in,
            json.dumps(payload or {}),
            max_attempts,
            backoff,
            backoff_base_seconds,
            max(backoff_cap_seconds, backoff_base_seconds),
            retry_on_loss,
            timeout_seconds,
            n,
        )
        await queries.notify_due(conn, due_in)
        return [row["id"] for row in rows]

    return _on(dsn, work)


def terminate_duetime_backends(dsn: str) -> set[int]:
    """pg_terminate_backend on every duetime connection to this database; their backend pids."""
    rows = fetch(
        dsn,
        """SELECT pid FROM pg_stat_activity
           WHERE datname = current_database() AND application_name LIKE 'duetime%'
             AND pg_terminate_backend(pid)""",
    )
    return {r["pid"] for r in rows}


def listen_pids(dsn: str) -> set[int]:
    """Backend pids of the workers' LISTEN connections to this database."""
    rows = fetch(
        dsn,
        """SELECT pid FROM pg_stat_activity
           WHERE datname = current_database() AND application_name = 'duetime-worker-listen'""",
    )
    return {r["pid"] for r in rows}


@contextlib.contextmanager
def own_server(prefix: str = "duetime-chaos-pg-") -> Iterator[EmbeddedPostgres]:
    """An embedded server of the test's own, started, that the test may stop and start again
    (same data dir, same socket); stopped and deleted at the end. Its DSN: server.dsn()."""
    home = Path(tempfile.mkdtemp(prefix=prefix))  # not pytest's basetemp: see temporary_server
    server = EmbeddedPostgres(home)
    try:
        server.start()
        yield server
    finally:
        server.stop(force=True)
        shutil.rmtree(home, ignore_errors=True)


def submit(url: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run scripts/submit_task.py as a user would."""
    return subprocess.run(
        [sys.executable, str(SUBMIT_SCRIPT), "--url", url, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
