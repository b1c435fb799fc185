"""The one loop of the worker's services: jittered passes, back-off after database errors, a log
line only when a pass did something."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from worker import service as service_module
from worker.service import Every, Service, run_service


class Scripted(Service):
    """Each pass does what the next item says: an exception to raise, or a result to return."""

    name = "scripted pass"

    def __init__(self, every: Every, script: list[Any], enabled: bool = True) -> None:
        self.every = every
        self._script = script
        self._enabled = enabled
        self.passes = 0

    @property
    def enabled(self) -> bool:
        return self._enabled

    async def run_once(self) -> Any:
        self.passes += 1
        if not self._script:
            raise asyncio.CancelledError  # the end of the script stops the loop
        step = self._script.pop(0)
        if isinstance(step, BaseException):
            raise step
        return step

    def summary(self, did: Any) -> str | None:
        return f"did {did}" if did else None


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every sleep the loop asks for, without sleeping."""
    asked: list[float] = []

    async def sleep(seconds: float) -> None:
        asked.append(seconds)

    monkeypatch.setattr(service_module.asyncio, "sleep", sleep)
    return asked


def run(service: Service) -> None:
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(run_service(service))


def test_passes_are_jittered_within_their_bounds(sleeps: list[float]) -> None:
    run(Scripted(Every(10.0, jitter=0.5), [0] * 200))
    assert len(sleeps) == 201
    assert all(5.0 <= s <= 15.0 for s in sleeps)
    # Spread over the range, not stuck at one end (a miss has odds of 1e-14).
    assert min(sleeps) < 6.5
    assert max(sleeps) > 13.5


def test_a_database_error_backs_off_doubling_to_the_cap_then_resets(
    sleeps: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    down = ConnectionRefusedError("refused")
    every = Every(1.0, jitter=0.0, retry=0.5, max_retry=3.0)
    with caplog.at_level(logging.WARNING):
        run(Scripted(every, [down, down, down, down, 0, down]))
    # pass, back-off 0.5; pass, 1; pass, 2; pass, 3 (the cap); pass ok; pass, 0.5 again; pass.
    assert sleeps == [1.0, 0.5, 1.0, 1.0, 1.0, 2.0, 1.0, 3.0, 1.0, 1.0, 0.5, 1.0]
    assert caplog.messages.count("scripted pass failed (refused)") == 5


def test_an_error_that_is_not_the_database_s_is_not_swallowed(sleeps: list[float]) -> None:
    with pytest.raises(ZeroDivisionError):
        asyncio.run(run_service(Scripted(Every(1.0), [ZeroDivisionError()])))


def test_only_a_pass_that_did_something_is_logged(
    sleeps: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        run(Scripted(Every(1.0), [0, 3, 0, 0]))
    assert caplog.messages == ["did 3"]


def test_a_service_that_is_not_enabled_never_runs(sleeps: list[float]) -> None:
    service = Scripted(Every(1.0), [1], enabled=False)
    asyncio.run(run_service(service))
    assert (service.passes, sleeps) == (0, [])
