"""`duetime schedules …` against a running API, as a user types it."""

from __future__ import annotations

import json
import subprocess

import pytest

from shared.devserver import duetime_command
from tests.e2e.fleet import ROOT, Fleet

pytestmark = pytest.mark.e2e


def duetime(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*duetime_command(), "schedules", *args, "--url", url],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def test_the_schedules_commands(fleet: Fleet) -> None:
    url = fleet.api()
    made = duetime(
        url,
        "add",
        "report",
        "--type",
        "noop",
        "--cron",
        "0 0 9 * * 1-5",
        "--timezone",
        "Europe/Berlin",
        "--payload",
        '{"to": "ops"}',
    )
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    assert (created["name"], created["payload"], len(created["next_runs"])) == (
        "report",
        {"to": "ops"},
        5,
    )
    interval = duetime(url, "add", "ping", "--type", "noop", "--interval", "PT30S")
    assert interval.returncode == 0, interval.stderr
    assert json.loads(interval.stdout)["interval_seconds"] == 30

    listed = duetime(url, "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["ping", "report"]
    assert "0 0 9 * * 1-5\tEurope/Berlin\tenabled" in lines[1]

    assert json.loads(duetime(url, "pause", "report").stdout)["enabled"] is False
    assert json.loads(duetime(url, "resume", "report").stdout)["enabled"] is True
    assert "task_id" in json.loads(duetime(url, "trigger", "report").stdout)
    assert json.loads(duetime(url, "delete", "report").stdout)["occurrences_deleted"] == 1

    # Refusals are the API's message, on stderr, exit 1.
    gone = duetime(url, "show", "report")
    assert (gone.returncode, gone.stderr.strip()) == (1, "error: 404: no schedule 'report'")
    bad = duetime(url, "add", "x", "--type", "noop", "--cron", "61 * * * *")
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: 400: cron: ")
    unreachable = duetime("http://127.0.0.1:9", "list")
    assert unreachable.returncode == 1
    assert "cannot reach the API" in unreachable.stderr
