"""Settings come from the environment, and a bad value names the variable to fix."""

from __future__ import annotations

import pytest

from shared.policy import Backoff, TaskPolicy
from shared.settings import Settings, SettingsError


def test_defaults_without_environment() -> None:
    settings = Settings.from_env({})
    assert settings.database_url is None
    assert (settings.port, settings.concurrency, settings.foo_seconds) == (8000, 100, 3.0)


def test_reads_duetime_variables_and_database_url() -> None:
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://db/x",
            "DUETIME_PORT": "9001",
            "DUETIME_WAKE_HORIZON_SECONDS": "2.5",
            "DUETIME_TASK_TYPES": "a, b,,c",
            "DUETIME_IMPORTS": "myapp.tasks",
        }
    )
    assert settings.database_url == "postgresql://db/x"
    assert settings.port == 9001
    assert settings.wake_horizon_seconds == 2.5
    assert settings.task_types == ("a", "b", "c")
    assert settings.imports == ("myapp.tasks",)


def test_overrides_win_and_none_means_unset() -> None:
    settings = Settings.from_env({"DUETIME_PORT": "9001"}, {"port": 7000, "host": None})
    assert (settings.port, settings.host) == (7000, "127.0.0.1")


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"DUETIME_PORT": "eighty"}, "DUETIME_PORT"),
        ({"DUETIME_CONCURRENCY": "1.5"}, "DUETIME_CONCURRENCY"),
    ],
)
def test_a_bad_value_names_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env(env)


def test_to_env_round_trips() -> None:
    settings = Settings(database_url="postgresql://x/y", port=1234, task_types=("a", "b"))
    assert Settings.from_env(settings.to_env()) == settings


def test_the_default_failure_policy_comes_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "DUETIME_MAX_ATTEMPTS": "4",
            "DUETIME_BACKOFF": "linear",
            "DUETIME_BACKOFF_BASE_SECONDS": "2",
            "DUETIME_BACKOFF_CAP_SECONDS": "60",
            "DUETIME_RETRY_ON_LOSS": "true",
            "DUETIME_TIMEOUT_SECONDS": "90",
        }
    )
    assert settings.policy() == TaskPolicy(
        max_attempts=4,
        backoff=Backoff.LINEAR,
        backoff_base_seconds=2.0,
        backoff_cap_seconds=60.0,
        retry_on_loss=True,
        timeout_seconds=90.0,
    )
    assert Settings.from_env(settings.to_env()) == settings


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"DUETIME_MAX_ATTEMPTS": "0"}, "DUETIME_MAX_ATTEMPTS"),
        ({"DUETIME_BACKOFF": "quadratic"}, "DUETIME_BACKOFF"),
        ({"DUETIME_LEASE_SECONDS": "0"}, "DUETIME_LEASE_SECONDS"),
        ({"DUETIME_RETRY_ON_LOSS": "perhaps"}, "DUETIME_RETRY_ON_LOSS"),
        ({"DUETIME_TIMEOUT_SECONDS": "-1"}, "DUETIME_TIMEOUT_SECONDS"),
    ],
)
def test_a_bad_policy_value_names_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env(env)
