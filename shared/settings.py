"""Settings, read from the environment (DUETIME_* and DATABASE_URL) only when asked for."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Annotated

import msgspec

from shared.policy import Attempts, Backoff, Seconds, TaskPolicy, Timeout, asked_of

Positive = Annotated[float, msgspec.Meta(gt=0)]


class SettingsError(ValueError):
    pass


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    # Where Postgres is. None means: start (or reuse) the embedded server under data_dir.
    database_url: str | None = None
    data_dir: str = ".duetime"
    # API
    host: str = "127.0.0.1"
    port: int = 8000
    db_pool_size: int = 10
    # API and workers: the deadline of every statement, with the wait for its connection. A
    # database that stops answering is then a 503 (API) or a retry on a new connection (worker)
    # after this, not a wait of minutes on a socket the network froze.
    db_timeout_seconds: Positive = 5.0
    # One line per HTTP request (uvicorn's access log): off, as it costs every request; on in dev.
    access_log: bool = False
    # Modules whose @task handlers to register (api: their names; worker: their handlers).
    imports: tuple[str, ...] = ()
    # Extra task type names the API accepts besides the built-in and registered ones.
    task_types: tuple[str, ...] = ()
    # Worker
    concurrency: Annotated[int, msgspec.Meta(ge=1)] = 100
    # Connections per worker process, besides its LISTEN connection: claims, results, heartbeats.
    worker_pool_size: Annotated[int, msgspec.Meta(ge=1)] = 4
    # A running attempt's lease; the worker renews it every third of this. A worker that stops
    # renewing (killed, paused, cut off) loses its attempts within lease + rescue interval.
    lease_seconds: Positive = 30.0
    rescue_interval_seconds: Positive = 5.0
    # How long a cancelled handler (timeout, lost lease) gets to stop before it is abandoned.
    cancel_grace_seconds: Annotated[float, msgspec.Meta(ge=0)] = 5.0
    # The default failure policy of a task (a task type's @task(...) and the request override it).
    max_attempts: Attempts = 1
    backoff: Backoff = Backoff.EXPONENTIAL
    backoff_base_seconds: Seconds = 1.0
    backoff_cap_seconds: Seconds = 300.0
    retry_on_loss: bool = False
    timeout_seconds: Timeout = 300.0
    # Retention: every worker prunes finished tasks this old, every prune interval (jittered;
    # 0 turns pruning off). done and deleted tasks follow retention_done_seconds.
    retention_done_seconds: Positive = 7 * 86400.0
    retention_failed_seconds: Positive = 30 * 86400.0
    prune_interval_seconds: Annotated[float, msgspec.Meta(ge=0)] = 60.0
    # A worker sleeps at most this long between looks at the next due time, and the API sends a
    # NOTIFY only for tasks due within it: together they bound the start lag of any task.
    wake_horizon_seconds: float = 5.0
    completion_flush_ms: float = 5.0
    # Built-in handlers
    foo_seconds: float = 3.0
    bar_url: str = "http://127.0.0.1:8000/health"
    log_level: str = "INFO"

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, overrides: Mapping[str, object] | None = None
    ) -> Settings:
        """Settings from DUETIME_<FIELD> variables (and DATABASE_URL), then explicit overrides."""
        env = os.environ if env is None else env
        raw: dict[str, object] = {}
        if env.get("DATABASE_URL"):
            raw["database_url"] = env["DATABASE_URL"]
        for field in msgspec.structs.fields(cls):
            value = env.get(f"DUETIME_{field.name.upper()}")
            if value is None or value == "":
                continue
            listed = field.name in ("task_types", "imports")
            raw[field.name] = (
                [v.strip() for v in value.split(",") if v.strip()] if listed else value
            )
        raw.update({k: v for k, v in (overrides or {}).items() if v is not None})
        try:
            return msgspec.convert(raw, cls, strict=False)
        except msgspec.ValidationError as exc:
            # Name the variable the user set, not the struct path msgspec reports.
            match = re.search(r"\$\.(\w+)", str(exc))
            name = match.group(1) if match else "?"
            var = "DATABASE_URL" if name == "database_url" else f"DUETIME_{name.upper()}"
            raise SettingsError(f"invalid setting {var}: {exc}") from exc

    def to_env(self) -> dict[str, str]:
        """The environment that makes from_env() in a child process give these settings."""
        env: dict[str, str] = {}
        for field in msgspec.structs.fields(self):
            value = getattr(self, field.name)
            if value is None:
                continue
            if field.name == "database_url":
                env["DATABASE_URL"] = value
                continue
            if isinstance(value, tuple):
                text = ",".join(value)
            elif isinstance(value, bool):
                text = "true" if value else "false"
            else:
                text = str(value)
            env[f"DUETIME_{field.name.upper()}"] = text
        return env

    def policy(self) -> TaskPolicy:
        """The default failure policy, every field set (a cap below the base rises to it)."""
        cap = max(self.backoff_cap_seconds, self.backoff_base_seconds)
        return msgspec.structs.replace(asked_of(self), backoff_cap_seconds=cap)

    def with_(self, **changes: object) -> Settings:
        return msgspec.structs.replace(self, **changes)
