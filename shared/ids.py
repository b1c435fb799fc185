"""Task ids are UUIDv7: time-ordered, so pages follow creation order and inserts stay local."""

from uuid import UUID

import uuid_utils
from asyncpg.pgproto.pgproto import UUID as _WireUUID


def new_task_id() -> UUID:
    """A UUIDv7 as asyncpg's own uuid.UUID subclass: made from bytes in C and sent as they are
    (a plain UUID costs 2.7 µs to make and a trip through .bytes to send; this, 0.8 µs)."""
    wire: UUID = _WireUUID(uuid_utils.uuid7().bytes)
    return wire
