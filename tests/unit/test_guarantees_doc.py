"""docs/guarantees.md cites a test for each promise: every test it names must exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CITED = re.compile(r"`(test_\w+\.py)(?:::(test_\w+))?`")


def test_every_cited_test_exists() -> None:
    doc = (ROOT / "docs" / "guarantees.md").read_text()
    cited = CITED.findall(doc)
    assert len(cited) >= 20
    files = {path.name: path for path in (ROOT / "tests").rglob("test_*.py")}
    for file, test in cited:
        assert file in files, f"guarantees.md cites {file}, which does not exist"
        if test:
            source = files[file].read_text()
            assert re.search(rf"def {test}\(", source), f"{file} has no {test}"
