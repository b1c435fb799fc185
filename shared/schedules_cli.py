"""`duetime schedules …`: the schedules API from the command line (a client of a running API)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import httpx
import typer

app = typer.Typer(
    help="Recurring schedules, through the API at --url (DUETIME_URL).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
UrlOpt = Annotated[
    str,
    typer.Option(
        metavar="URL", envvar="DUETIME_URL", show_envvar=True, help="The duetime API to talk to"
    ),
]
NameArg = Annotated[str, typer.Argument(metavar="NAME", help="The schedule's name")]
DEFAULT_URL = "http://127.0.0.1:8000"


def _call(url: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """The API's answer as JSON; its error (detail) on stderr and exit 1 if it refused."""
    try:
        response = httpx.request(method, f"{url.rstrip('/')}{path}", json=body, timeout=30)
    except httpx.HTTPError as exc:
        typer.echo(f"error: cannot reach the API at {url}: {exc}", err=True)
        raise typer.Exit(1) from None
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        typer.echo(f"error: {response.status_code}: {detail}", err=True)
        raise typer.Exit(1)
    return response.json()


def _show(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2))


@app.command("list")
def list_schedules(url: UrlOpt = DEFAULT_URL) -> None:
    """Every schedule, a line each: name, cadence, zone, enabled, next run."""
    cursor: str | None = None
    while True:
        page = _call(url, "GET", "/schedules?limit=1000" + (f"&cursor={cursor}" if cursor else ""))
        for s in page["schedules"]:
            cadence = s["cron"] or f"every {s['interval_seconds']:g}s"
            state = "enabled" if s["enabled"] else "paused"
            first = s["next_runs"][0] if s["next_runs"] else "-"
            typer.echo(f"{s['name']}\t{cadence}\t{s['timezone']}\t{state}\tnext {first}")
        cursor = page["next_cursor"]
        if cursor is None:
            return


@app.command()
def show(name: NameArg, url: UrlOpt = DEFAULT_URL) -> None:
    """One schedule as JSON, with its next runs."""
    _show(_call(url, "GET", f"/schedules/{name}"))


@app.command()
def add(
    name: NameArg,
    task_type: Annotated[str, typer.Option("--type", metavar="TYPE", help="The task type")],
    cron: Annotated[
        str | None, typer.Option(metavar="EXPR", help="6 fields, seconds first, or 5")
    ] = None,
    interval: Annotated[
        str | None, typer.Option(metavar="DURATION", help="PT30S, P1D, or seconds")
    ] = None,
    timezone: Annotated[str, typer.Option(metavar="ZONE", help="An IANA name")] = "UTC",
    payload: Annotated[str, typer.Option(metavar="JSON", help="The tasks' payload")] = "{}",
    overlap: Annotated[str, typer.Option(metavar="allow|skip")] = "allow",
    catch_up: Annotated[str, typer.Option(metavar="latest|all|none")] = "latest",
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Create a schedule. Examples:

    \b
      duetime schedules add weekday-report --type report \\
          --cron "0 0 9 * * 1-5" --timezone Europe/Berlin
      duetime schedules add heartbeat --type ping --interval PT30S
    """
    try:
        body_payload = json.loads(payload)
    except json.JSONDecodeError as exc:
        typer.echo(f"error: --payload is not JSON: {exc}", err=True)
        raise typer.Exit(2) from None
    body: dict[str, Any] = {
        "name": name,
        "task_type": task_type,
        "timezone": timezone,
        "payload": body_payload,
        "overlap": overlap,
        "catch_up": catch_up,
    }
    if cron is not None:
        body["cron"] = cron
    if interval is not None:
        body["interval"] = float(interval) if interval.replace(".", "", 1).isdigit() else interval
    _show(_call(url, "POST", "/schedules", body))


@app.command()
def pause(name: NameArg, url: UrlOpt = DEFAULT_URL) -> None:
    """Stop making occurrences until resumed."""
    _show(_call(url, "POST", f"/schedules/{name}/pause"))


@app.command()
def resume(name: NameArg, url: UrlOpt = DEFAULT_URL) -> None:
    """Make occurrences again (missed ones are caught up as the schedule's catch_up says)."""
    _show(_call(url, "POST", f"/schedules/{name}/resume"))


@app.command()
def trigger(name: NameArg, url: UrlOpt = DEFAULT_URL) -> None:
    """One task of the schedule, due now."""
    _show(_call(url, "POST", f"/schedules/{name}/trigger"))


@app.command()
def delete(name: NameArg, url: UrlOpt = DEFAULT_URL) -> None:
    """Stop a schedule for good; its occurrences still submitted are deleted."""
    _show(_call(url, "DELETE", f"/schedules/{name}"))
