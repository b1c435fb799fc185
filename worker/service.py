"""The shape of a worker's background services (rescuer, pruner, heartbeat, hand-back, waker).

A service says how often it runs (`Every`), does one pass in `run_once()` and returns what it
did; `summary()` turns that into a log line, or None when nothing happened. `run_service` is the
one loop: a jittered sleep between passes (a fleet started together does not move in lockstep),
and after a database error a warning and a back-off that doubles up to a cap. Counters live on
each service, for the worker's exit line and the tests.
"""

from __future__ import annotations

import asyncio
import logging
import random
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from shared.db import DB_ERRORS


@dataclass(frozen=True)
class Every:
    """A pass every `seconds` (each sleep drawn from ±`jitter` of it); after a pass that failed on
    the database, a further wait of `retry` s, doubling up to `max_retry`, until one succeeds."""

    seconds: float
    jitter: float = 0.5
    retry: float = 0.0
    max_retry: float = 5.0

    def sleep(self) -> float:
        return self.seconds * random.uniform(1 - self.jitter, 1 + self.jitter)


class Service(ABC):
    name: ClassVar[str]  # in log lines: "<name> failed (...)"
    every: Every

    @property
    def enabled(self) -> bool:
        return True

    @abstractmethod
    async def run_once(self) -> Any:
        """One pass; what it did (what summary() reads)."""

    def summary(self, did: Any) -> str | None:
        """The log line for a pass that did something; None: say nothing."""
        return None


async def run_service(service: Service) -> None:
    """Run `service` until cancelled; returns at once if it is not enabled."""
    if not service.enabled:
        return
    log = logging.getLogger(type(service).__module__)
    every = service.every
    retry = every.retry
    while True:
        await asyncio.sleep(every.sleep())
        try:
            did = await service.run_once()
        except DB_ERRORS as exc:
            log.warning("%s failed (%s)", service.name, exc)
            await asyncio.sleep(retry)
            retry = min(max(retry * 2, every.retry), every.max_retry)
            continue
        retry = every.retry
        line = service.summary(did)
        if line:
            log.info("%s", line)
