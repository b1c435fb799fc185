"""POST /task: the strict body check, the failure policy a task gets, and idempotent submission."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Request, Response, post
from litestar.datastructures import State
from litestar.exceptions import ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import HeaderParameter, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from litestar.utils.scope.state import ScopeState

from api.errors import ApiError
from api.inserter import Inserter
from api.notifier import DueNotifier
from api.openapi import errors
from api.schemas import (
    FIRST_DAY,
    LAST_DAY,
    MAX_KEY_LENGTH,
    MAX_PAYLOAD_BYTES,
    TaskCreate,
    TaskCreated,
    TaskItem,
)
from shared import queries
from shared.ids import new_task_id
from shared.policy import Backoff, PolicyError, TaskPolicy, asked_of, names_any, resolve
from shared.schedule import MAX_DURATION_SECONDS, ScheduleError, parse_duration
from shared.task import NewTask, holds_json_nul

_encoder = msgspec.json.Encoder()
# Litestar converts a body leniently (a number or a numeric string becomes a Unix-time datetime),
# so POST /task first decodes it strictly: execution_time must be an RFC 3339 string.
_strict_task = msgspec.json.Decoder(TaskCreate)
_BACKOFFS = ", ".join(b.value for b in Backoff)
# A key whose task vanished between our INSERT and our SELECT (pruned) is tried again, a little.
KEY_TRIES = 3


def body_check(decoder: msgspec.json.Decoder[Any], shape: str) -> Any:
    """A before_request hook: the content type first, then a strict decode with `decoder` (the
    body `shape` names what it must be), so that nothing lenient reaches the handler."""

    async def check(request: Request[Any, Any, Any]) -> None:
        media_type, _ = request.content_type
        if media_type != "application/json":
            raise ApiError(
                415, f"Content-Type must be application/json, got {media_type or 'none'!r}"
            )
        body = await request.body()
        if not body:
            raise ApiError(400, f"the request body is empty; expected {shape}")
        try:
            decoded = decoder.decode(body)
        except msgspec.ValidationError as exc:
            message, _, at = str(exc).partition(" - at ")
            key = at.strip("`").removeprefix("$").removeprefix(".") or None
            if key is None and message.startswith("Expected"):
                message = f"the request body must be {shape}: {message}"
            if key is not None and key.endswith("backoff") and "Invalid enum" in message:
                message = f"{message}; must be one of {_BACKOFFS}"
            raise ValidationException(extra=[{"message": message, "key": key}]) from None
        except msgspec.DecodeError as exc:
            raise ApiError(400, f"the request body is not valid JSON: {exc}") from None
        except UnicodeDecodeError as exc:  # msgspec checks a string's UTF-8 as it decodes it
            raise ApiError(400, f"the request body is not valid UTF-8 ({exc.reason})") from None
        except RecursionError:
            raise ApiError(400, "the request body is nested too deeply") from None
        # The handler's `data` is this value: Litestar's request.json() returns what its scope
        # state holds, and converting structs already of the handler's type passes them through.
        # Otherwise Litestar would decode the body twice more (untyped, then a lenient convert):
        # 60% more decoding time for a bulk request.
        ScopeState.from_scope(request.scope).json = decoded

    return check


check_task_body = body_check(_strict_task, "a JSON object")


def new_task(data: TaskCreate, state: State, key: str | None) -> NewTask:
    """The row a request asks for, its policy resolved; ApiError naming the field if anything in
    it is refused."""
    return _new_task(data, state.task_types, state.policies, key)


def new_tasks(items: list[TaskItem], state: State) -> list[NewTask]:
    """new_task for each item of a bulk request; the first refused item's field is named as
    `[i].field`."""
    known: frozenset[str] = state.task_types
    policies: dict[str, TaskPolicy] = state.policies
    tasks = []
    for i, item in enumerate(items):
        try:
            tasks.append(_new_task(item, known, policies, None))
        except ApiError as exc:
            if exc.body.field is not None:
                exc.body.detail = f"[{i}].{exc.body.detail}"
                exc.body.field = f"[{i}].{exc.body.field}"
            raise
    return tasks


def _new_task(
    data: TaskItem, known: frozenset[str], policies: dict[str, TaskPolicy], key: str | None
) -> NewTask:
    if data.task_type not in known:
        raise ApiError(
            422,
            f"task_type: unknown type {data.task_type!r}; known types: {', '.join(sorted(known))}",
            field="task_type",
        )
    payload = checked_payload(data.payload or {})
    when, delay = _due(data)
    policy = policies[data.task_type]
    if names_any(data):
        policy = resolve_policy(data, policy)
    # else the type's policy as it is: resolved and checked when the app was made
    return NewTask(
        id=new_task_id(),
        task_type=data.task_type,
        execution_time=when,
        payload=payload,
        policy=policy,
        idempotency_key=key,
        delay=delay,
    )


def _due(data: TaskItem) -> tuple[datetime | None, float]:
    """When the task is due: (execution_time, 0) if it names one, else (None, delay seconds)
    for the database to add to its own now; neither: due now."""
    if data.execution_time is not None:
        if data.delay is not None:
            raise ApiError(400, "delay: give execution_time or delay, not both", field="delay")
        return checked_time(data.execution_time), 0.0
    if data.delay is None:
        return None, 0.0
    try:
        return None, parse_duration(data.delay, "delay", 0.0, MAX_DURATION_SECONDS)
    except ScheduleError as exc:
        raise ApiError(400, str(exc), field="delay") from None


def checked_payload(payload: dict[str, Any]) -> str:
    """`payload` as JSON text if it is within the size limit and jsonb can store it; else
    ApiError."""
    encoded = _encoder.encode(payload)
    if len(encoded) > MAX_PAYLOAD_BYTES:
        raise ApiError(
            413,
            f"payload: {len(encoded)} bytes is over the limit of {MAX_PAYLOAD_BYTES}",
            field="payload",
        )
    text = encoded.decode()
    if holds_json_nul(text):
        raise ApiError(400, "payload: strings must not contain \\u0000", field="payload")
    return text


def checked_time(when: datetime, field: str = "execution_time") -> datetime:
    """`when` if the database can store it and give it back as it was, else ApiError.

    Python holds years 1 to 9999, but an offset can carry the first or last day out of UTC's
    range, and asyncpg stores the very first and last microsecond as -infinity and infinity (and
    reads those back without an offset): so the first and last day are refused, as written.
    """
    if not FIRST_DAY <= when.date() <= LAST_DAY:
        raise ApiError(
            400,
            f"{field}: {when.isoformat()} is out of range; "
            f"the date must be {FIRST_DAY} to {LAST_DAY}",
            field=field,
        )
    return when


def resolve_policy(data: TaskItem, beneath: TaskPolicy) -> TaskPolicy:
    """The request's policy over `beneath` (its type's over the settings'), checked."""
    try:
        return resolve(asked_of(data), beneath)
    except PolicyError as exc:
        raise ApiError(400, str(exc), field=exc.field) from None


