"""Logging for every duetime process: one line per event, tagged with the process's role and pid."""

from __future__ import annotations

import logging
import os


def setup(level: str, role: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format=f"%(asctime)s %(levelname)-7s {role}[{os.getpid()}] %(name)s: %(message)s",
        force=True,
    )
    # One line per HTTP request is noise at the rates duetime runs.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
