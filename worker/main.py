"""The worker process: handlers, signals, the claim loop."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from shared import db, registry, runtime
from shared.settings import Settings
from worker.handlers import all_handlers
from worker.loop import Worker

log = logging.getLogger(__name__)


def run_worker(settings: Settings, *, grace: float) -> None:
    registry.import_modules(settings.imports)
    handlers = all_handlers(settings)
    runtime.run(_serve(settings, handlers, grace))


async def _serve(
    settings: Settings, handlers: dict[str, registry.Registered], grace: float
) -> None:
    worker = Worker(settings, db.resolve_dsn(settings), handlers)
    loop = asyncio.get_running_loop()
    signals = 0

    def on_signal(signum: int) -> None:
        nonlocal signals
        signals += 1
        if signals > 1:
            log.warning("second %s: exiting now", signal.Signals(signum).name)
            os._exit(1)
        log.info(
            "%s: no more claims; finishing %d running attempts (grace %.0fs)",
            signal.Signals(signum).name,
            len(worker.running),
            grace,
        )
        worker.stop()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    await worker.run(grace=grace)
