"""Rows for tests: a NewTask with the default policy unless told otherwise."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.ids import new_task_id
from shared.policy import TaskPolicy
from shared.settings import Settings
from shared.task import NewTask

DEFAULT_POLICY = Settings().policy()


def new_task(
    task_type: str = "noop",
    execution_time: datetime | None = None,
    payload: str = "{}",
    *,
    policy: TaskPolicy | None = None,
    **fields: Any,
) -> NewTask:
    """`execution_time` is required in spirit; tests pass the database's clock or a pinned T0."""
    assert execution_time is not None, "pass execution_time (the database's clock or a pinned T0)"
    resolved = (policy or TaskPolicy()).over(DEFAULT_POLICY)
    values: dict[str, Any] = {
        "id": new_task_id(),
        "task_type": task_type,
        "execution_time": execution_time,
        "payload": payload,
        "policy": resolved,
        **fields,
    }
    return NewTask(**values)
