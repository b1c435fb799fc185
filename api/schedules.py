"""The schedules API: create, read, list, preview and delete recurring schedules.

Each schedule's occurrences are made tasks by the workers' schedulers (worker/scheduler.py); the
rules of when they fire are shared.schedule's, the same code the `next` preview runs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Response, delete, get, patch, post
from litestar.datastructures import State
from litestar.params import JSONBody, Parameter, QueryParameter
from litestar.status_codes import HTTP_201_CREATED

from api.errors import ApiError
from api.notifier import DueNotifier
from api.openapi import errors
from api.schemas import (
    MAX_PAYLOAD_BYTES,
    SCHEDULE_NAME_PATTERN,
    Occurrences,
    ScheduleChange,
    ScheduleCreate,
    ScheduleDeleted,
    SchedulePage,
    ScheduleView,
    TaskCreated,
)
from api.submit import body_check, checked_payload, checked_time
from shared import queries
from shared.ids import new_task_id
from shared.policy import FIELDS as POLICY_FIELDS
from shared.policy import PolicyError, TaskPolicy, asked_of, resolve
from shared.schedule import Cadence, ScheduleError, parse_cron, parse_interval, zone

NEXT_RUNS = 5
MAX_NEXT = 100
DEFAULT_PAGE = 100
MAX_PAGE = 1000
_decode = msgspec.json.Decoder(dict)


def _view(row: Any) -> ScheduleView:
    fields = {name: row[name] for name in ScheduleView.__struct_fields__ if name in row}
    fields["payload"] = _decode.decode(row["payload"])
    start = row["next_at"]
    fields["next_runs"] = (
        [] if start is None else [start, *Cadence.of_row(row).next_runs(start, NEXT_RUNS - 1)]
    )
    return ScheduleView(**fields)


def _refused(exc: ScheduleError | PolicyError) -> ApiError:
    return ApiError(400, str(exc), field=exc.field)


def _known_type(task_type: str, state: State) -> None:
    known: frozenset[str] = state.task_types
    if task_type not in known:
        raise ApiError(
            422,
            f"task_type: unknown type {task_type!r}; known types: {', '.join(sorted(known))}",
            field="task_type",
        )


def _cadence(
    cron: str | None,
    interval: str | float | None,
    timezone: str,
    start_at: datetime | None,
    end_at: datetime | None,
    anchor: datetime,
) -> Cadence:
    """The cadence these fields describe (intervals count from start_at, else from `anchor`);
    ScheduleError naming the field if refused."""
    if (cron is None) == (interval is None):
        raise ScheduleError("cron", "give exactly one of cron and interval")
    for field, when in (("start_at", start_at), ("end_at", end_at)):
        if when is not None:
            checked_time(when, field)  # an ApiError naming the field, as for a task
    zone(timezone)
    return Cadence(
        cron=None if cron is None else parse_cron(cron),
        interval_seconds=None if interval is None else parse_interval(interval),
        timezone=timezone,
        anchor=start_at or anchor,
        start_at=start_at,
        end_at=end_at,
    )


def _checked(data: ScheduleCreate, state: State, now: datetime) -> tuple[Cadence, TaskPolicy]:
    """The schedule's cadence and resolved policy; ApiError naming the field if refused."""
    _known_type(data.task_type, state)
    try:
        cadence = _cadence(
            data.cron, data.interval, data.timezone, data.start_at, data.end_at, anchor=now
        )
        policy = resolve(asked_of(data), state.policies[data.task_type])
    except (ScheduleError, PolicyError) as exc:
        raise _refused(exc) from None
    return cadence, policy


check_schedule_body = body_check(msgspec.json.Decoder(ScheduleCreate), "a JSON object")


