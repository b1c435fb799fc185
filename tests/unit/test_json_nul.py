"""The one check for \\u0000 in JSON text, which Postgres's jsonb refuses (API and worker)."""

from __future__ import annotations

import msgspec
import pytest

from shared.task import holds_json_nul


@pytest.mark.parametrize(
    ("value", "holds"),
    [
        ({"s": "a\x00b"}, True),
        ({"s": "\\u0000"}, False),  # a backslash then "u0000": text, not a NUL
        ({"s": "\\\x00"}, True),
        ({"s": "plain"}, False),
    ],
)
def test_finds_an_escaped_nul_and_only_that(value: object, holds: bool) -> None:
    assert holds_json_nul(msgspec.json.encode(value).decode()) is holds
