"""Task handlers by name. `from duetime import task` registers into this one registry.

It lives in shared because the API needs the names (it accepts only known task types) while only
the worker runs the handlers.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import msgspec

# The built-in types; the worker supplies their handlers (worker/handlers.py).
BUILTIN_TASK_TYPES = ("foo", "bar", "baz", "noop")
# Names the API and the worker reserve: a user's handler package must not shadow them.
RESERVED_PACKAGES = frozenset({"api", "worker", "shared", "duetime"})
TASK_TYPE_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")  # mirrors the CHECK on tasks


class TaskContext(msgspec.Struct, kw_only=True, frozen=True):
    """What a handler gets: the task's identity, its attempt number and its payload."""

    task_id: UUID
    task_type: str
    attempt: int
    execution_time: datetime
    payload: dict[str, Any]
    log: logging.Logger


Handler = Callable[[TaskContext], Awaitable[Any]] | Callable[[TaskContext], Any]
H = TypeVar("H", bound=Callable[..., Any])


class Registered(msgspec.Struct, frozen=True):
    name: str
    func: Callable[..., Any]
    is_async: bool


_handlers: dict[str, Registered] = {}


def task(name: str | None = None) -> Callable[[H], H]:
    """Register a handler under `name` (default: the function's name).

    An `async def` runs on the worker's event loop; a plain function runs in a thread. The return
    value, if JSON-serialisable and not None, is stored as the task's `result`.
    """

    def register(func: H) -> H:
        task_name = name or func.__name__
        if not TASK_TYPE_PATTERN.match(task_name):
            raise ValueError(f"task type {task_name!r} must match {TASK_TYPE_PATTERN.pattern}")
        if task_name in BUILTIN_TASK_TYPES:
            raise ValueError(f"task type {task_name!r} is built in; pick another name")
        existing = _handlers.get(task_name)
        if existing is not None and existing.func is not func:
            raise ValueError(f"task type {task_name!r} is already registered by {existing.func!r}")
        _handlers[task_name] = Registered(task_name, func, inspect.iscoroutinefunction(func))
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
