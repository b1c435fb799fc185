"""`duetime dev` as a new user runs it: embedded PostgreSQL, API, workers; Ctrl-C stops it all."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shared.devserver import duetime_command
from tests.e2e.fleet import ROOT, free_port, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def home() -> Iterator[Path]:
    # Not under pytest's basetemp (see tests/conftest.py): the server's user must reach it.
    path = Path(tempfile.mkdtemp(prefix="duetime-dev-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_dev_runs_a_task_end_to_end_and_stops_on_ctrl_c(home: Path) -> None:
    port = free_port()
    env = {
        k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith("DUETIME_")
    }
    log = home / "dev.log"
    with log.open("wb") as out:
        dev = subprocess.Popen(
            [
                *duetime_command(),
                "dev",
                "--port",
                str(port),
                "--workers",
                "1",
                "--data-dir",
                str(home / "data"),
            ],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            assert dev.poll() is None, log.read_text()
            try:
                return httpx.get(f"{base}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, 60, "duetime dev to answer /health")
        created = httpx.post(
            f"{base}/task", json={"task_type": "baz", "execution_time": "2020-01-01T00:00:00Z"}
        )
        assert created.status_code == 201, created.text
        task_url = f"{base}{created.headers['location']}"
        wait_until(lambda: httpx.get(task_url).json()["status"] == "done", 30, "the task to run")
        result = httpx.get(task_url).json()["result"]
        assert 0 <= result <= 343
        assert "duetime dev is running" in log.read_text()
        assert (home / "data" / "pgdata" / "PG_VERSION").exists()  # data kept for the next run
    finally:
        os.killpg(dev.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
        try:
            code = dev.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(dev.pid, signal.SIGKILL)
            raise
    assert code == 0, log.read_text()[-2000:]
    text = log.read_text()
    assert "embedded PostgreSQL stopped" in text
    # Nothing left behind: no process of this run is still alive.
    time.sleep(0)  # (the group is waited on below)
    leftover = subprocess.run(["pgrep", "-g", str(dev.pid)], capture_output=True, text=True)
    assert leftover.stdout.strip() == "", leftover.stdout
