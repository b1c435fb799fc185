"""The pseudo-random fate of each attempt of a `flaky` task, shared by the handler (in the worker
processes) and the test that checks every task ended as its draws decree. No imports beyond the
standard library: every worker process loads it."""

from __future__ import annotations

import hashlib
from uuid import UUID

FLAKY_FAILURE_RATE = 0.3


def flaky_fails(task_id: UUID, attempt: int) -> bool:
    """Whether attempt `attempt` of task `task_id` fails: a draw fixed by the pair, so a retry
    can succeed and a test can compute every task's fate."""
    digest = hashlib.sha256(f"{task_id}:{attempt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < FLAKY_FAILURE_RATE
