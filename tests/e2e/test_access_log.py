"""The access log: one line per request when DUETIME_ACCESS_LOG (or --access-log) is on, none
when off, the default of `duetime api` (`duetime dev` turns it on)."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.fleet import Fleet, wait_until

pytestmark = pytest.mark.e2e
INFO = {"DUETIME_LOG_LEVEL": "INFO"}


def test_one_line_per_request_only_when_asked(fleet: Fleet) -> None:
    on = fleet.api("api-on", DUETIME_ACCESS_LOG="true", **INFO)
    off = fleet.api("api-off", **INFO)
    for url in (on, off):
        assert httpx.get(f"{url}/task/nope").status_code == 400
        assert httpx.head(f"{url}/health").status_code == 200
    wait_until(lambda: '"HEAD /health HTTP/1.1" 200' in fleet.log("api-on"), 10, "the log line")
    assert '"GET /task/nope HTTP/1.1" 400' in fleet.log("api-on")
    assert "/health" not in fleet.log("api-off")
    assert "/task/nope" not in fleet.log("api-off")
