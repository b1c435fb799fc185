"""Settings, read from the environment (DUETIME_* and DATABASE_URL) only when asked for."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

import msgspec


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
    # Modules whose @task handlers to register (api: their names; worker: their handlers).
    imports: tuple[str, ...] = ()
    # Extra task type names the API accepts besides the built-in and registered ones.
    task_types: tuple[str, ...] = ()
    # Worker
    concurrency: int = 100
    lease_seconds: float = 30.0
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
            text = ",".join(value) if isinstance(value, tuple) else str(value)
            env[f"DUETIME_{field.name.upper()}"] = text
        return env

    def with_(self, **changes: object) -> Settings:
        return msgspec.structs.replace(self, **changes)
