"""Request and response bodies of the HTTP API (separate from the row types in shared.task)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec

from shared.policy import Attempts, Backoff, Seconds, Timeout
from shared.schedule import MAX_DURATION_SECONDS
from shared.task import TaskView

MAX_PAYLOAD_BYTES = 64 * 1024
MAX_KEY_LENGTH = 200
MAX_BULK = 1000  # tasks per POST /tasks
MAX_BULK_BODY_BYTES = 16 * 1024 * 1024

# The dates an execution_time may have, as written (see api.submit.checked_time).
FIRST_DAY = date(1, 1, 2)
LAST_DAY = date(9999, 12, 30)
AwareDatetime = Annotated[
    datetime,
    msgspec.Meta(
        tz=True,
        description=f"RFC 3339 with an offset, e.g. 2026-11-23T12:00:00Z; the date {FIRST_DAY} "
        f"to {LAST_DAY}",
        # For the schema (Litestar reads "extra" as schema attributes): not the first or last day.
        extra_json_schema={
            "extra": {"pattern": f"^(?!{FIRST_DAY.year:04d}-01-01|{LAST_DAY.year}-12-31)"}
        },
    ),
]
TaskTypeName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.:-]{1,100}$")]
_INHERITED = " Omitted: the task type's (@task), else the server's (DUETIME_*)."


def _about(text: str, **schema: object) -> msgspec.Meta:
    """A policy field's description; `schema`: what Litestar must be told of its bounds (it
    drops a `ge=0` or `gt=0` on an optional field, and reads "extra" as schema attributes)."""
    return msgspec.Meta(description=text + _INHERITED, extra_json_schema={"extra": schema})


class PolicyFields(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The failure policy fields a request may name (shared.policy); each omitted is inherited."""

    max_attempts: Annotated[Attempts, _about("Attempts before the task fails.")] | None = None
    backoff: Annotated[Backoff, _about("How the wait before a retry grows.")] | None = None
    backoff_base_seconds: (
        Annotated[Seconds, _about("The backoff's unit, 0 to 1 year.", minimum=0)] | None
    ) = None
    backoff_cap_seconds: (
        Annotated[Seconds, _about("The longest backoff: base to 1 year.", minimum=0)] | None
    ) = None
    retry_on_loss: (
        Annotated[bool, _about("Whether an attempt lost with its worker is retried.")] | None
    ) = None
    timeout_seconds: (
        Annotated[Timeout, _about("How long one attempt may run.", exclusive_minimum=0)] | None
    ) = None


class TaskItem(PolicyFields, kw_only=True):
    """A task of POST /tasks: when to run which type of task (execution_time, or a delay from
    now; neither: due now), with an optional JSON object payload and an optional failure policy
    (a field omitted is inherited). A batch is keyed by the Idempotency-Key header as a whole, so
    an item takes no key."""

    task_type: TaskTypeName
    execution_time: AwareDatetime | None = None
    delay: (
        Annotated[
            str,
            msgspec.Meta(
                max_length=100,
                description="Instead of execution_time: due this long after the database's "
                "now. An ISO 8601 duration (PT10M), up to 100 years.",
            ),
        ]
        | Annotated[
            float, msgspec.Meta(ge=0, le=MAX_DURATION_SECONDS, description="Seconds, from 0.")
        ]
        | None
    ) = None
    payload: dict[str, Any] | None = None


class TaskCreate(TaskItem, kw_only=True):
    """POST /task: a task as in a batch, and an optional idempotency key."""

    idempotency_key: (
        Annotated[
            str,
            msgspec.Meta(
                min_length=1,
                max_length=MAX_KEY_LENGTH,
                description="At most one task per key: a repeat answers 200 with the first "
                "task's id. The same as the Idempotency-Key header.",
            ),
        ]
        | None
    ) = None


