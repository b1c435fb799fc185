"""duetime: run this task at time T, once. The public surface: `task`, `TaskContext`, `Retry`,
`Fail` and the CLI.

    from duetime import task

    @task("send_reminder")
    async def send_reminder(ctx): ...

Start the whole system on a laptop with `duetime dev`; in production run `duetime migrate`, then
`duetime api` and any number of `duetime worker` processes against the same DATABASE_URL.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from shared.registry import Fail, Retry, TaskContext, task
from shared.settings import Settings, SettingsError

__all__ = ["Fail", "Retry", "TaskContext", "main", "task"]

cli = typer.Typer(
    help="duetime: a distributed task scheduler on Postgres.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ImportOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--import", "-i", help="Module with @task handlers (repeatable), e.g. myapp.tasks"
    ),
]
HostOpt = Annotated[str | None, typer.Option(help="Interface to listen on [default: 127.0.0.1]")]
PortOpt = Annotated[int | None, typer.Option(help="HTTP port [default: 8000]")]
ConcurrencyOpt = Annotated[
    int | None, typer.Option(help="Attempts one worker runs at once [default: 100]", min=1)
]


def _settings(imports: list[str] | None = None, **overrides: object) -> Settings:
    from shared.logs import setup

    try:
        settings = Settings.from_env(overrides=overrides)
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if imports:
        settings = settings.with_(imports=(*settings.imports, *imports))
    # Children (uvicorn's factory, dev's processes) read the same settings from the environment.
    os.environ.update(settings.to_env())
    setup(settings.log_level, os.environ.get("DUETIME_ROLE", "duetime"))
    return settings


@cli.command()
def dev(
    host: HostOpt = None,
    port: PortOpt = None,
    workers: Annotated[int, typer.Option(help="Worker processes", min=0)] = 2,
    concurrency: ConcurrencyOpt = None,
    data_dir: Annotated[
        str | None, typer.Option(help="Embedded PostgreSQL's home [default: ./.duetime]")
    ] = None,
    import_: ImportOpt = None,
) -> None:
    """Everything on one machine: PostgreSQL (embedded unless DATABASE_URL is set), migrations,
    the API and WORKERS worker processes. Ctrl-C stops it all."""
    from shared.devserver import run_dev

    os.environ["DUETIME_ROLE"] = "dev"
    settings = _settings(import_, host=host, port=port, concurrency=concurrency, data_dir=data_dir)
    raise typer.Exit(run_dev(settings, workers=workers))


@cli.command()
def api(
    host: HostOpt = None,
    port: PortOpt = None,
    processes: Annotated[int, typer.Option(help="API processes (uvicorn workers)", min=1)] = 1,
    import_: ImportOpt = None,
) -> None:
    """Serve the HTTP API."""
    from api.main import run_api

    os.environ.setdefault("DUETIME_ROLE", "api")
    settings = _settings(import_, host=host, port=port)
    run_api(settings, processes=processes)


@cli.command()
def worker(
    concurrency: ConcurrencyOpt = None,
    grace: Annotated[
        float, typer.Option(help="Seconds to let running attempts finish on SIGTERM")
    ] = 30.0,
    import_: ImportOpt = None,
) -> None:
    """Run a worker: claims due tasks and runs them until SIGTERM/SIGINT."""
    from worker.main import run_worker

    os.environ.setdefault("DUETIME_ROLE", "worker")
    settings = _settings(import_, concurrency=concurrency)
    try:
        run_worker(settings, grace=grace)
    except (ValueError, RuntimeError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@cli.command()
def migrate() -> None:
    """Apply the database migrations (DATABASE_URL, or the embedded server of `duetime dev`)."""
    from shared import db
    from shared import migrate as migrations

    os.environ.setdefault("DUETIME_ROLE", "migrate")
    settings = _settings()
    migrations.upgrade(db.resolve_dsn(settings))
    typer.echo("migrations applied")


def main() -> None:
    cli(prog_name="duetime")


if __name__ == "__main__":
    main()
