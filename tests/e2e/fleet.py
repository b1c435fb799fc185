"""Real duetime processes, started through the CLI exactly as compose and `duetime dev` start them.

The processes import tests/e2e/e2e_handlers.py; the test process itself never does.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg
import httpx

from shared.devserver import WORKER_ARGS, api_args, duetime_command

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SUBMIT_SCRIPT = ROOT / "scripts" / "submit_task.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        time.sleep(0.1)


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
        return proc

    def api(self) -> str:
        port = free_port()
        proc = self.start("api", api_args("127.0.0.1", port))
        url = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            assert proc.poll() is None, f"api exited: {self.log('api')}"
            try:
                return httpx.get(f"{url}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, 30, "the API to answer /health")
        return url

    def workers(self, n: int, **env: str) -> list[subprocess.Popen[bytes]]:
        return [self.start(f"worker-{i}", WORKER_ARGS, **env) for i in range(n)]

    def wait_listening(self, n: int, within: float = 60) -> None:
        """Until n workers hold their LISTEN connection: started, connected, claiming."""
        dsn = self.env["DATABASE_URL"]
        query = """SELECT count(*) FROM pg_stat_activity
                   WHERE datname = current_database()
                     AND application_name = 'duetime-worker-listen'"""
        wait_until(lambda: fetchval(dsn, query) == n, within, f"{n} workers to listen")

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


CREATE_EXECUTIONS = """
CREATE TABLE executions (
    task_id uuid NOT NULL,
    attempt integer NOT NULL,
    worker_pid integer NOT NULL,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp()
)
"""  # no unique key on purpose: a second run of an attempt shows up as a second row


def fetchval(dsn: str, query: str, *args: object) -> object:
    async def go() -> object:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetchval(query, *args)
        finally:
            await conn.close()

    return asyncio.run(go())


def submit(url: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run scripts/submit_task.py as a user would."""
    return subprocess.run(
        [sys.executable, str(SUBMIT_SCRIPT), "--url", url, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
