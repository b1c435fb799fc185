"""The Litestar app: create_app(settings) with the pool made in the lifespan."""

from __future__ import annotations

import importlib.metadata
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State

from api.errors import EXCEPTION_HANDLERS
from api.inserter import Inserter
from api.notifier import DueNotifier
from api.openapi import assets_router, openapi_config
from api.routes import ROUTES
from shared import db
from shared import policy as policies
from shared.registry import known_task_types, registered
from shared.settings import Settings


def create_app(settings: Settings, dsn: str | None = None) -> Litestar:
    """The API; `dsn` overrides where the database is (else settings, else the embedded server)."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        # No connection opened up front: the API starts while the database is down, answers 503
        # meanwhile, and connects when a request first needs it.
        pool = await db.open_pool(
            dsn or db.resolve_dsn(settings),
            # Past it a query, or the wait for a connection, is a 503 (api/errors.py).
            deadline=settings.db_timeout_seconds,
            size=settings.db_pool_size,
            min_size=0,
            application_name="duetime-api",
            server_settings=db.API_SERVER_SETTINGS,
            timeout=settings.db_timeout_seconds,  # connecting, within each acquire's deadline
        )
        app.state.pool = pool
        notifier = DueNotifier(pool, horizon=settings.wake_horizon_seconds)
        app.state.notifier = notifier
        app.state.inserter = Inserter(pool, notifier)
        try:
            yield
        finally:
            await notifier.close()
            await pool.close()

    task_types = known_task_types(settings.task_types)
    default = settings.policy()
    handlers = registered()
    # Each type's policy over the settings', complete and checked when the app is made (so a
    # request that names no policy field uses it as it is), like the known types.
    type_policies = {
        name: policies.resolve(handlers[name].policy, default) if name in handlers else default
        for name in task_types
    }
    return Litestar(
        route_handlers=[*ROUTES, assets_router()],
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=openapi_config(importlib.metadata.version("duetime"), task_types),
        # Our own log format (shared.logs), not Litestar's default handler on the root logger.
        logging_config=None,
        state=State({"task_types": task_types, "policies": type_policies, "settings": settings}),
    )