@post(
    "/schedules",
    status_code=HTTP_201_CREATED,
    request_max_body_size=2 * MAX_PAYLOAD_BYTES,
    before_request=check_schedule_body,
    responses=errors(400, 409, 413, 415, 422, 503),
)
async def create_schedule(data: JSONBody[ScheduleCreate], state: State) -> Response[ScheduleView]:
    """Create a schedule; 201 with it and its next runs. A name already taken answers 409."""
    now = datetime.now(UTC)
    cadence, policy = _checked(data, state, now)
    payload = checked_payload(data.payload or {})
    first = cadence.next_runs(now, 1)
    row = await queries.insert_schedule(
        state.pool,
        data.name,
        data.task_type,
        payload,
        cadence.cron,
        cadence.interval_seconds,
        data.timezone,
        data.start_at,
        data.end_at,
        data.enabled,
        data.overlap,
        data.catch_up,
        data.catch_up_limit,
        *policy.columns,
        cadence.anchor,
        first[0] if first else None,
    )
    if row is None:
        raise ApiError(409, f"name: a schedule named {data.name!r} exists", field="name")
    return Response(_view(row), status_code=HTTP_201_CREATED)


NameParam = Annotated[
    str, Parameter(description="The schedule's name.", pattern=SCHEDULE_NAME_PATTERN)
]


async def _found(state: State, name: str) -> Any:
    row = await queries.get_schedule(state.pool, name)
    if row is None:
        raise ApiError(404, f"no schedule {name!r}")
    return row


@get("/schedules/{name:str}", responses=errors(400, 404, 503))
async def get_schedule(name: NameParam, state: State) -> ScheduleView:
    """One schedule, with its next runs."""
    return _view(await _found(state, name))


@get("/schedules", responses=errors(400, 503))
async def list_schedules(
    state: State,
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    cursor: Annotated[str | None, QueryParameter(pattern=SCHEDULE_NAME_PATTERN)] = None,
) -> SchedulePage:
    """Schedules in name order, a keyset page at a time (`cursor`: the last name seen)."""
    rows = await queries.list_schedules(state.pool, cursor, limit)
    views = [_view(r) for r in rows]
    return SchedulePage(views, views[-1].name if len(views) == limit else None)


@get("/schedules/{name:str}/next", responses=errors(400, 404, 503))
async def next_runs(
    name: NameParam,
    state: State,
    after: Annotated[datetime | None, QueryParameter(description="RFC 3339; default now")] = None,
    count: Annotated[int, QueryParameter(ge=1, le=MAX_NEXT)] = 10,
) -> Occurrences:
    """The next `count` occurrences after `after`, by the code that makes them (paused and
    disabled schedules too): how to check what a DST change will do before it does it."""
    if after is not None and after.tzinfo is None:
        raise ApiError(400, "after: an RFC 3339 time with an offset is required", field="after")
    row = await _found(state, name)
    return Occurrences(name, Cadence.of_row(row).next_runs(after or datetime.now(UTC), count))


@delete("/schedules/{name:str}", status_code=200, responses=errors(400, 404, 503))
async def delete_schedule(name: NameParam, state: State) -> ScheduleDeleted:
    """Stop a schedule: no occurrence is made after this, and those still submitted are deleted
    (none of them starts, as with DELETE /task)."""
    deleted = await queries.delete_schedule(state.pool, name)
    if deleted is None:
        raise ApiError(404, f"no schedule {name!r}")
    return ScheduleDeleted(name, deleted)


# The fields that decide when occurrences fall: a change to any of them moves next_at.
_CADENCE_FIELDS = frozenset({"cron", "interval", "timezone", "start_at", "end_at"})


def _asked(data: ScheduleChange) -> dict[str, Any]:
    """The fields a change names: each not left out, but a null policy field (unchanged)."""
    asked: dict[str, Any] = {}
    for name in ScheduleChange.__struct_fields__:
        value = getattr(data, name)
        if value is not msgspec.UNSET and not (value is None and name in POLICY_FIELDS):
            asked[name] = value
    return asked


