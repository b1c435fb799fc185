"""Task ids are UUIDv7: time-ordered, so pages follow creation order and inserts stay local."""

from uuid import UUID

from uuid_utils.compat import uuid7


def new_task_id() -> UUID:
    return uuid7()
