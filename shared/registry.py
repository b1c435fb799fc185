"""Task handlers by name. `from duetime import task` registers into this one registry.

It lives in shared because the API needs the names (it accepts only known task types) while only
the worker runs the handlers.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import re
import threading
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import msgspec

from shared import policy as policies
from shared.policy import Backoff, TaskPolicy

# The built-in types; the worker supplies their handlers (worker/handlers.py).
BUILTIN_TASK_TYPES = ("foo", "bar", "baz", "noop")
# Names the API and the worker reserve: a user's handler package must not shadow them.
RESERVED_PACKAGES = frozenset({"api", "worker", "shared", "duetime"})
TASK_TYPE_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")  # mirrors the CHECK on tasks


class Cancelled:
    """Set when an attempt must stop. Reads like threading.Event (`is_set()`, `wait(timeout)`),
    but costs a flag until someone waits on it: the worker makes one per attempt."""

    __slots__ = ("_event", "_set")

    def __init__(self) -> None:
        self._set = False
        self._event: threading.Event | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        if self._event is not None:
            self._event.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block the calling thread until set (True) or `timeout` seconds pass (False)."""
        if self._event is None:
            self._event = threading.Event()
            if self._set:  # set() ran before the event existed
                self._event.set()
        return self._event.wait(timeout)


class TaskContext(msgspec.Struct, kw_only=True, frozen=True):
    """What a handler gets: the task's identity, its attempt number and its payload.

    `cancelled` is set when the attempt must stop (its timeout passed, its lease was lost, the
    worker is exiting). An async handler is also cancelled (CancelledError at its next await); a
    plain function, which runs in a thread, should check `ctx.cancelled.is_set()` now and then:
    one that does not is abandoned after the grace period and its result thrown away.
    """

    task_id: UUID
    task_type: str
    attempt: int
    execution_time: datetime
    payload: dict[str, Any]
    log: logging.Logger
    cancelled: Cancelled = msgspec.field(default_factory=Cancelled)


class Retry(Exception):
    """Raise from a handler to try again: after `after` seconds, else the task's backoff. Counts
    as an attempt; with no attempts left the task fails."""

    def __init__(self, reason: str = "retry requested", *, after: float | None = None) -> None:
        if after is not None and not 0 <= after <= 365 * 86400:
            raise ValueError(f"Retry(after={after!r}): must be 0 to 1 year of seconds")
        super().__init__(reason)
        self.after = after


class Fail(Exception):
    """Raise from a handler to fail the task now, whatever attempts it has left."""


Handler = Callable[[TaskContext], Awaitable[Any]] | Callable[[TaskContext], Any]
H = TypeVar("H", bound=Callable[..., Any])


class Registered(msgspec.Struct, frozen=True):
    name: str
    func: Callable[..., Any]
    is_async: bool
    policy: TaskPolicy = TaskPolicy()


_handlers: dict[str, Registered] = {}


def task(
    name: str | None = None,
    *,
    max_attempts: int | None = None,
    backoff: Backoff | str | None = None,
    backoff_base: float | None = None,
    backoff_cap: float | None = None,
    retry_on_loss: bool | None = None,
    timeout: float | None = None,
) -> Callable[[H], H]:
    """Register a handler under `name` (default: the function's name), with its type's failure
    policy: what a task of this type gets unless its request says otherwise (see TaskPolicy).

    An `async def` runs on the worker's event loop; a plain function runs in a thread. The return
    value, if JSON-serialisable and not None, is stored as the task's `result`.
    """
    try:
        policy = msgspec.convert(
            {
                "max_attempts": max_attempts,
                "backoff": backoff,
                "backoff_base_seconds": backoff_base,
                "backoff_cap_seconds": backoff_cap,
                "retry_on_loss": retry_on_loss,
                "timeout_seconds": timeout,
            },
            TaskPolicy,
        )
        policies.check(policy)
    except (msgspec.ValidationError, ValueError) as exc:
        raise ValueError(f"@task({name or ''}): {exc}") from None

    def register(func: H) -> H:
        task_name = name or func.__name__
        if not TASK_TYPE_PATTERN.match(task_name):
            raise ValueError(f"task type {task_name!r} must match {TASK_TYPE_PATTERN.pattern}")
        if task_name in BUILTIN_TASK_TYPES:
            raise ValueError(f"task type {task_name!r} is built in; pick another name")
        existing = _handlers.get(task_name)
        if existing is not None and existing.func is not func:
            raise ValueError(f"task type {task_name!r} is already registered by {existing.func!r}")
        _handlers[task_name] = Registered(
            task_name, func, inspect.iscoroutinefunction(func), policy
        )
        return func

    return register


def registered() -> dict[str, Registered]:
    return dict(_handlers)


def import_modules(modules: Iterable[str]) -> None:
    """Import user modules so their @task decorators run; a clear error if one is missing."""
    for module in modules:
        if module.split(".")[0] in RESERVED_PACKAGES:
            raise ValueError(
                f"{module!r}: handler packages must not be named {sorted(RESERVED_PACKAGES)}"
            )
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            raise ValueError(f"cannot import handler module {module!r}: {exc}") from exc


def known_task_types(extra: Iterable[str] = ()) -> frozenset[str]:
    return frozenset(BUILTIN_TASK_TYPES) | frozenset(_handlers) | frozenset(extra)