def _changed(data: ScheduleChange, row: Any, state: State) -> tuple[object, ...]:
    """The columns of schedule_update for `row` (locked) changed as `data` says, checked as a
    new schedule's are; ApiError naming the field if refused."""
    asked = _asked(data)

    def field(name: str, column: str | None = None) -> Any:
        return asked[name] if name in asked else row[column or name]

    task_type = field("task_type")
    _known_type(task_type, state)
    if "cron" in asked and "interval" in asked:
        raise ApiError(400, "cron: give exactly one of cron and interval", field="cron")
    cron = None if "interval" in asked else field("cron")
    interval = None if "cron" in asked else field("interval", "interval_seconds")
    now: datetime = row["db_now"]
    # An interval counts from start_at, else from when it was set: a new one from now.
    anchor = now if asked.keys() & {"interval", "start_at"} else row["anchor"]
    try:
        cadence = _cadence(
            cron, interval, field("timezone"), field("start_at"), field("end_at"), anchor
        )
        policy = resolve(asked_of(data), TaskPolicy.of_row(row))
    except (ScheduleError, PolicyError) as exc:
        raise _refused(exc) from None
    next_at = row["next_at"]
    if asked.keys() & _CADENCE_FIELDS:
        # The new cadence from now on, after every occurrence the old one made already.
        since = max(now, row["last_made"] or now)
        first = cadence.next_runs(since, 1)
        next_at = first[0] if first else None
    payload = checked_payload(asked["payload"]) if "payload" in asked else row["payload"]
    return (
        task_type,
        payload,
        cadence.cron,
        cadence.interval_seconds,
        cadence.timezone,
        cadence.start_at,
        cadence.end_at,
        field("enabled"),
        field("overlap"),
        field("catch_up"),
        field("catch_up_limit"),
        *policy.columns,
        cadence.anchor,  # start_at, else `anchor`: what create stores
        next_at,
    )


check_change_body = body_check(msgspec.json.Decoder(ScheduleChange), "a JSON object")


@patch(
    "/schedules/{name:str}",
    before_request=check_change_body,
    request_max_body_size=2 * MAX_PAYLOAD_BYTES,
    responses=errors(400, 404, 413, 415, 422, 503),
)
async def change_schedule(
    name: NameParam, data: JSONBody[ScheduleChange], state: State
) -> ScheduleView:
    """Change any fields of a schedule but its name. It applies to the occurrences not yet made
    tasks (those made already, due within the next 10 s, keep what they had); a change of
    cadence (cron, interval, timezone, start_at, end_at) takes it on from now."""
    if not _asked(data):
        raise ApiError(400, "the request body names nothing to change")
    row = await queries.change_schedule(state.pool, name, lambda row: _changed(data, row, state))
    if row is None:
        raise ApiError(404, f"no schedule {name!r}")
    return _view(row)


async def _set_enabled(state: State, name: str, enabled: bool) -> ScheduleView:
    row = await queries.set_schedule_enabled(state.pool, name, enabled)
    if row is None:
        raise ApiError(404, f"no schedule {name!r}")
    return _view(row)


@post("/schedules/{name:str}/pause", status_code=200, responses=errors(400, 404, 503))
async def pause_schedule(name: NameParam, state: State) -> ScheduleView:
    """Stop making occurrences (the tasks already made, within the next 10 s, still run)."""
    return await _set_enabled(state, name, False)


@post("/schedules/{name:str}/resume", status_code=200, responses=errors(400, 404, 503))
async def resume_schedule(name: NameParam, state: State) -> ScheduleView:
    """Make occurrences again; those missed while paused are caught up as catch_up says."""
    return await _set_enabled(state, name, True)


@post(
    "/schedules/{name:str}/trigger", status_code=HTTP_201_CREATED, responses=errors(400, 404, 503)
)
async def trigger_schedule(name: NameParam, state: State) -> TaskCreated:
    """One task of the schedule, due now, outside its cadence."""
    task_id = await queries.trigger_schedule(state.pool, name, new_task_id())
    if task_id is None:
        raise ApiError(404, f"no schedule {name!r}")
    notifier: DueNotifier = state.notifier
    notifier.due_in(0.0)
    return TaskCreated(task_id)


SCHEDULE_HANDLERS = [
    create_schedule,
    get_schedule,
    change_schedule,
    list_schedules,
    next_runs,
    delete_schedule,
    pause_schedule,
    resume_schedule,
    trigger_schedule,
]
