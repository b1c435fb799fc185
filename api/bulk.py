"""POST /tasks: up to MAX_BULK tasks in one request, written by one INSERT, all or nothing."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import msgspec
from litestar import Response, post
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Body
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from api.errors import ApiError
from api.inserter import Inserter
from api.openapi import errors
from api.schemas import MAX_BULK, MAX_BULK_BODY_BYTES, TaskItem, TasksCreated
from api.submit import KEY_TRIES, KeyHeader, body_check, checked_key, new_tasks
from shared import queries
from shared.task import NewTask

_ARRAY = f"a JSON array of 1 to {MAX_BULK} tasks"
check_bulk_body = body_check(msgspec.json.Decoder(list[TaskItem]), _ARRAY)


async def _insert_keyed(state: State, tasks: list[NewTask], key: str) -> tuple[list[UUID], bool]:
    """The batch under its key: (its ids, True) if this request wrote it, else the first's ids."""
    inserter: Inserter = state.inserter
    for _ in range(KEY_TRIES):
        if await inserter.insert_all_keyed(tasks, key):
            return [task.id for task in tasks], True
        # The INSERT waited for the key's holder to commit; this SELECT's snapshot includes it.
        ids = await queries.batch_ids_by_key(state.pool, key)
        if ids is not None:
            return ids, False
    raise ApiError(
        409,
        "idempotency_key: the batch under this key was being removed; send the request again",
        field="idempotency_key",
    )


@post(
    "/tasks",
    status_code=HTTP_201_CREATED,
    request_max_body_size=MAX_BULK_BODY_BYTES,
    before_request=check_bulk_body,
    responses={
        **errors(400, 409, 413, 415, 422, 503),
        HTTP_200_OK: ResponseSpec(
            data_container=TasksCreated,
            description="A replay: a batch was already submitted under this idempotency key; "
            "its ids, nothing written.",
        ),
    },
)
async def create_tasks(
    # The bounds documented, not enforced here: the handler's own check says them in its words.
    data: Annotated[list[TaskItem], Body(schema_extra={"minItems": 1, "maxItems": MAX_BULK})],
    state: State,
    idempotency_header: KeyHeader = None,
) -> Response[TasksCreated]:
    """Submit many tasks at once: all are written, or none (the first refused one is named as
    `[i].field`). The ids come back in the order of the request. With an Idempotency-Key, a
    repeat answers 200 with the first request's ids and writes nothing."""
    if not 1 <= len(data) <= MAX_BULK:
        raise ApiError(400, f"the request body must be {_ARRAY}, got {len(data)}")
    tasks = new_tasks(data, state)
    key = checked_key(idempotency_header)
    if key is None:
        inserter: Inserter = state.inserter
        await inserter.insert_all(tasks)
        ids, created = [task.id for task in tasks], True
    else:
        ids, created = await _insert_keyed(state, tasks, key)
    return Response(
        TasksCreated(task_ids=ids), status_code=HTTP_201_CREATED if created else HTTP_200_OK
    )
