"""Guarantees under failure, at the API: the failure policy written on each row, and 503 +
Retry-After while the database is unreachable (keys and redrive: test_api_keys.py).

Bad input answers 400 naming the field and writes nothing (the whole table is compared).
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from shared import db, registry
from shared.policy import Backoff
from shared.settings import Settings
from tests.integration.db_switch import DatabaseSwitch, free_port
from tests.integration.test_api import (
    WHEN,
    Client,
    assert_error,
    row_of,
    submit,
    table,
)

POLICY_FIELDS = (
    "max_attempts",
    "backoff",
    "backoff_base_seconds",
    "backoff_cap_seconds",
    "retry_on_loss",
    "timeout_seconds",
)
DEFAULTS = Settings()
YEAR = 365 * 86400


@pytest.fixture
def handler_type() -> Iterator[str]:
    """A task type registered with its own policy (as `@task(...)` in an --import module does)."""
    name = f"policy_{uuid.uuid4().hex[:8]}"
    registry.task(name, max_attempts=5, backoff="fixed", backoff_base=2.5, timeout=7)(
        lambda ctx: None
    )
    yield name
    registry._handlers.pop(name, None)


def policy_of(row: dict[str, Any]) -> dict[str, Any]:
    return {name: row[name] for name in POLICY_FIELDS}


def post(**fields: Any) -> dict[str, Any]:
    return {"task_type": "noop", "execution_time": WHEN, **fields}


async def listen(dsn: str) -> tuple[asyncpg.Connection, asyncio.Queue[float]]:
    """What the workers hear: each NOTIFY's "due in N s"."""
    heard: asyncio.Queue[float] = asyncio.Queue()
    conn = await asyncpg.connect(dsn)
    await conn.add_listener("duetime_due", lambda *args: heard.put_nowait(float(args[3])))
    return conn, heard


# --- the failure policy on the row ------------------------------------------------------------


async def test_request_policy_fields_are_written_to_the_row(
    client: Client, pool: asyncpg.Pool
) -> None:
    asked = {
        "max_attempts": 7,
        "backoff": "linear",
        "backoff_base_seconds": 1.5,
        "backoff_cap_seconds": 90,
        "retry_on_loss": True,
        "timeout_seconds": 12.25,
    }
    response = await client.post("/task", json=post(**asked))
    assert response.status_code == 201, response.text
    row = await row_of(pool, UUID(response.json()["task_id"]))
    assert policy_of(row) == asked
    assert row["idempotency_key"] is None
    assert (await client.get(f"/task/{row['id']}")).json()["max_attempts"] == 7


async def test_omitted_fields_come_from_the_settings(dsn: str, pool: asyncpg.Pool) -> None:
    settings = Settings(
        max_attempts=3,
        backoff=Backoff.FIXED,
        backoff_base_seconds=0.5,
        backoff_cap_seconds=9,
        retry_on_loss=True,
        timeout_seconds=42,
    )
    async with AsyncTestClient(app=create_app(settings, dsn=dsn)) as client:
        task_id = await submit(client)
        partly = (await client.post("/task", json=post(max_attempts=1))).json()["task_id"]
    expected = {
        "max_attempts": 3,
        "backoff": "fixed",
        "backoff_base_seconds": 0.5,
        "backoff_cap_seconds": 9,
        "retry_on_loss": True,
        "timeout_seconds": 42,
    }
    assert policy_of(await row_of(pool, task_id)) == expected
    assert policy_of(await row_of(pool, UUID(partly))) == {**expected, "max_attempts": 1}


