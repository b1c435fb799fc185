"""The Litestar app: create_app(settings) with the pool made in the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig

from api.errors import EXCEPTION_HANDLERS
from api.inserter import Inserter
from api.notifier import DueNotifier
from api.routes import ROUTES
from shared import db
from shared.registry import known_task_types
from shared.settings import Settings


def create_app(settings: Settings, dsn: str | None = None) -> Litestar:
    """The API; `dsn` overrides where the database is (else settings, else the embedded server)."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        pool = await db.create_pool(
            dsn or db.resolve_dsn(settings),
            size=settings.db_pool_size,
            application_name="duetime-api",
        )
        app.state.pool = pool
        notifier = DueNotifier(pool, horizon=settings.wake_horizon_seconds)
        app.state.inserter = Inserter(pool, notifier)
        try:
            yield
        finally:
            await notifier.close()
            await pool.close()

    return Litestar(
        route_handlers=ROUTES,
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=OpenAPIConfig(title="duetime", version="0.1.0", path="/schema"),
        state=State({"task_types": known_task_types(settings.task_types), "settings": settings}),
    )
