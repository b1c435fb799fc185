"""The routes: thin handlers over shared.queries (POST /task is in api.submit); errors go
through api.errors."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any
from uuid import UUID

import asyncpg
import msgspec
from litestar import delete, get, patch, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK

from api.bulk import create_tasks
from api.errors import ApiError, DatabaseUnavailable
from api.notifier import DueNotifier
from api.schemas import TaskChange, TaskPage
from api.submit import body_check, checked_payload, checked_time, create_task
from shared import queries
from shared.counts import TaskCounts, count_tasks
from shared.registry import TASK_TYPE_PATTERN
from shared.task import TaskStatus, TaskView

DEFAULT_PAGE = 100
MAX_PAGE = 1000
_STATUSES = ", ".join(s.value for s in TaskStatus)
# GET /ready waits this long for the database before answering 503.
READY_TIMEOUT_SECONDS = 2.0
# An id no task has (UUIDv7 ids are never nil): looking it up is the readiness probe.
_NO_TASK = UUID(int=0)


def _task_id(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise ApiError(400, f"task_id: {raw!r} is not a UUID", field="task_id") from None


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


@get("/health", sync_to_thread=False, include_in_schema=False)
def health() -> dict[str, str]:
    """The process is up; says nothing about the database (GET /ready does)."""
    return {"status": "ok"}


@get("/ready", include_in_schema=False)
async def ready(state: State) -> dict[str, str]:
    """200 when the database answers a query through the pool within 2 s, else 503."""
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            # A primary-key lookup rather than SELECT 1 (SQL lives in shared/sql): it also
            # proves the schema is there.
            await queries.get(state.pool, _NO_TASK)
    except TimeoutError:
        raise DatabaseUnavailable(f"no answer within {READY_TIMEOUT_SECONDS:g} s") from None
    except asyncpg.PostgresError as exc:
        # The server answers but cannot serve (no such database, schema not migrated, ...).
        raise DatabaseUnavailable(str(exc)) from exc
    return {"status": "ready"}


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


@get("/stats")
async def stats(state: State) -> TaskCounts:
    """How many tasks there are of each status, by type: exact up to exact_up_to per status,
    beyond it an estimate from the table's statistics (`exact: false`)."""
    return await count_tasks(state.pool)


@delete("/task/{task_id:str}", status_code=200)
async def delete_task(task_id: FromPath[str], state: State) -> TaskView:
    """Delete a submitted task: a 200 guarantees it never starts. Any other state answers 409."""
    tid = _task_id(task_id)
    row = await queries.delete_submitted(state.pool, tid)
    if row is not None:
        return TaskView.from_record(row)
    # The guarded UPDATE matched nothing; read the state it met (a fresh snapshot) to say why.
    row = await queries.get(state.pool, tid)
    if row is not None and row["status"] == TaskStatus.DELETED:
        return TaskView.from_record(row)
    raise _refusal(tid, row, TaskStatus.SUBMITTED, "deleted")


check_change_body = body_check(msgspec.json.Decoder(TaskChange), "a JSON object")


@patch("/task/{task_id:str}", before_request=check_change_body)
async def change_task(task_id: FromPath[str], data: JSONBody[TaskChange], state: State) -> TaskView:
    """Reschedule a submitted task (a new execution_time) or change its payload: a 200 means the
    old values will never be used. Any other state answers 409."""
    tid = _task_id(task_id)
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


@post("/task/{task_id:str}/retry", status_code=HTTP_200_OK)
async def retry_task(task_id: FromPath[str], state: State) -> TaskView:
    """Redrive a failed task: submitted again, due now, for one more attempt. Else 409."""
    tid = _task_id(task_id)
    row = await queries.retry_failed(state.pool, tid)
    if row is not None:
        notifier: DueNotifier = state.notifier
        notifier.due_in(0.0)
        return TaskView.from_record(row)
    raise await _not_in(state, tid, TaskStatus.FAILED, "retried")


ROUTES = [
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
]