async def test_a_registered_types_policy_applies_and_the_request_overrides_it(
    dsn: str, pool: asyncpg.Pool, handler_type: str
) -> None:
    async with AsyncTestClient(app=create_app(Settings(), dsn=dsn)) as client:
        plain = await submit(client, handler_type)
        response = await client.post(
            "/task",
            json=post(task_type=handler_type, max_attempts=2, timeout_seconds=1, backoff="linear"),
        )
        assert response.status_code == 201, response.text
        overridden = UUID(response.json()["task_id"])
        other_type = await submit(client, "noop")
    # The type's fields, and the settings' where the type says nothing.
    assert policy_of(await row_of(pool, plain)) == {
        "max_attempts": 5,
        "backoff": "fixed",
        "backoff_base_seconds": 2.5,
        "backoff_cap_seconds": DEFAULTS.backoff_cap_seconds,
        "retry_on_loss": DEFAULTS.retry_on_loss,
        "timeout_seconds": 7,
    }
    assert policy_of(await row_of(pool, overridden)) == {
        "max_attempts": 2,
        "backoff": "linear",
        "backoff_base_seconds": 2.5,
        "backoff_cap_seconds": DEFAULTS.backoff_cap_seconds,
        "retry_on_loss": DEFAULTS.retry_on_loss,
        "timeout_seconds": 1,
    }
    # Another type keeps the settings' policy.
    assert policy_of(await row_of(pool, other_type)) == {
        "max_attempts": DEFAULTS.max_attempts,
        "backoff": str(DEFAULTS.backoff),
        "backoff_base_seconds": DEFAULTS.backoff_base_seconds,
        "backoff_cap_seconds": DEFAULTS.backoff_cap_seconds,
        "retry_on_loss": DEFAULTS.retry_on_loss,
        "timeout_seconds": DEFAULTS.timeout_seconds,
    }


async def test_an_inherited_cap_rises_to_a_larger_base_but_a_requested_one_does_not(
    dsn: str, pool: asyncpg.Pool
) -> None:
    name = f"slow_{uuid.uuid4().hex[:8]}"
    registry.task(name, backoff_base=600)(lambda ctx: None)  # over the settings' cap of 300
    try:
        async with AsyncTestClient(app=create_app(Settings(), dsn=dsn)) as client:
            from_type = await submit(client, name)
            response = await client.post("/task", json=post(backoff_base_seconds=900))
            assert response.status_code == 201, response.text
            from_request = UUID(response.json()["task_id"])
            before = await table(pool)
            response = await client.post("/task", json=post(task_type=name, backoff_cap_seconds=10))
            error = assert_error(response, 400, "backoff_cap_seconds")
            assert "600" in error["detail"]
            assert await table(pool) == before
    finally:
        registry._handlers.pop(name, None)
    row = await row_of(pool, from_type)
    assert (row["backoff_base_seconds"], row["backoff_cap_seconds"]) == (600, 600)
    row = await row_of(pool, from_request)
    assert (row["backoff_base_seconds"], row["backoff_cap_seconds"]) == (900, 900)


BAD_POLICY: list[Any] = [
    pytest.param({"max_attempts": 0}, "max_attempts", id="attempts-0"),
    pytest.param({"max_attempts": 1001}, "max_attempts", id="attempts-1001"),
    pytest.param({"max_attempts": -1}, "max_attempts", id="attempts-negative"),
    pytest.param({"max_attempts": 2.5}, "max_attempts", id="attempts-float"),
    pytest.param({"max_attempts": "3"}, "max_attempts", id="attempts-string"),
    pytest.param({"max_attempts": True}, "max_attempts", id="attempts-bool"),
    pytest.param({"backoff": "random"}, "backoff", id="backoff-unknown"),
    pytest.param({"backoff": "FIXED"}, "backoff", id="backoff-wrong-case"),
    pytest.param({"backoff": ""}, "backoff", id="backoff-empty"),
    pytest.param({"backoff": 1}, "backoff", id="backoff-number"),
    pytest.param({"backoff_base_seconds": -1}, "backoff_base_seconds", id="base-negative"),
    pytest.param({"backoff_base_seconds": YEAR + 1}, "backoff_base_seconds", id="base-over-year"),
    pytest.param({"backoff_base_seconds": "1"}, "backoff_base_seconds", id="base-string"),
    pytest.param({"backoff_cap_seconds": -0.5}, "backoff_cap_seconds", id="cap-negative"),
    pytest.param({"backoff_cap_seconds": 1e12}, "backoff_cap_seconds", id="cap-huge"),
    pytest.param({"backoff_cap_seconds": []}, "backoff_cap_seconds", id="cap-array"),
    pytest.param(
        {"backoff_base_seconds": 10, "backoff_cap_seconds": 5},
        "backoff_cap_seconds",
        id="cap-below-base",
    ),
    pytest.param({"backoff_cap_seconds": 0.5}, "backoff_cap_seconds", id="cap-below-default-base"),
    pytest.param({"retry_on_loss": "yes"}, "retry_on_loss", id="loss-string"),
    pytest.param({"retry_on_loss": 1}, "retry_on_loss", id="loss-number"),
    pytest.param({"timeout_seconds": 0}, "timeout_seconds", id="timeout-0"),
    pytest.param({"timeout_seconds": -1}, "timeout_seconds", id="timeout-negative"),
    pytest.param({"timeout_seconds": YEAR + 1}, "timeout_seconds", id="timeout-over-year"),
    pytest.param({"timeout_seconds": "5"}, "timeout_seconds", id="timeout-string"),
    pytest.param({"idempotency_key": ""}, "idempotency_key", id="key-empty"),
    pytest.param({"idempotency_key": "k" * 201}, "idempotency_key", id="key-201-chars"),
    pytest.param({"idempotency_key": 5}, "idempotency_key", id="key-number"),
    pytest.param({"idempotency_key": "a\u0000b"}, "idempotency_key", id="key-nul"),
]


