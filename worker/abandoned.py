"""Claims whose answer never reached this worker: handed back for as long as they could land.

A claim that fails or passes its deadline may have committed, or may still commit: its statement
can be held up on a frozen network path and reach the server after the worker gave up and closed
the connection (the kernel keeps retransmitting what was sent for up to ~15 minutes). Each claim
records its own id (`worker#n`), so the rows of an abandoned claim are told apart from those the
worker runs, and handing them back can never touch a started attempt, whenever they land.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from uuid import UUID

from shared import queries

# Beyond Linux's default TCP retransmission limit (tcp_retries2 = 15: about 15.4 minutes), after
# which nothing a worker sent on a connection can still arrive.
KEEP_SECONDS = 20 * 60.0


class AbandonedClaims:
    def __init__(
        self, keep_seconds: float = KEEP_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._keep = keep_seconds
        self._clock = clock
        self._since: dict[str, float] = {}  # claim id -> when it was abandoned
        self.handed_back = 0
        self.passes = 0  # hand-back statements run (tests wait on it)

    def add(self, claim_id: str) -> None:
        self._since.setdefault(claim_id, self._clock())

    @property
    def ids(self) -> list[str]:
        """The claims that may still land; forgets those too old to."""
        now = self._clock()
        for claim_id in [c for c, since in self._since.items() if now - since > self._keep]:
            del self._since[claim_id]
        return list(self._since)

    async def hand_back(self, db: queries.Executor) -> list[UUID]:
        """Return to submitted whatever the abandoned claims recorded so far; the ids."""
        ids = self.ids
        if not ids:
            return []
        handed = await queries.hand_back_claims(db, ids)
        self.passes += 1
        self.handed_back += len(handed)
        return handed
