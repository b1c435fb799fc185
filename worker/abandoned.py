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
from worker.service import Every, Service

# Beyond Linux's default TCP retransmission limit (tcp_retries2 = 15: about 15.4 minutes), after
# which nothing a worker sent on a connection can still arrive.
KEEP_SECONDS = 20 * 60.0


class AbandonedClaims(Service):
    """Hands back, every `interval` (the heartbeat's), whatever the abandoned claims recorded,
    through `db` (the worker's pool, set once it is open); `on_handed_back` hears of the ids (the
    worker counts them and claims at once)."""

    name = "handing back abandoned claims"

    def __init__(
        self,
        *,
        interval: float,
        on_handed_back: Callable[[list[UUID]], None] = lambda ids: None,
        keep_seconds: float = KEEP_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db: queries.Executor | None = None
        self.every = Every(interval, jitter=0.0)
        self._on_handed_back = on_handed_back
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

    async def run_once(self) -> list[UUID]:
        """Return to submitted whatever the abandoned claims recorded so far; the ids."""
        ids = self.ids
        if not ids:
            return []
        assert self.db is not None, "no pool to hand back through"
        handed = await queries.hand_back_claims(self.db, ids)
        self.passes += 1
        self.handed_back += len(handed)
        if handed:
            self._on_handed_back(handed)
        return handed