@pytest.mark.parametrize(("fields", "field"), BAD_POLICY)
async def test_a_bad_policy_or_key_is_400_naming_it_and_writes_nothing(
    client: Client, pool: asyncpg.Pool, fields: dict[str, Any], field: str
) -> None:
    await submit(client)
    before = await table(pool)
    error = assert_error(await client.post("/task", json=post(**fields)), 400, field)
    assert error["detail"].startswith(f"{field}:"), error
    assert await table(pool) == before


async def test_an_out_of_range_number_is_400_naming_its_field(
    client: Client, pool: asyncpg.Pool
) -> None:
    raw = b'{"task_type": "noop", "execution_time": "%s", "timeout_seconds": 1e999}' % WHEN.encode()
    response = await client.post("/task", content=raw, headers={"content-type": "application/json"})
    assert_error(response, 400, "timeout_seconds")
    assert await table(pool) == []


@pytest.mark.parametrize("header", ["", "k" * 201], ids=["empty", "201-chars"])
async def test_a_bad_idempotency_key_header_is_400(
    client: Client, pool: asyncpg.Pool, header: str
) -> None:
    response = await client.post("/task", json=post(), headers={"Idempotency-Key": header})
    assert assert_error(response, 400, "idempotency_key")["detail"].startswith("idempotency_key:")
    assert await table(pool) == []


# --- the database unavailable -----------------------------------------------------------------


def assert_unavailable(response: httpx.Response) -> None:
    error = assert_error(response, 503)
    assert set(error) == {"detail"}
    assert error["detail"].startswith("database unavailable: "), error
    assert "127.0.0.1" not in error["detail"]  # the database's address is not the client's business
    assert response.headers["retry-after"] == "1"


async def test_every_database_route_is_503_while_nothing_listens() -> None:
    dsn = f"postgresql://postgres@127.0.0.1:{free_port()}/x"
    # The app starts with no database at all: the pool opens no connection up front.
    async with AsyncTestClient(app=create_app(Settings(), dsn=dsn)) as client:
        some_id = uuid4()
        assert_unavailable(await client.post("/task", json=post()))
        assert_unavailable(await client.post("/task", json=post(idempotency_key="k")))
        assert_unavailable(await client.get(f"/task/{some_id}"))
        assert_unavailable(await client.get("/task"))
        assert_unavailable(await client.delete(f"/task/{some_id}"))
        assert_unavailable(await client.post(f"/task/{some_id}/retry"))
        assert_unavailable(await client.get("/ready"))
        health = await client.get("/health")
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        # Bad input is still the client's mistake, told without asking the database.
        assert_error(await client.post("/task", json=post(max_attempts=0)), 400, "max_attempts")
        assert_error(await client.get("/task/nope"), 400, "task_id")