class TaskChange(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """PATCH /task/{id}: a new execution_time, a new payload, or both, for a task that is still
    submitted. A field left out is unchanged."""

    execution_time: AwareDatetime | msgspec.UnsetType = msgspec.UNSET
    payload: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET


class TaskCreated(msgspec.Struct):
    task_id: UUID


class TasksCreated(msgspec.Struct):
    task_ids: list[UUID]  # in the order of the request


class TaskPage(msgspec.Struct):
    tasks: list[TaskView]
    next_cursor: str | None


# The error bodies as the schema documents them (ErrorBody is what is sent).
class FieldError(msgspec.Struct, forbid_unknown_fields=True):
    """What was wrong with the request; `field` names the part at fault, when one is."""

    detail: str
    field: str | msgspec.UnsetType = msgspec.UNSET


class StateError(msgspec.Struct, forbid_unknown_fields=True):
    """The task's state forbids this; `status` names it."""

    detail: str
    status: str


class ErrorBody(msgspec.Struct, omit_defaults=True):
    detail: str
    field: str | None = None
    status: str | None = None


# --- schedules ---------------------------------------------------------------------------

SCHEDULE_NAME_PATTERN = r"^[A-Za-z0-9_.:-]{1,200}$"
ScheduleName = Annotated[str, msgspec.Meta(pattern=SCHEDULE_NAME_PATTERN)]


CronExpression = Annotated[
    str,
    msgspec.Meta(
        max_length=200,
        description="6 fields, seconds first ('0 0 9 * * 1-5'), or 5, minute first.",
    ),
]
Interval = (
    Annotated[str, msgspec.Meta(max_length=100, description="An ISO 8601 duration: PT30S.")]
    | Annotated[
        float, msgspec.Meta(ge=1, le=MAX_DURATION_SECONDS, description="Seconds, 1 to 100 years.")
    ]
)
ZoneName = Annotated[str, msgspec.Meta(max_length=100, description="An IANA name.")]
Overlap = Literal["allow", "skip"]
CatchUp = Literal["latest", "all", "none"]
CatchUpLimit = Annotated[int, msgspec.Meta(ge=1, le=1000)]


class ScheduleCreate(PolicyFields, kw_only=True):
    """POST /schedules: a task to make at every occurrence of a cron expression or an interval."""

    name: Annotated[ScheduleName, msgspec.Meta(description="Unique; 1-200 of A-Z a-z 0-9 _.:-")]
    task_type: TaskTypeName
    payload: dict[str, Any] | None = None
    cron: CronExpression | None = None
    interval: Interval | None = None
    timezone: ZoneName = "UTC"
    start_at: AwareDatetime | None = None
    end_at: AwareDatetime | None = None
    enabled: bool = True
    overlap: Overlap = "allow"
    catch_up: CatchUp = "latest"
    catch_up_limit: CatchUpLimit = 100


Unset = msgspec.UnsetType


class ScheduleChange(PolicyFields, kw_only=True):
    """PATCH /schedules/{name}: the fields to change, each as in POST /schedules; a field left
    out is unchanged (a policy field too when null). A cron replaces an interval and the other
    way round; start_at and end_at are cleared with null. The name cannot change."""

    task_type: TaskTypeName | Unset = msgspec.UNSET
    payload: dict[str, Any] | Unset = msgspec.UNSET
    cron: CronExpression | Unset = msgspec.UNSET
    interval: Interval | Unset = msgspec.UNSET
    timezone: ZoneName | Unset = msgspec.UNSET
    start_at: AwareDatetime | Unset | None = msgspec.UNSET
    end_at: AwareDatetime | Unset | None = msgspec.UNSET
    enabled: bool | Unset = msgspec.UNSET
    overlap: Overlap | Unset = msgspec.UNSET
    catch_up: CatchUp | Unset = msgspec.UNSET
    catch_up_limit: CatchUpLimit | Unset = msgspec.UNSET


class ScheduleView(msgspec.Struct, kw_only=True):
    """A schedule, and its next occurrences (UTC) from its next one not yet made a task."""

    name: str
    task_type: str
    payload: dict[str, Any]
    cron: str | None
    interval_seconds: float | None
    timezone: str
    start_at: datetime | None
    end_at: datetime | None
    enabled: bool
    overlap: str
    catch_up: str
    catch_up_limit: int
    max_attempts: int
    backoff: str
    backoff_base_seconds: float
    backoff_cap_seconds: float
    retry_on_loss: bool
    timeout_seconds: float
    created_at: datetime
    next_runs: list[datetime]


class SchedulePage(msgspec.Struct):
    schedules: list[ScheduleView]
    next_cursor: str | None


class Occurrences(msgspec.Struct):
    name: str
    runs: list[datetime]


class ScheduleDeleted(msgspec.Struct):
    name: str
    occurrences_deleted: int  # submitted occurrences deleted with it: none of them starts
