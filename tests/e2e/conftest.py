from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.fleet import Fleet


@pytest.fixture
def fleet(dsn: str, tmp_path: Path) -> Iterator[Fleet]:
    fleet = Fleet(dsn, tmp_path)
    yield fleet
    fleet.stop()
    if os.environ.get("E2E_LOG_LEVEL"):  # debugging aid: the workers' last words
        for log in sorted(tmp_path.glob("worker-*.log")):
            print(log.read_text()[-300:])
