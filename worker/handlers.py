"""The built-in task types: foo (sleeps), bar (HTTP GET), baz (a random number), noop."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from shared.registry import Registered, TaskContext, registered
from shared.settings import Settings

if TYPE_CHECKING:
    import httpx


def builtin_handlers(settings: Settings) -> dict[str, Registered]:
    """Handlers for the built-in types, configured by settings (foo_seconds, bar_url)."""
    client: httpx.AsyncClient | None = None

    async def foo(ctx: TaskContext) -> None:
        ctx.log.info("Foo %s", ctx.task_id)
        await asyncio.sleep(settings.foo_seconds)

    async def bar(ctx: TaskContext) -> dict[str, Any]:
        nonlocal client
        if client is None:
            import httpx  # only bar needs it: ~0.3 s of CPU off every worker's start

            client = httpx.AsyncClient(timeout=10.0, follow_redirects=False)
        response = await client.get(settings.bar_url)
        return {"url": settings.bar_url, "status_code": response.status_code}

    async def baz(ctx: TaskContext) -> int:
        number = random.randint(0, 343)
        ctx.log.info("Baz %s: %d", ctx.task_id, number)
        return number

    async def noop(ctx: TaskContext) -> None:
        return None

    funcs: dict[str, Callable[[TaskContext], Awaitable[Any]]] = {
        "foo": foo,
        "bar": bar,
        "baz": baz,
        "noop": noop,
    }
    return {name: Registered(name, func, True) for name, func in funcs.items()}


def all_handlers(settings: Settings) -> dict[str, Registered]:
    """Built-ins plus everything registered with @task (their names never clash: see task())."""
    return {**builtin_handlers(settings), **registered()}
