"""Registering handlers with @task, and importing the modules that hold them."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared import policy, registry
from shared.policy import Backoff, TaskPolicy
from shared.registry import Retry, TaskContext, known_task_types, task


@pytest.fixture(autouse=True)
def clean_registry() -> Iterator[None]:
    saved = dict(registry._handlers)
    yield
    registry._handlers.clear()
    registry._handlers.update(saved)


def test_registers_async_and_plain_functions_under_their_names() -> None:
    @task("send_email")
    async def send(ctx: TaskContext) -> None: ...

    @task()
    def resize_image(ctx: TaskContext) -> None: ...

    found = registry.registered()
    assert found["send_email"].is_async
    assert not found["resize_image"].is_async
    assert {"send_email", "resize_image", "foo", "noop"} <= known_task_types()


def test_refuses_builtin_names_duplicates_and_bad_names() -> None:
    with pytest.raises(ValueError, match="built in"):
        task("foo")(lambda ctx: None)

    @task("mine")
    def first(ctx: TaskContext) -> None: ...

    with pytest.raises(ValueError, match="already registered"):
        task("mine")(lambda ctx: None)
    with pytest.raises(ValueError, match="must match"):
        task("has space")(lambda ctx: None)


def test_known_types_include_configured_names() -> None:
    assert "from_settings" in known_task_types(["from_settings"])
    assert "from_settings" not in known_task_types()


def test_import_modules_registers_their_handlers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_handlers_mod.py").write_text(
        "from duetime import task\n\n@task('from_module')\nasync def h(ctx):\n    return 1\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        registry.import_modules(["my_handlers_mod"])
        assert "from_module" in registry.registered()
    finally:
        sys.modules.pop("my_handlers_mod", None)


def test_import_modules_says_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="cannot import handler module 'no_such_mod_xyz'"):
        registry.import_modules(["no_such_mod_xyz"])
    with pytest.raises(ValueError, match="must not be named"):
        registry.import_modules(["worker.tasks"])


def test_a_task_type_carries_its_failure_policy() -> None:
    @task("billing_run", max_attempts=5, backoff="linear", backoff_base=2, timeout=60)
    async def billing(ctx: TaskContext) -> None: ...

    policy = registry.registered()["billing_run"].policy
    assert policy == TaskPolicy(
        max_attempts=5, backoff=Backoff.LINEAR, backoff_base_seconds=2.0, timeout_seconds=60.0
    )
    # Unset fields fall through to what is beneath: the settings' defaults.
    resolved = policy.over(TaskPolicy(max_attempts=1, retry_on_loss=False, backoff_cap_seconds=9))
    assert (resolved.max_attempts, resolved.retry_on_loss, resolved.backoff_cap_seconds) == (
        5,
        False,
        9,
    )


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"backoff": "sometimes"}, "backoff"),
        ({"timeout": 0}, "timeout_seconds"),
        ({"backoff_base": 10, "backoff_cap": 5}, "backoff_cap_seconds"),
    ],
)
def test_a_bad_policy_is_refused_naming_the_field(options: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        task("x", **options)  # type: ignore[arg-type]


def test_retry_after_must_be_sane() -> None:
    assert Retry(after=30).after == 30
    with pytest.raises(ValueError, match="after"):
        Retry(after=-1)


def test_an_inherited_cap_rises_to_a_larger_base_but_a_named_one_stays() -> None:
    beneath = TaskPolicy(backoff_base_seconds=1, backoff_cap_seconds=300)
    assert TaskPolicy(backoff_base_seconds=600).resolve(beneath).backoff_cap_seconds == 600
    named = TaskPolicy(backoff_base_seconds=600, backoff_cap_seconds=10).resolve(beneath)
    assert named.backoff_cap_seconds == 10  # the mistake is kept for policy.check to name
    with pytest.raises(ValueError, match="backoff_cap_seconds"):
        policy.check(named)
