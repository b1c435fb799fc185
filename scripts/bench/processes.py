"""duetime processes started through the CLI, each logging to a temp file, and their stopping."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from shared.devserver import duetime_command

ROOT = Path(__file__).resolve().parents[2]


def process_env(dsn: str) -> dict[str, str]:
    """This environment minus any DUETIME_* setting (the defaults are what we measure)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUETIME_")}
    return {**env, "DATABASE_URL": dsn, "DUETIME_LOG_LEVEL": "WARNING"}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a live process has used so far (Linux /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class _Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: IO[bytes]

    def tail(self, chars: int = 3000) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-chars:]


@dataclass
class Processes:
    """`duetime <args>` children; stop() sends SIGTERM, waits (bounded), then kills."""

    env: dict[str, str]
    children: list[_Child] = field(default_factory=list)

    def start(self, args: list[str], program: list[str] | None = None) -> subprocess.Popen[bytes]:
        """`program args` (by default the duetime CLI), run from the repository's root."""
        log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        program = duetime_command() if program is None else program
        proc = subprocess.Popen(
            [*program, *args],
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.children.append(_Child(" ".join([program[-1], *args]), proc, log))
        return proc

    def check_alive(self) -> None:
        for child in self.children:
            if child.proc.poll() is not None:
                code = child.proc.returncode
                raise RuntimeError(f"{child.name} exited with {code}:\n{child.tail()}")

    def stop(self, within: float = 30.0) -> None:
        try:
            for child in self.children:
                if child.proc.poll() is None:
                    child.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + within
            for child in self.children:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.proc.wait(max(0.1, deadline - time.monotonic()))
        finally:  # also when a second Ctrl-C cuts the wait short
            for child in self.children:
                if child.proc.poll() is None:
                    child.proc.kill()
                    child.proc.wait()
                child.log.close()
            self.children.clear()
