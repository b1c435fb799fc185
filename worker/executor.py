"""Runs one attempt of a task within its timeout and says how it ended; never raises.

An async handler runs on the loop; a plain function runs in a thread of its own (a daemon), so a
thread that ignores cancellation can be abandoned without starving the others. Past the timeout
the attempt is cancelled (CancelledError for async handlers, `ctx.cancelled` for both); a thread
that has not stopped after the cancel grace is abandoned and whatever it returns is thrown away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import traceback
from typing import Any

import msgspec

from shared.queries import Finish
from shared.registry import Fail, Registered, Retry, TaskContext
from shared.task import ClaimedTask, holds_json_nul

log = logging.getLogger("duetime.task")
MAX_ERROR_CHARS = 4000
_encoder = msgspec.json.Encoder()


def _clean(text: str) -> str:
    # Postgres text cannot hold NUL: one in an error would fail the whole batch of results.
    return text[:MAX_ERROR_CHARS].replace("\x00", "\\x00")


def _error_text(exc: BaseException) -> str:
    return _clean("".join(traceback.format_exception_only(type(exc), exc)).strip())


def _in_thread(func: Any, ctx: TaskContext) -> asyncio.Future[Any]:
    """`func(ctx)` in a new daemon thread; the future gets its result unless already done."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(value: Any, error: BaseException | None) -> None:
        if future.done():  # abandoned: the attempt has already been decided
            return
        if error is None:
            future.set_result(value)
        else:
            future.set_exception(error)

    def target() -> None:
        try:
            value, error = func(ctx), None
        except BaseException as exc:  # handed to the loop, which decides
            value, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop closed: the worker exited
            loop.call_soon_threadsafe(settle, value, error)

    threading.Thread(target=target, name=f"duetime-task-{ctx.task_id}", daemon=True).start()
    return future


class Executor:
    def __init__(self, handlers: dict[str, Registered], *, cancel_grace: float) -> None:
        self._handlers = handlers
        self._cancel_grace = cancel_grace
        self.abandoned = 0  # handlers that ignored cancellation and may still be running

    @property
    def task_types(self) -> list[str]:
        return sorted(self._handlers)

    def context(self, task: ClaimedTask) -> TaskContext:
        return TaskContext(
            task_id=task.task_id,
            task_type=task.task_type,
            attempt=task.attempt,
            execution_time=task.execution_time,
            payload=task.payload,
            log=log,
        )

    async def run(self, task: ClaimedTask, ctx: TaskContext) -> Finish:
        """Cancelling this cancels the handler (and sets ctx.cancelled)."""
        handler = self._handlers.get(task.task_type)
        if handler is None:  # the claim filters by type, so only a misconfigured fleet gets here
            return Finish(
                task.task_id,
                task.attempt,
                "fail",
                error=f"no handler for task type {task.task_type!r}",
                reason="error",
            )
        if handler.is_async:
            return await self._run_async(handler, task, ctx)
        running = _in_thread(handler.func, ctx)
        try:
            done, _ = await asyncio.wait({running}, timeout=task.timeout_seconds)
        except asyncio.CancelledError:
            ctx.cancelled.set()
            raise
        if not done:
            ctx.cancelled.set()
            done, _ = await asyncio.wait({running}, timeout=self._cancel_grace)
            if not done:
                self.abandoned += 1
                note = f" and ignored cancellation for {self._cancel_grace:g}s: abandoned"
                return self._timed_out(task, note)
            return self._timed_out(task)
        error = running.exception()
        return self._outcome(task, None if error else running.result(), error)

    async def _run_async(self, handler: Registered, task: ClaimedTask, ctx: TaskContext) -> Finish:
        # On the attempt's own task: a task and a wait() of its own per attempt would cost four
        # times as much as the no-op handler. The price: a handler that swallows CancelledError
        # cannot be abandoned; it keeps its slot until it returns, and its result is discarded.
        current = asyncio.current_task()
        assert current is not None
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            ctx.cancelled.set()  # before the handler sees CancelledError
            current.cancel()

        timer = asyncio.get_running_loop().call_later(task.timeout_seconds, expire)
        try:
            value = await handler.func(ctx)
        except asyncio.CancelledError:
            # Our own cancel is a timeout; any other (lease lost, exit) goes on up.
            if not expired or current.uncancel() > 0:
                ctx.cancelled.set()
                raise
            return self._timed_out(task)
        except Exception as exc:
            if expired:
                current.uncancel()
                return self._timed_out(task)
            return self._outcome(task, None, exc)
        finally:
            timer.cancel()
        if expired:  # it swallowed the cancellation and returned anyway
            current.uncancel()
            return self._timed_out(task, " and ignored cancellation: result discarded")
        return self._outcome(task, value, None)

    def _timed_out(self, task: ClaimedTask, note: str = "") -> Finish:
        error = f"timed out after {task.timeout_seconds:g}s{note}"
        log.warning("task %s (%s) attempt %d %s", task.task_id, task.task_type, task.attempt, error)
        return Finish(task.task_id, task.attempt, "retry", error=error, reason="timeout")

    def _outcome(self, task: ClaimedTask, value: Any, exc: BaseException | None) -> Finish:
        def ended(outcome: str, error: str, reason: str, retry_in: float | None = None) -> Finish:
            return Finish(task.task_id, task.attempt, outcome, None, error, reason, retry_in)

        # Retry and Fail carry the handler's own words: no exception class in front.
        if isinstance(exc, Retry):
            return ended("retry", _clean(str(exc)), "retry", exc.after)
        if isinstance(exc, Fail):
            return ended("fail", _clean(str(exc)), "fail")
        if exc is not None:
            log.warning(
                "task %s (%s) attempt %d failed: %s",
                task.task_id,
                task.task_type,
                task.attempt,
                exc,
                exc_info=exc,
            )
            return ended("retry", _error_text(exc), "error")
        try:
            result = None if value is None else _encoder.encode(value).decode()
        except (TypeError, msgspec.EncodeError) as err:
            return ended("fail", f"handler result is not JSON-serialisable: {err}", "error")
        if result is not None and holds_json_nul(result):
            return ended("fail", "handler result holds \\u0000: Postgres cannot store it", "error")
        return Finish(task.task_id, task.attempt, "done", result)
