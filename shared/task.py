"""The task: its states, the row the API returns, and the row a worker claims."""

from __future__ import annotations

import enum
import re
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec

from shared.policy import TaskPolicy

# An escaped NUL (\u0000, not \\u0000) in JSON text: Postgres's jsonb refuses it, and one such
# value would fail the whole multi-row statement it travels in.
_JSON_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def holds_json_nul(json_text: str) -> bool:
    return "\\u0000" in json_text and _JSON_NUL.search(json_text) is not None


class TaskStatus(enum.StrEnum):
    """The states of a task; the only transitions are these arrows, each one guarded UPDATE.

    submitted ──claim──────────────────────────> started_executing
    submitted ──DELETE─────────────────────────> deleted
    started_executing ──ok─────────────────────> done
    started_executing ──error, attempts left───> submitted   (due after the backoff)
    started_executing ──error, none left, Fail─> failed
    started_executing ──lease expired──────────> failed (reason lost), or submitted if the task
                                                 allows retry on loss and has attempts left
    started_executing ──handed back────────────> submitted   (claimed, never started: attempt
                                                              not counted)
    failed ──redrive (POST /task/{id}/retry)───> submitted

    done and deleted are terminal; failed is terminal unless redriven. Postgres mirrors this enum
    as type `task_status`.
    """

    SUBMITTED = "submitted"
    STARTED_EXECUTING = "started_executing"
    DONE = "done"
    FAILED = "failed"
    DELETED = "deleted"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset({TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.DELETED})


class NewTask(msgspec.Struct, frozen=True, kw_only=True):
    """A task about to be inserted, its policy fully resolved."""

    id: UUID
    task_type: str
    execution_time: datetime | None  # None: due `delay` seconds after the database's now
    payload: str  # JSON text of an object
    policy: TaskPolicy  # every field set (shared.policy.resolve)
    idempotency_key: str | None = None
    delay: float = 0.0


class TaskView(msgspec.Struct, kw_only=True):
    """A task as the API shows it. payload and result are raw JSON, passed through undecoded.

    execution_time is when the next attempt is due (retries, requeues and redrives move it);
    scheduled_time is the time the task was submitted, or last rescheduled, for.
    """

    task_id: UUID
    task_type: str
    status: TaskStatus
    execution_time: datetime
    scheduled_time: datetime
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    max_attempts: int
    last_error: str | None
    error_reason: str | None
    schedule: str | None  # the schedule whose occurrence this task is (None: submitted alone)
    # The schema of raw JSON, as Litestar reads it from msgspec.Meta: its "extra" are set on the
    # field's schema (one_of=None: any JSON value, not oneOf [{}, null], which null matches twice).
    payload: Annotated[
        msgspec.Raw,
        msgspec.Meta(
            description="The task's payload: a JSON object.",
            extra_json_schema={"extra": {"type": "object"}},
        ),
    ]
    result: Annotated[
        msgspec.Raw | None,
        msgspec.Meta(
            description="What the handler returned, any JSON value; null until it is done.",
            extra_json_schema={"extra": {"one_of": None}},
        ),
    ]

    @classmethod
    def from_record(cls, row: Any) -> TaskView:
        result = row["result"]
        return cls(
            task_id=row["id"],
            task_type=row["task_type"],
            status=TaskStatus(row["status"]),
            execution_time=row["execution_time"],
            scheduled_time=row["scheduled_time"] or row["execution_time"],
            created_at=row["created_at"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            attempts=row["attempts"],
            max_attempts=row["max_attempts"],
            last_error=row["last_error"],
            error_reason=row["error_reason"],
            schedule=row["schedule"],
            payload=msgspec.Raw(row["payload"].encode()),
            result=None if result is None else msgspec.Raw(result.encode()),
        )


class ClaimedTask(msgspec.Struct, kw_only=True, frozen=True):
    """What a worker gets from a claim: enough to run one attempt and to fence its completion."""

    task_id: UUID
    task_type: str
    attempt: int
    execution_time: datetime
    payload: dict[str, Any]
    timeout_seconds: float
