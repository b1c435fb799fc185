"""The task: its states, the row the API returns, and the row a worker claims."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec


class TaskStatus(enum.StrEnum):
    """The states of a task; the only transitions are these arrows, each one guarded UPDATE.

    submitted ──claim──────────────> started_executing
    submitted ──DELETE─────────────> deleted
    started_executing ──ok─────────> done
    started_executing ──error──────> failed
    started_executing ──handed back> submitted   (claimed, never started: attempt not counted)

    done, failed and deleted are terminal. Postgres mirrors this enum as type `task_status`.
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


class TaskView(msgspec.Struct, kw_only=True):
    """A task as the API shows it. payload and result are raw JSON, passed through undecoded."""

    task_id: UUID
    task_type: str
    status: TaskStatus
    execution_time: datetime
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    last_error: str | None
    payload: msgspec.Raw
    result: msgspec.Raw | None

    @classmethod
    def from_record(cls, row: Any) -> TaskView:
        result = row["result"]
        return cls(
            task_id=row["id"],
            task_type=row["task_type"],
            status=TaskStatus(row["status"]),
            execution_time=row["execution_time"],
            created_at=row["created_at"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            attempts=row["attempts"],
            last_error=row["last_error"],
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
