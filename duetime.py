"""duetime: run this task at time T, once. The public surface: `task`, `TaskContext`, `Retry`,
`Fail` and the CLI.

    from duetime import task

    @task("send_reminder")
    async def send_reminder(ctx): ...

Start the whole system on a laptop with `duetime dev`; in production run `duetime migrate`, then
`duetime api` and any number of `duetime worker` processes against the same DATABASE_URL.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
from collections.abc import Iterator
from typing import Annotated, Any

import typer

from shared.registry import Fail, Retry, TaskContext, task
from shared.settings import Settings, SettingsError

__all__ = ["Fail", "Retry", "TaskContext", "main", "task"]

cli = typer.Typer(
    help="duetime: a distributed task scheduler on Postgres.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help: the Rich layout shows `--help <bool>` with this typer.
    rich_markup_mode=None,
)

# An option that is also a setting reads its DUETIME_* variable (so the command line wins over
# the environment, which wins over the settings' default) and shows both in --help.
_DEFAULTS = Settings()


def _setting(name: str, metavar: str, help: str, **kwargs: Any) -> Any:
    return typer.Option(
        metavar=metavar, help=help, envvar=f"DUETIME_{name.upper()}", show_envvar=True, **kwargs
    )


ImportOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--import",
        "-i",
        metavar="MODULE",
        help="Module with @task handlers (repeatable), e.g. myapp.tasks; also DUETIME_IMPORTS "
        "(comma-separated)",
    ),
]
HostOpt = Annotated[str, _setting("host", "HOST", "Interface to listen on")]
PortOpt = Annotated[int, _setting("port", "PORT", "HTTP port")]
AccessLogOpt = Annotated[
    bool, _setting("access_log", "", "One log line per HTTP request (costs every request)")
]
ConcurrencyOpt = Annotated[
    int, _setting("concurrency", "N", "Attempts one worker runs at once", min=1)
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


@contextlib.contextmanager
def _one_line_errors() -> Iterator[None]:
    """A mistake in what the process was asked to run (a module that does not import, a handler's
    bad policy, no database to find) is one line on stderr and exit code 2, not a traceback."""
    try:
        yield
    except (ValueError, RuntimeError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _version(value: bool) -> None:
    if value:
        typer.echo(f"duetime {importlib.metadata.version('duetime')}")
        raise typer.Exit()


@cli.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """duetime: a distributed task scheduler on Postgres."""


@cli.command()
def dev(
    host: HostOpt = _DEFAULTS.host,
    port: PortOpt = _DEFAULTS.port,
    workers: Annotated[int, typer.Option(metavar="N", help="Worker processes", min=0)] = 2,
    concurrency: ConcurrencyOpt = _DEFAULTS.concurrency,
    data_dir: Annotated[
        str, _setting("data_dir", "DIR", "Embedded PostgreSQL's home (without DATABASE_URL)")
    ] = _DEFAULTS.data_dir,
    access_log: AccessLogOpt = True,  # on a laptop, seeing each request beats its cost
    import_: ImportOpt = None,
) -> None:
    """Everything on one machine: PostgreSQL (embedded unless DATABASE_URL is set), migrations,
    the API and WORKERS worker processes. Ctrl-C stops it all."""
    from shared.devserver import run_dev

    os.environ["DUETIME_ROLE"] = "dev"
    settings = _settings(
        import_,
        host=host,
        port=port,
        concurrency=concurrency,
        data_dir=data_dir,
        access_log=access_log,
    )
    raise typer.Exit(run_dev(settings, workers=workers))


@cli.command()
def api(
    host: HostOpt = _DEFAULTS.host,
    port: PortOpt = _DEFAULTS.port,
    processes: Annotated[
        int, typer.Option(metavar="N", help="API processes (uvicorn workers)", min=1)
    ] = 1,
    access_log: AccessLogOpt = _DEFAULTS.access_log,
    import_: ImportOpt = None,
) -> None:
    """Serve the HTTP API."""
    from api.main import run_api

    os.environ.setdefault("DUETIME_ROLE", "api")
    settings = _settings(import_, host=host, port=port, access_log=access_log)
    with _one_line_errors():
        run_api(settings, processes=processes)


@cli.command()
def worker(
    concurrency: ConcurrencyOpt = _DEFAULTS.concurrency,
    grace: Annotated[
        float,
        typer.Option(metavar="SECONDS", help="Seconds to let running attempts finish on SIGTERM"),
    ] = 30.0,
    import_: ImportOpt = None,
) -> None:
    """Run a worker: claims due tasks and runs them until SIGTERM/SIGINT."""
    from worker.main import run_worker

    os.environ.setdefault("DUETIME_ROLE", "worker")
    settings = _settings(import_, concurrency=concurrency)
    with _one_line_errors():
        run_worker(settings, grace=grace)


@cli.command()
def migrate() -> None:
    """Apply the database migrations (DATABASE_URL, or the embedded server of `duetime dev`)."""
    from shared import db
    from shared import migrate as migrations

    os.environ.setdefault("DUETIME_ROLE", "migrate")
    settings = _settings()
    migrations.upgrade(db.resolve_dsn(settings))
    typer.echo("migrations applied")


def _schedules() -> None:
    from shared.schedules_cli import app

    cli.add_typer(app, name="schedules")


_schedules()


def main() -> None:
    cli(prog_name="duetime")


if __name__ == "__main__":
    main()
