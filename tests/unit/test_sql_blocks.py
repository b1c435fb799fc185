"""The rules of shared/sql: named blocks, table first, each saying what it does and what $n is."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared import queries

SOURCE = "\n".join(p.read_text() for p in sorted(queries.SQL_DIR.glob("*.sql")))


def test_every_block_is_parsed_once_and_nonempty() -> None:
    names = re.findall(r"^-- name: (\w+)", SOURCE, re.MULTILINE)
    assert len(names) == len(set(names))
    assert set(queries.sql()) == set(names)
    assert all(body.strip() for body in queries.sql().values())


@pytest.mark.parametrize("name", sorted(queries.sql()))
def test_each_block_is_named_table_first_and_documents_its_parameters(name: str) -> None:
    assert name.startswith(("task_", "schedule_")), "queries are named table first, verb second"
    block = SOURCE.split(f"-- name: {name}\n", 1)[1].split("\n-- name:", 1)[0]
    doc = " ".join(line for line in block.splitlines() if line.startswith("--"))
    assert doc, f"{name} has no line saying what it does"
    body = queries.sql()[name]
    for n in sorted(set(re.findall(r"\$(\d+)", body))):
        assert f"${n}" in doc, f"{name} uses ${n} but does not say what it is"


def test_every_block_is_called_from_the_queries_module() -> None:
    module = Path(queries.__file__).read_text()
    for name in queries.sql():
        assert f'"{name}"' in module, f"{name} is defined but never run"