def checked_key(header: str | None) -> str | None:
    """The Idempotency-Key header, if it is one we can store; else ApiError."""
    if header is None:
        return None
    if not 1 <= len(header) <= MAX_KEY_LENGTH:
        raise ApiError(
            400,
            f"idempotency_key: the Idempotency-Key header must be 1 to {MAX_KEY_LENGTH} "
            f"characters, got {len(header)}",
            field="idempotency_key",
        )
    return _without_nul(header)


def _idempotency_key(data: TaskCreate, header: str | None) -> str | None:
    key = checked_key(header)
    if key is None:
        return None if data.idempotency_key is None else _without_nul(data.idempotency_key)
    if data.idempotency_key is not None and data.idempotency_key != key:
        raise ApiError(
            400,
            "idempotency_key: differs from the Idempotency-Key header; send one, or both equal",
            field="idempotency_key",
        )
    return key


def _without_nul(key: str) -> str:
    if "\x00" in key:
        raise ApiError(400, "idempotency_key: must not contain \\u0000", field="idempotency_key")
    return key


KeyHeader = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        required=False,
        # Documented, checked by checked_key (its message names the field).
        schema_extra={
            "one_of": None,
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_KEY_LENGTH,
        },
        description=f"1 to {MAX_KEY_LENGTH} characters: a request repeated with the same key "
        "answers 200 with what the first one created, and writes nothing.",
    ),
]


async def _insert_keyed(state: State, task: NewTask) -> tuple[UUID, bool]:
    """The task under its key: (its id, True) if this request created it, else the holder's id."""
    assert task.idempotency_key is not None
    notifier: DueNotifier = state.notifier
    for _ in range(KEY_TRIES):
        # Not group-committed: a conflict must answer this request alone, never fail a batch.
        sent = asyncio.get_running_loop().time()
        due_in = await queries.insert_keyed(state.pool, task)
        if due_in is not None:
            notifier.due_in(due_in, since=sent)
            return task.id, True
        # The INSERT waited for the key's holder to commit; this SELECT is a new statement, so
        # its snapshot includes that commit.
        row = await queries.get_by_key(state.pool, task.idempotency_key)
        if row is not None:
            return row["id"], False
    raise ApiError(
        409,
        "idempotency_key: the task under this key was being removed; send the request again",
        field="idempotency_key",
    )


@post(
    "/task",
    status_code=HTTP_201_CREATED,
    request_max_body_size=2 * MAX_PAYLOAD_BYTES,
    before_request=check_task_body,
    responses={
        **errors(400, 409, 413, 415, 422, 503),
        HTTP_200_OK: ResponseSpec(
            data_container=TaskCreated,
            description="A replay: a task was already submitted under this idempotency key; "
            "its id, nothing written.",
        ),
    },
)
async def create_task(
    data: JSONBody[TaskCreate],
    state: State,
    idempotency_header: KeyHeader = None,
) -> Response[TaskCreated]:
    """Submit a task; it runs at or after execution_time (or its delay from now; neither: now),
    retried as its failure policy says."""
    task = new_task(data, state, _idempotency_key(data, idempotency_header))
    key = task.idempotency_key
    created = True
    if key is None:
        inserter: Inserter = state.inserter
        await inserter.insert(task)
        task_id = task.id
    else:
        task_id, created = await _insert_keyed(state, task)
    return Response(
        TaskCreated(task_id=task_id),
        status_code=HTTP_201_CREATED if created else HTTP_200_OK,
        headers={"Location": f"/task/{task_id}"},
    )