async def timed_against_a_silent_database(
    path: str, settings: Settings = DEFAULTS
) -> tuple[httpx.Response, float]:
    """GET `path` from an app whose database is a listener that never accepts: the TCP handshake
    completes, Postgres's never does. The answer, and how long it took."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        dsn = f"postgresql://postgres@127.0.0.1:{silent.getsockname()[1]}/x"
        async with AsyncTestClient(app=create_app(settings, dsn=dsn)) as client:
            started = time.monotonic()
            response = await client.get(path)
            return response, time.monotonic() - started


async def test_ready_is_503_when_the_database_does_not_answer() -> None:
    response, elapsed = await timed_against_a_silent_database("/ready")
    assert_unavailable(response)
    assert "no answer within 2 s" in response.json()["detail"]
    assert 1.5 < elapsed < 10


async def test_ready_with_a_shorter_deadline_says_which() -> None:
    settings = Settings(db_timeout_seconds=0.5)
    response, elapsed = await timed_against_a_silent_database("/ready", settings)
    assert_unavailable(response)
    assert "no database connection within 0.5s" in response.json()["detail"]
    assert 0.4 < elapsed < 0.5 + 3


async def test_a_database_that_never_answers_is_503_within_the_deadline() -> None:
    settings = Settings(db_timeout_seconds=1.5)
    response, elapsed = await timed_against_a_silent_database(f"/task/{uuid4()}", settings)
    assert_unavailable(response)
    assert response.json()["detail"] == ("database unavailable: no database connection within 1.5s")
    assert 1.4 < elapsed < 1.5 + 3  # not the 60 s of a connect without a timeout


async def test_ready_is_503_without_the_schema(server_dsn: str) -> None:
    # The server answers, but this database was never migrated: not ready to serve.
    name = f"duetime_empty_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        app = create_app(Settings(), dsn=db.with_database(server_dsn, name))
        async with AsyncTestClient(app=app) as client:
            assert_unavailable(await client.get("/ready"))
            assert (await client.get("/health")).status_code == 200
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_the_api_recovers_by_itself_when_the_database_comes_back(
    dsn: str, pool: asyncpg.Pool
) -> None:
    with DatabaseSwitch(dsn) as switch:
        async with AsyncTestClient(app=create_app(Settings(), dsn=switch.dsn)) as client:
            assert (await client.get("/ready")).json() == {"status": "ready"}
            before_outage = await submit(client)

            switch.cut()  # every connection dropped, new ones refused
            assert_unavailable(await client.post("/task", json=post()))
            assert_unavailable(await client.post("/task", json=post(idempotency_key="k")))
            assert_unavailable(await client.get(f"/task/{before_outage}"))
            assert_unavailable(await client.get("/ready"))
            assert (await client.get("/health")).status_code == 200

            switch.restore()  # no restart: the pool reconnects on its next acquire
            assert (await client.get("/ready")).json() == {"status": "ready"}
            after_outage = await submit(client)
            keyed = await client.post("/task", json=post(idempotency_key="k"))
            assert keyed.status_code == 201, keyed.text
            got = await client.get(f"/task/{before_outage}")
            assert (got.status_code, got.json()["status"]) == (200, "submitted")
    # What was refused during the outage was not written.
    rows = await table(pool)
    assert [r["id"] for r in rows] == [before_outage, after_outage, UUID(keyed.json()["task_id"])]


async def test_openapi_documents_the_policy_fields_the_header_and_retry(client: Client) -> None:
    doc = (await client.get("/schema/openapi.json")).json()
    post_task = doc["paths"]["/task"]["post"]
    schema = post_task["requestBody"]["content"]["application/json"]["schema"]
    if "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    assert {*POLICY_FIELDS, "idempotency_key"} <= set(schema["properties"])
    assert set(schema["required"]) == {"task_type"}
    assert schema["properties"]["max_attempts"]["maximum"] == 1000
    assert "description" in schema["properties"]["timeout_seconds"]
    assert [p["name"] for p in post_task["parameters"]] == ["Idempotency-Key"]
    assert {"200", "201"} <= set(post_task["responses"])
    assert "post" in doc["paths"]["/task/{task_id}/retry"]
