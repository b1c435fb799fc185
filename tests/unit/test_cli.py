"""The CLI's own surface: --version, --help that shows defaults, and one clean line for a bad
--import (the commands themselves run in tests/e2e)."""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

import duetime

runner = CliRunner()


@pytest.fixture(autouse=True)
def _environment_kept() -> Iterator[None]:
    """A command exports its settings as DUETIME_* for its children; not for later tests."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_version() -> None:
    result = runner.invoke(duetime.cli, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"duetime {importlib.metadata.version('duetime')}"


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        ("dev", ["default: 127.0.0.1", "default: 8000", "default: 2", "default: .duetime"]),
        ("api", ["default: 127.0.0.1", "default: 8000", "default: 1", "DUETIME_PORT"]),
        ("worker", ["default: 100", "default: 30.0", "DUETIME_CONCURRENCY"]),
    ],
)
def test_help_shows_defaults_and_plain_placeholders(command: str, shown: list[str]) -> None:
    result = runner.invoke(duetime.cli, [command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for text in shown:
        assert text in result.output
    # Type names as placeholders (`<bool>`, `<list[str]>`) say nothing to a user.
    assert "<" not in result.output, result.output


def test_an_option_beats_its_variable_which_beats_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[str, int]] = []
    monkeypatch.setattr(
        "api.main.run_api", lambda settings, processes: seen.append((settings.host, settings.port))
    )
    monkeypatch.setenv("DUETIME_PORT", "9001")
    assert runner.invoke(duetime.cli, ["api"]).exit_code == 0
    assert runner.invoke(duetime.cli, ["api", "--port", "9002"]).exit_code == 0
    monkeypatch.delenv("DUETIME_PORT")
    assert runner.invoke(duetime.cli, ["api"]).exit_code == 0
    assert seen == [("127.0.0.1", 9001), ("127.0.0.1", 9002), ("127.0.0.1", 8000)]


@pytest.mark.parametrize("command", ["api", "worker"])
def test_a_module_that_does_not_import_is_one_line_and_exit_2(command: str) -> None:
    result = runner.invoke(duetime.cli, [command, "--import", "nosuch.mod"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines == ["error: cannot import handler module 'nosuch.mod': No module named 'nosuch'"]
