"""POST /tasks: up to MAX_BULK tasks in one request, written by one INSERT, all or nothing."""

from __future__ import annotations

import msgspec
from litestar import post
from litestar.datastructures import State
from litestar.params import JSONBody
from litestar.status_codes import HTTP_201_CREATED

from api.errors import ApiError
from api.inserter import Inserter
from api.schemas import MAX_BULK, MAX_BULK_BODY_BYTES, TaskCreate, TasksCreated
from api.submit import body_check, new_tasks

_ARRAY = f"a JSON array of 1 to {MAX_BULK} tasks"
check_bulk_body = body_check(msgspec.json.Decoder(list[TaskCreate]), _ARRAY)


@post(
    "/tasks",
    status_code=HTTP_201_CREATED,
    request_max_body_size=MAX_BULK_BODY_BYTES,
    before_request=check_bulk_body,
)
async def create_tasks(data: JSONBody[list[TaskCreate]], state: State) -> TasksCreated:
    """Submit many tasks at once: all are written, or none (the first refused one is named as
    `[i].field`). The ids come back in the order of the request."""
    if not 1 <= len(data) <= MAX_BULK:
        raise ApiError(400, f"the request body must be {_ARRAY}, got {len(data)}")
    tasks = new_tasks(data, state)
    inserter: Inserter = state.inserter
    await inserter.insert_all(tasks)
    return TasksCreated(task_ids=[task.id for task in tasks])
