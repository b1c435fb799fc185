"""Runs one attempt of a task: the handler, async on the loop or sync in a thread; never raises."""

from __future__ import annotations

import asyncio
import logging
import traceback
from concurrent.futures import ThreadPoolExecutor

import msgspec

from shared.queries import Finish
from shared.registry import Registered, TaskContext
from shared.task import ClaimedTask

log = logging.getLogger("duetime.task")
MAX_ERROR_CHARS = 4000
_encoder = msgspec.json.Encoder()


def _error_text(exc: BaseException) -> str:
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return text[:MAX_ERROR_CHARS]


class Executor:
    def __init__(self, handlers: dict[str, Registered], threads: int) -> None:
        self._handlers = handlers
        self._threads = threads
        self._pool: ThreadPoolExecutor | None = None  # made on the first sync handler

    @property
    def task_types(self) -> list[str]:
        return sorted(self._handlers)

    async def run(self, task: ClaimedTask) -> Finish:
        def failed(error: str) -> Finish:
            return Finish(task.task_id, task.attempt, "retry", error=error, reason="error")

        handler = self._handlers.get(task.task_type)
        if handler is None:  # the claim filters by type, so only a misconfigured fleet gets here
            return failed(f"no handler for task type {task.task_type!r}")
        ctx = TaskContext(
            task_id=task.task_id,
            task_type=task.task_type,
            attempt=task.attempt,
            execution_time=task.execution_time,
            payload=task.payload,
            log=log,
        )
        try:
            if handler.is_async:
                value = await handler.func(ctx)
            else:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(
                        self._threads, thread_name_prefix="duetime-task"
                    )
                value = await asyncio.get_running_loop().run_in_executor(
                    self._pool, handler.func, ctx
                )
        except Exception as exc:
            log.warning(
                "task %s (%s) attempt %d failed: %s",
                task.task_id,
                task.task_type,
                task.attempt,
                exc,
                exc_info=exc,
            )
            return failed(_error_text(exc))
        try:
            result = None if value is None else _encoder.encode(value).decode()
        except (TypeError, msgspec.EncodeError) as exc:
            return failed(f"handler result is not JSON-serialisable: {exc}")
        return Finish(task.task_id, task.attempt, "done", result)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
