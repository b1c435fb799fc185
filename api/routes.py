"""The routes: thin handlers over shared.queries (POST /task is in api.submit, POST /tasks in
api.bulk, the probes in api.probes); errors go through api.errors."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Response, delete, get, patch, post
from litestar.datastructures import State
from litestar.enums import HttpMethod
from litestar.handlers import HTTPRouteHandler
from litestar.params import JSONBody, Parameter, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_204_NO_CONTENT

from api.bulk import create_tasks
from api.errors import ApiError
from api.notifier import DueNotifier
from api.openapi import errors
from api.probes import health, ready
from api.schedules import SCHEDULE_HANDLERS
from api.schemas import MAX_PAYLOAD_BYTES, SCHEDULE_NAME_PATTERN, TaskChange, TaskPage
from api.submit import body_check, checked_payload, checked_time, create_task
from shared import queries
from shared.counts import TaskCounts, count_tasks
from shared.registry import TASK_TYPE_PATTERN
from shared.task import TaskStatus, TaskView

DEFAULT_PAGE = 100
MAX_PAGE = 1000
_STATUSES = ", ".join(s.value for s in TaskStatus)


async def _not_in(state: State, task_id: UUID, needed: TaskStatus, verb: str) -> ApiError:
    """Why a guarded UPDATE that needed `needed` matched nothing, read afresh: 404 or 409."""
    return _refusal(task_id, await queries.get(state.pool, task_id), needed, verb)


def _refusal(task_id: UUID, row: Any, needed: TaskStatus, verb: str) -> ApiError:
    if row is None:
        return ApiError(404, f"no task {task_id}")
    current = TaskStatus(row["status"])
    return ApiError(
        409,
        f"task is {current.value}; only a {needed.value} task can be {verb}",
        status=current.value,
    )


TaskId = Annotated[
    UUID,
    Parameter(description="The task's id, as POST /task answered it."),
]


@get("/task/{task_id:str}", responses=errors(400, 404, 503))
async def get_task(task_id: TaskId, state: State) -> TaskView:
    """One task, with its status, attempts, payload and result."""
    row = await queries.get(state.pool, task_id)
    if row is None:
        raise ApiError(404, f"no task {task_id}")
    return TaskView.from_record(row)


# The query parameters are taken as text and checked by the handler (its messages name them);
# the schema says what they must be.
_SCHEDULE_NAME = re.compile(SCHEDULE_NAME_PATTERN)


def _documented(**schema: Any) -> Any:
    return QueryParameter(schema_extra={"one_of": None, "type": "string", **schema})


@get("/task", responses=errors(400, 503))
async def list_tasks(
    state: State,
    status: Annotated[str | None, _documented(enum=[s.value for s in TaskStatus])] = None,
    task_type: Annotated[
        str | None,
        QueryParameter(
            name="type",
            schema_extra={"one_of": None, "type": "string", "pattern": TASK_TYPE_PATTERN.pattern},
        ),
    ] = None,
    limit: Annotated[int, QueryParameter(schema_extra={"minimum": 1, "maximum": MAX_PAGE})] = (
        DEFAULT_PAGE
    ),
    cursor: Annotated[
        str | None,
        QueryParameter(
            description="next_cursor of the previous page.",
            schema_extra={"one_of": None, "type": "string", "format": "uuid"},
        ),
    ] = None,
    schedule: Annotated[
        str | None,
        QueryParameter(
            description="Only the tasks this schedule made (also after it was deleted).",
            schema_extra={"one_of": None, "type": "string", "pattern": SCHEDULE_NAME_PATTERN},
        ),
    ] = None,
) -> TaskPage:
    """Tasks in creation order, a keyset page at a time; pass next_cursor back as cursor. The
    filters combine."""
    status_filter: TaskStatus | None = None
    if status is not None:
        try:
            status_filter = TaskStatus(status)
        except ValueError:
            raise ApiError(
                400, f"status: {status!r} is not one of {_STATUSES}", field="status"
            ) from None
    if task_type is not None and not TASK_TYPE_PATTERN.fullmatch(task_type):
        raise ApiError(400, f"type: {task_type!r} is not a task type name", field="type")
    if schedule is not None and not _SCHEDULE_NAME.fullmatch(schedule):
        raise ApiError(400, f"schedule: {schedule!r} is not a schedule name", field="schedule")
    if not 1 <= limit <= MAX_PAGE:
        raise ApiError(400, f"limit: must be between 1 and {MAX_PAGE}, got {limit}", field="limit")
    after = None
    if cursor is not None:
        try:
            after = UUID(cursor)
        except ValueError:
            raise ApiError(
                400, f"cursor: {cursor!r} is not a cursor from a previous page", field="cursor"
            ) from None
    rows = await queries.list_page(
        state.pool,
        status=status_filter,
        task_type=task_type,
        after=after,
        limit=limit,
        schedule=schedule,
    )
    tasks = [TaskView.from_record(row) for row in rows]
    next_cursor = str(tasks[-1].task_id) if len(tasks) == limit else None
    return TaskPage(tasks=tasks, next_cursor=next_cursor)


@get("/stats", responses=errors(503))
async def stats(state: State) -> TaskCounts:
    """How many tasks there are of each status, by type: exact up to exact_up_to per status,
    beyond it an estimate from the table's statistics (`exact: false`)."""
    return await count_tasks(state.pool)


