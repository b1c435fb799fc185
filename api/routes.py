"""The /task routes: thin handlers over shared.queries; errors go through api.errors."""

from __future__ import annotations

import re
from datetime import UTC
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Request, Response, delete, get, post
from litestar.datastructures import State
from litestar.exceptions import ValidationException
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.status_codes import HTTP_201_CREATED

from api.errors import ApiError
from api.inserter import Inserter
from api.schemas import MAX_PAYLOAD_BYTES, TaskCreate, TaskCreated, TaskPage
from shared import queries
from shared.ids import new_task_id
from shared.registry import TASK_TYPE_PATTERN
from shared.task import NewTask, TaskStatus, TaskView

DEFAULT_PAGE = 100
MAX_PAGE = 1000
_encoder = msgspec.json.Encoder()
_STATUSES = ", ".join(s.value for s in TaskStatus)
# Litestar converts a body leniently (a number or a numeric string becomes a Unix-time datetime),
# so POST /task first decodes it strictly: execution_time must be an RFC 3339 string.
_strict_task = msgspec.json.Decoder(TaskCreate)
# Postgres's jsonb refuses \u0000; an unescaped one would fail the whole group-commit batch.
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


async def _check_task_body(request: Request[Any, Any, Any]) -> None:
    """Before Litestar parses the body: the content type first, then a strict decode."""
    media_type, _ = request.content_type
    if media_type != "application/json":
        raise ApiError(415, f"Content-Type must be application/json, got {media_type or 'none'!r}")
    body = await request.body()
    if not body:
        raise ApiError(400, "the request body is empty; expected a JSON object")
    try:
        _strict_task.decode(body)
    except msgspec.ValidationError as exc:
        message, _, at = str(exc).partition(" - at ")
        key = at.strip("`").removeprefix("$").removeprefix(".") or None
        if key is None and message.startswith("Expected"):
            message = f"the request body must be a JSON object: {message}"
        raise ValidationException(extra=[{"message": message, "key": key}]) from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, f"the request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise ApiError(400, "the request body is nested too deeply") from None


def _task_id(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise ApiError(400, f"task_id: {raw!r} is not a UUID", field="task_id") from None


@get("/health", sync_to_thread=False, include_in_schema=False)
def health() -> dict[str, str]:
    return {"status": "ok"}


@post(
    "/task",
    status_code=HTTP_201_CREATED,
    request_max_body_size=2 * MAX_PAYLOAD_BYTES,
    before_request=_check_task_body,
)
async def create_task(data: JSONBody[TaskCreate], state: State) -> Response[TaskCreated]:
    """Submit a task; it runs once, at or after execution_time."""
    known: frozenset[str] = state.task_types
    if data.task_type not in known:
        raise ApiError(
            422,
            f"task_type: unknown type {data.task_type!r}; known types: {', '.join(sorted(known))}",
            field="task_type",
        )
    payload = _encoder.encode(data.payload or {})
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ApiError(
            413,
            f"payload: {len(payload)} bytes is over the limit of {MAX_PAYLOAD_BYTES}",
            field="payload",
        )
    if _JSON_NUL.search(payload):
        raise ApiError(400, "payload: strings must not contain \\u0000", field="payload")
    try:
        data.execution_time.astimezone(UTC)
    except OverflowError:
        raise ApiError(
            400, "execution_time: out of range (years 1 to 9999 in UTC)", field="execution_time"
        ) from None
    task_id = new_task_id()
    inserter: Inserter = state.inserter
    policy = state.settings.policy()
    await inserter.insert(
        NewTask(
            id=task_id,
            task_type=data.task_type,
            execution_time=data.execution_time,
            payload=payload.decode(),
            **{name: getattr(policy, name) for name in policy.__struct_fields__},
        )
    )
    return Response(
        TaskCreated(task_id=task_id),
        status_code=HTTP_201_CREATED,
        headers={"Location": f"/task/{task_id}"},
    )


@get("/task/{task_id:str}")
async def get_task(task_id: FromPath[str], state: State) -> TaskView:
    """One task, with its status, attempts, payload and result."""
    row = await queries.get(state.pool, _task_id(task_id))
    if row is None:
        raise ApiError(404, f"no task {task_id}")
    return TaskView.from_record(row)


@get("/task")
async def list_tasks(
    state: State,
    status: FromQuery[str | None] = None,
    task_type: Annotated[str | None, QueryParameter(name="type")] = None,
    limit: FromQuery[int] = DEFAULT_PAGE,
    cursor: FromQuery[str | None] = None,
) -> TaskPage:
    """Tasks in creation order, a keyset page at a time; pass next_cursor back as cursor."""
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
        state.pool, status=status_filter, task_type=task_type, after=after, limit=limit
    )
    tasks = [TaskView.from_record(row) for row in rows]
    next_cursor = str(tasks[-1].task_id) if len(tasks) == limit else None
    return TaskPage(tasks=tasks, next_cursor=next_cursor)


@delete("/task/{task_id:str}", status_code=200)
async def delete_task(task_id: FromPath[str], state: State) -> TaskView:
    """Delete a submitted task: a 200 guarantees it never starts. Any other state answers 409."""
    tid = _task_id(task_id)
    row = await queries.delete_submitted(state.pool, tid)
    if row is not None:
        return TaskView.from_record(row)
    # The guarded UPDATE matched nothing; read the state it met (a fresh snapshot) to say why.
    row = await queries.get(state.pool, tid)
    if row is None:
        raise ApiError(404, f"no task {task_id}")
    current = TaskStatus(row["status"])
    if current is TaskStatus.DELETED:
        return TaskView.from_record(row)
    raise ApiError(
        409, f"task is {current.value}; only a submitted task can be deleted", status=current.value
    )


ROUTES = [health, create_task, get_task, list_tasks, delete_task]
