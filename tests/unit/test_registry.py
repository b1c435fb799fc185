"""Registering handlers with @task, and importing the modules that hold them."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared import registry
from shared.registry import TaskContext, known_task_types, task


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