@delete("/task/{task_id:str}", status_code=200, responses=errors(400, 404, 409, 503))
async def delete_task(task_id: TaskId, state: State) -> TaskView:
    """Delete a submitted task: a 200 guarantees it never starts. Any other state answers 409."""
    tid = task_id
    row = await queries.delete_submitted(state.pool, tid)
    if row is not None:
        return TaskView.from_record(row)
    # The guarded UPDATE matched nothing; read the state it met (a fresh snapshot) to say why.
    row = await queries.get(state.pool, tid)
    if row is not None and row["status"] == TaskStatus.DELETED:
        return TaskView.from_record(row)
    raise _refusal(tid, row, TaskStatus.SUBMITTED, "deleted")


check_change_body = body_check(msgspec.json.Decoder(TaskChange), "a JSON object")


@patch(
    "/task/{task_id:str}",
    before_request=check_change_body,
    request_max_body_size=2 * MAX_PAYLOAD_BYTES,
    responses=errors(400, 404, 409, 413, 415, 503),
)
async def change_task(task_id: TaskId, data: JSONBody[TaskChange], state: State) -> TaskView:
    """Reschedule a submitted task (a new execution_time) or change its payload: a 200 means the
    old values will never be used. Any other state answers 409."""
    tid = task_id
    if data.execution_time is msgspec.UNSET and data.payload is msgspec.UNSET:
        raise ApiError(
            400, "the request body names nothing to change; send execution_time, payload or both"
        )
    when = None if data.execution_time is msgspec.UNSET else checked_time(data.execution_time)
    payload = None if data.payload is msgspec.UNSET else checked_payload(data.payload)
    sent = asyncio.get_running_loop().time()
    row = await queries.reschedule_submitted(state.pool, tid, when, payload)
    if row is not None:
        if when is not None:
            notifier: DueNotifier = state.notifier
            notifier.due_in(row["due_in"], since=sent)
        return TaskView.from_record(row)
    raise await _not_in(state, tid, TaskStatus.SUBMITTED, "changed")


@post("/task/{task_id:str}/retry", status_code=HTTP_200_OK, responses=errors(400, 404, 409, 503))
async def retry_task(task_id: TaskId, state: State) -> TaskView:
    """Redrive a failed task: submitted again, due now, for one more attempt. Else 409."""
    tid = task_id
    row = await queries.retry_failed(state.pool, tid)
    if row is not None:
        notifier: DueNotifier = state.notifier
        notifier.due_in(0.0)
        return TaskView.from_record(row)
    raise await _not_in(state, tid, TaskStatus.FAILED, "retried")


def _answer_options(allow: str) -> Any:
    def options() -> Response[None]:
        return Response(None, status_code=HTTP_204_NO_CONTENT, headers={"Allow": allow})

    return options


def _options(handlers: list[HTTPRouteHandler]) -> list[HTTPRouteHandler]:
    """An OPTIONS handler for each path that several handlers serve: Litestar 2.x's own lists
    only the first one's methods (litestar-org/litestar#4169, fixed in 3.x). They must be
    registered before the handlers they describe."""
    methods: dict[str, set[str]] = {}
    handlers_of: dict[str, int] = {}
    for handler in handlers:
        for path in handler.paths:
            methods.setdefault(path, set()).update(handler.http_methods)
            handlers_of[path] = handlers_of.get(path, 0) + 1
    return [
        HTTPRouteHandler(
            path,
            http_method=[HttpMethod.OPTIONS],
            include_in_schema=False,
            sync_to_thread=False,
            name=f"options {path}",
        )(_answer_options(", ".join(sorted(methods[path] | {"OPTIONS"}))))
        for path in methods
        if handlers_of[path] > 1
    ]


_HANDLERS: list[HTTPRouteHandler] = [
    health,
    ready,
    create_task,
    create_tasks,
    get_task,
    list_tasks,
    change_task,
    delete_task,
    retry_task,
    stats,
    *SCHEDULE_HANDLERS,
]
ROUTES = [*_options(_HANDLERS), *_HANDLERS]
