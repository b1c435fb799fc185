"""Submit rate: POST /task through scripts/submit_task.py, GET /health as the HTTP ceiling, and
POST /tasks (bulk) in tasks/s.

Both against one `duetime api` process on a free loopback port; both clients use the style of
submit_task.py: one httpx.AsyncClient with one keep-alive connection per concurrent sender. The
CPU time the API process and the client used per request says which of them set the rate.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import json
import math
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import httpx

from shared.devserver import api_args

from .processes import Processes, cpu_seconds, process_env

SUBMIT_SCRIPT = Path(__file__).resolve().parents[1] / "submit_task.py"


@dataclass(frozen=True)
class HttpRun:
    requests: int
    failed: int  # not the expected status (or no answer)
    seconds: float
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    api_cpu_ms: float = math.nan  # per request: the API process's CPU time / requests
    client_cpu_ms: float = math.nan  # per request, the client's start-up included


@dataclass(frozen=True)
class BulkRun:
    tasks: int
    requests: int
    failed: int  # requests without a 201
    seconds: float
    tasks_per_s: float
    api_cpu_ms: float = math.nan  # per 1,000 tasks


BULK_BATCH = 1000  # tasks per POST /tasks, its maximum
BULK_SENDERS = 4


def http_rates(
    dsn: str, requests: int, senders: int, deadline: float
) -> tuple[HttpRun, HttpRun, BulkRun]:
    """(GET /health, POST /task, POST /tasks) against one API process started for the purpose.

    `deadline` is a time.monotonic() value: past it, whatever is running gives up.
    """
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    procs = Processes(process_env(dsn))
    try:
        api = procs.start(api_args("127.0.0.1", port))
        _wait_healthy(url, min(deadline, time.monotonic() + 30), procs.check_alive)

        api_cpu, client_cpu = cpu_seconds(api.pid), time.process_time()
        health_run = _get_health(url, requests, senders)
        run = asyncio.run(asyncio.wait_for(health_run, deadline - time.monotonic()))
        health = _with_cpu(run, cpu_seconds(api.pid) - api_cpu, time.process_time() - client_cpu)
        procs.check_alive()

        api_cpu, client_cpu = cpu_seconds(api.pid), _children_cpu()
        run = _submit_script(url, requests, senders, deadline - time.monotonic())
        post = _with_cpu(run, cpu_seconds(api.pid) - api_cpu, _children_cpu() - client_cpu)
        procs.check_alive()

        api_cpu = cpu_seconds(api.pid)
        bulk_run = _post_bulk(url, requests * 10, BULK_SENDERS)
        bulk = asyncio.run(asyncio.wait_for(bulk_run, deadline - time.monotonic()))
        cpu_ms = (cpu_seconds(api.pid) - api_cpu) * 1000 * 1000 / bulk.tasks
        bulk = dataclasses.replace(bulk, api_cpu_ms=cpu_ms)
        procs.check_alive()
    finally:
        procs.stop()
    return health, post, bulk


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_healthy(url: str, deadline: float, check: Callable[[], None]) -> None:
    with httpx.Client(base_url=url, timeout=1.0, trust_env=False) as client:
        while True:
            check()
            try:
                if client.get("/health").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the API at {url} did not answer /health in time")
            time.sleep(0.1)


def _children_cpu() -> float:
    """CPU time of this process's finished (waited-for) children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _with_cpu(run: HttpRun, api_cpu: float, client_cpu: float) -> HttpRun:
    per_request = 1000 / run.requests
    return dataclasses.replace(
        run, api_cpu_ms=api_cpu * per_request, client_cpu_ms=client_cpu * per_request
    )


def _submit_task() -> ModuleType:
    """scripts/submit_task.py as a module: the bench's /health client is the script's own."""
    spec = importlib.util.spec_from_file_location("submit_task", SUBMIT_SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("submit_task", module)
    spec.loader.exec_module(module)
    return module


async def _get_health(url: str, requests: int, senders: int) -> HttpRun:
    todo = iter(range(requests))  # shared by the senders: each request is sent exactly once
    latencies: list[float] = []
    failed = 0

    script = _submit_task()

    async def sender() -> None:
        nonlocal failed
        async with script.make_client(url, 1) as client:
            for _ in todo:
                start = time.perf_counter()
                try:
                    response = await client.get("/health")
                except httpx.HTTPError:
                    failed += 1
                    continue
                latencies.append((time.perf_counter() - start) * 1000)
                failed += response.status_code != 200

    # Timed as submit_task.py times itself: from before the senders make their clients.
    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(min(senders, requests))))
    seconds = time.perf_counter() - started
    return HttpRun(
        requests,
        failed,
        seconds,
        requests / seconds,
        script.percentile(latencies, 50) if latencies else math.nan,
        script.percentile(latencies, 99) if latencies else math.nan,
    )


def _submit_script(url: str, requests: int, senders: int, timeout: float) -> HttpRun:
    """scripts/submit_task.py as a user runs it (default task mix), read through --json."""
    args = ["--url", url, "--count", str(requests), "--concurrency", str(senders), "--json"]
    try:
        done = subprocess.run(
            [sys.executable, str(SUBMIT_SCRIPT), *args],
            capture_output=True,
            text=True,
            timeout=max(timeout, 0.001),
            check=False,
        )
    except subprocess.TimeoutExpired:  # run() has killed it
        raise TimeoutError(f"submit_task.py did not finish within {timeout:.0f} s") from None
    if done.returncode not in (0, 1):  # 1: some were rejected, which the figures show
        raise RuntimeError(f"submit_task.py exited with {done.returncode}:\n{done.stderr[-3000:]}")
    summary = json.loads(done.stdout.splitlines()[0])
    return HttpRun(
        summary["total"],
        summary["total"] - summary["accepted"],
        summary["seconds"],
        summary["requests_per_s"],
        summary["latency_ms"]["p50"],
        summary["latency_ms"]["p99"],
    )


async def _post_bulk(url: str, tasks: int, senders: int) -> BulkRun:
    """`tasks` noop tasks due in an hour, BULK_BATCH per POST /tasks, from `senders` clients."""
    due = "2100-01-01T00:00:00Z"
    bodies = [
        json.dumps(
            [
                {"task_type": "noop", "execution_time": due, "payload": {"n": n}}
                for n in range(start, min(start + BULK_BATCH, tasks))
            ]
        ).encode()
        for start in range(0, tasks, BULK_BATCH)
    ]
    todo = iter(bodies)
    failed = 0

    async def sender() -> None:
        nonlocal failed
        headers = {"content-type": "application/json"}
        async with httpx.AsyncClient(base_url=url, timeout=60, trust_env=False) as client:
            for body in todo:
                response = await client.post("/tasks", content=body, headers=headers)
                failed += response.status_code != 201

    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(senders)))
    seconds = time.perf_counter() - started
    return BulkRun(tasks, len(bodies), failed, seconds, tasks / seconds)
