from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from shared.registry import Registered
from shared.settings import Settings
from tests.integration.workers import SETTINGS
from worker.loop import Worker


@pytest.fixture
async def running(dsn: str) -> AsyncIterator[Callable[..., Worker]]:
    """Start workers with given handlers; they are stopped (and awaited) after the test."""
    started: list[tuple[Worker, asyncio.Task[None]]] = []

    def start(hs: dict[str, Registered], settings: Settings = SETTINGS) -> Worker:
        worker = Worker(settings, dsn, hs)
        started.append((worker, asyncio.create_task(worker.run(grace=5))))
        return worker

    yield start
    for worker, _ in started:
        worker.stop()
    await asyncio.wait_for(asyncio.gather(*(t for _, t in started)), 15)


@pytest.fixture
async def client(dsn: str) -> AsyncIterator[AsyncTestClient[Any]]:
    """The API in-process against the test's database."""
    async with AsyncTestClient(app=create_app(Settings(), dsn=dsn)) as client:
        yield client
