"""Request and response bodies of the HTTP API (separate from the row types in shared.task)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec

from shared.task import TaskView

MAX_PAYLOAD_BYTES = 64 * 1024

AwareDatetime = Annotated[
    datetime,
    msgspec.Meta(tz=True, description="RFC 3339 with an offset, e.g. 2026-11-23T12:00:00Z"),
]
TaskTypeName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.:-]{1,100}$")]


class TaskCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """POST /task: when to run which type of task, with an optional JSON object payload."""

    task_type: TaskTypeName
    execution_time: AwareDatetime
    payload: dict[str, Any] | None = None


class TaskCreated(msgspec.Struct):
    task_id: UUID


class TaskPage(msgspec.Struct):
    tasks: list[TaskView]
    next_cursor: str | None


class ErrorBody(msgspec.Struct, omit_defaults=True):
    detail: str
    field: str | None = None
    status: str | None = None
