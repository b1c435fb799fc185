"""The API process: uvicorn serving create_app with settings from the environment."""

from __future__ import annotations

from litestar import Litestar

from shared import registry
from shared.settings import Settings


def app_from_env() -> Litestar:
    """The factory uvicorn calls in each API process (settings come through the environment)."""
    from api.app import create_app

    settings = Settings.from_env()
    registry.import_modules(settings.imports)
    return create_app(settings)


def run_api(settings: Settings, *, processes: int) -> None:
    import uvicorn

    registry.import_modules(settings.imports)  # fail here, before forking, on a bad --import
    uvicorn.run(
        "api.main:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=processes if processes > 1 else None,
        loop="uvloop",
        http="httptools",
        access_log=settings.access_log,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=10,
    )
