"""The HTTP contract (README's API table) and the bad-input suite, against a real PostgreSQL.

Every refused request must answer 4xx with {"detail", "field"?} and write nothing: the bad-input
tests compare the whole tasks table before and after.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient, TestClient

from api.app import create_app
from api.inserter import Inserter
from api.notifier import DueNotifier
from api.schemas import MAX_PAYLOAD_BYTES
from shared import queries
from shared.settings import Settings
from shared.task import TaskStatus
from tests.factories import new_task

Client = AsyncTestClient[Litestar]

TYPES = ["foo", "bar", "baz", "noop"]
WHEN = "2030-01-01T12:00:00Z"
PAST = "2020-01-01T00:00:00Z"  # due at once, so claim_due takes it
JSON = {"content-type": "application/json"}
TASK_FIELDS = {
    "task_id",
    "task_type",
    "status",
    "execution_time",
    "scheduled_time",
    "created_at",
    "started_at",
    "finished_at",
    "attempts",
    "max_attempts",
    "error_reason",
    "last_error",
    "schedule",
    "payload",
    "result",
}
ERROR_KEYS = {"detail", "field", "status"}


async def submit(
    client: Client,
    task_type: str = "noop",
    execution_time: str = WHEN,
    payload: dict[str, Any] | None = None,
) -> UUID:
    body: dict[str, Any] = {"task_type": task_type, "execution_time": execution_time}
    if payload is not None:
        body["payload"] = payload
    response = await client.post("/task", json=body)
    assert response.status_code == 201, response.text
    return UUID(response.json()["task_id"])


async def claim_all(pool: asyncpg.Pool) -> list[UUID]:
    return [row["id"] for row in (await queries.claim_due(pool, 1000, "w1", 30, TYPES)).rows]


async def table(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    return [dict(row) for row in await pool.fetch("SELECT * FROM tasks ORDER BY id")]


async def row_of(pool: asyncpg.Pool, task_id: UUID) -> dict[str, Any]:
    row = await queries.get(pool, task_id)
    assert row is not None
    return dict(row)


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def assert_error(response: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert isinstance(body.get("detail"), str)
    assert body["detail"]
    assert set(body) <= ERROR_KEYS, body
    if field is not None:
        assert body.get("field") == field, body
        assert field in body["detail"], body
    return body


# --- POST /task -----------------------------------------------------------------------------


async def test_post_creates_a_submitted_task(client: Client, pool: asyncpg.Pool) -> None:
    payload = {"user": 7, "tags": ["a", "é"], "nested": {"x": None, "f": 1.5}}
    response = await client.post(
        "/task",
        json={
            "task_type": "baz",
            "execution_time": "2030-06-01T09:30:00.250+01:00",
            "payload": payload,
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"task_id"}
    task_id = UUID(body["task_id"])
    assert str(task_id) == body["task_id"]
    assert task_id.version == 7
    assert response.headers["location"] == f"/task/{task_id}"

    rows = await table(pool)
    assert len(rows) == 1
    row = rows[0]
    assert row["id"] == task_id
    assert row["task_type"] == "baz"
    assert row["status"] == "submitted"
    assert row["attempts"] == 0
    # +01:00 is one hour ahead of UTC: the same instant is 08:30:00.25 UTC.
    assert row["execution_time"] == datetime(2030, 6, 1, 8, 30, 0, 250000, tzinfo=UTC)
    assert json.loads(row["payload"]) == payload
    assert row["started_at"] is None
    assert row["finished_at"] is None
    assert row["result"] is None
    assert row["last_error"] is None


@pytest.mark.parametrize(
    "extra", [{}, {"payload": None}, {"payload": {}}], ids=["omitted", "null", "empty"]
)
async def test_post_without_payload_stores_an_empty_object(
    client: Client, pool: asyncpg.Pool, extra: dict[str, Any]
) -> None:
    response = await client.post(
        "/task", json={"task_type": "noop", "execution_time": WHEN, **extra}
    )
    assert response.status_code == 201, response.text
    row = await row_of(pool, UUID(response.json()["task_id"]))
    assert json.loads(row["payload"]) == {}


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON"]
)
async def test_post_accepts_json_content_type_variants(
    client: Client, pool: asyncpg.Pool, content_type: str
) -> None:
    body = json.dumps({"task_type": "noop", "execution_time": WHEN}).encode()
    response = await client.post("/task", content=body, headers={"content-type": content_type})
    assert response.status_code == 201, response.text
    assert len(await table(pool)) == 1


async def test_post_ids_follow_creation_order(client: Client) -> None:
    ids = [await submit(client) for _ in range(5)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 5


async def test_payload_of_exactly_64_kib_is_accepted(client: Client, pool: asyncpg.Pool) -> None:
    # Stored compactly as {"x":"…"}: 8 bytes of framing.
    filler = "a" * (MAX_PAYLOAD_BYTES - 8)
    task_id = await submit(client, payload={"x": filler})
    row = await row_of(pool, task_id)
    assert json.loads(row["payload"]) == {"x": filler}

    before = await table(pool)
    response = await client.post(
        "/task", json={"task_type": "noop", "execution_time": WHEN, "payload": {"x": filler + "a"}}
    )
    assert_error(response, 413, "payload")
    assert await table(pool) == before


async def test_a_bad_task_in_a_concurrent_burst_fails_only_itself(
    dsn: str, pool: asyncpg.Pool
) -> None:
    """Inserts are group-committed: a row the database would refuse must never join a batch."""
    good = {"task_type": "noop", "execution_time": WHEN}
    bad = {**good, "payload": {"x": "nul \u0000 inside"}}
    # The sync client serves the app on its own thread, so requests sent from several threads
    # really overlap; one insert in flight at a time makes the ones behind it share a batch.
    with TestClient(app=create_app(Settings(), dsn=dsn)) as sync_client:
        state = sync_client.app.state
        state.inserter = Inserter(state.pool, DueNotifier(state.pool, horizon=5.0), max_inflight=1)
        responses = await asyncio.gather(
            *(
                asyncio.to_thread(sync_client.post, "/task", json=bad if i == 10 else good)
                for i in range(30)
            )
        )
    codes = [r.status_code for r in responses]
    assert codes == [201] * 10 + [400] + [201] * 19
    assert len(await table(pool)) == 29


async def test_custom_task_types_from_settings_are_accepted(
    dsn: str, client: Client, pool: asyncpg.Pool
) -> None:
    body = {"task_type": "custom_one", "execution_time": WHEN}
    # The default app does not know it...
    assert_error(await client.post("/task", json=body), 422, "task_type")
    assert await table(pool) == []
    # ...an app told about it does, next to the built-in ones.
    app = create_app(Settings(task_types=("custom_one",)), dsn=dsn)
    async with AsyncTestClient(app=app) as custom:
        response = await custom.post("/task", json=body)
        assert response.status_code == 201, response.text
        row = await row_of(pool, UUID(response.json()["task_id"]))
        assert (row["task_type"], row["status"]) == ("custom_one", "submitted")
        assert (await custom.post("/task", json={**body, "task_type": "foo"})).status_code == 201
        response = await custom.post("/task", json={**body, "task_type": "custom_two"})
        assert "custom_one" in assert_error(response, 422, "task_type")["detail"]
    assert len(await table(pool)) == 2


# --- the bad-input suite ----------------------------------------------------------------------

VALID = {"task_type": "noop", "execution_time": WHEN}


def body(**changes: Any) -> bytes:
    """VALID with `changes` applied; a change to ... removes the key."""
    doc = {**VALID, **changes}
    return json.dumps({k: v for k, v in doc.items() if v is not ...}).encode()


def nested(depth: int) -> bytes:
    return b'{"task_type": "noop", "execution_time": "%s", "payload": {"x": %s%s}}' % (
        WHEN.encode(),
        b"[" * depth,
        b"]" * depth,
    )


BAD_INPUT: list[Any] = [
    # (body, content type, status, field)
    pytest.param(b'{"task_type": "noop",', JSON, 400, None, id="malformed-truncated"),
    pytest.param(b"{task_type: noop}", JSON, 400, None, id="malformed-unquoted"),
    pytest.param(b"not json", JSON, 400, None, id="malformed-text"),
    pytest.param(body(), {"content-type": "text/plain"}, 415, None, id="text-plain"),
    pytest.param(b"not json", {"content-type": "text/plain"}, 415, None, id="text-plain-not-json"),
    pytest.param(
        b"task_type=noop",
        {"content-type": "application/x-www-form-urlencoded"},
        415,
        None,
        id="form-urlencoded",
    ),
    pytest.param(body(), {}, 415, None, id="no-content-type"),
    pytest.param(body(bogus=1), JSON, 400, "bogus", id="unknown-field"),
    pytest.param(body(task_type="nope"), JSON, 422, "task_type", id="unknown-task-type"),
    pytest.param(body(task_type="NOOP"), JSON, 422, "task_type", id="task-type-wrong-case"),
    pytest.param(body(task_type=5), JSON, 400, "task_type", id="task-type-number"),
    pytest.param(body(task_type=None), JSON, 400, "task_type", id="task-type-null"),
    pytest.param(body(task_type=["noop"]), JSON, 400, "task_type", id="task-type-array"),
    pytest.param(body(task_type={"a": 1}), JSON, 400, "task_type", id="task-type-object"),
    pytest.param(body(task_type="no op"), JSON, 400, "task_type", id="task-type-bad-name"),
    pytest.param(body(task_type=""), JSON, 400, "task_type", id="task-type-empty"),
    pytest.param(body(task_type=...), JSON, 400, "task_type", id="missing-task-type"),
    pytest.param(body(delay="PT1M"), JSON, 400, "delay", id="time-and-delay"),
    pytest.param(body(execution_time=..., delay="P1M"), JSON, 400, "delay", id="delay-months"),
    pytest.param(body(execution_time=..., delay="soon"), JSON, 400, "delay", id="delay-words"),
    pytest.param(body(execution_time=..., delay=-1), JSON, 400, "delay", id="delay-negative"),
    pytest.param(body(execution_time=..., delay="P36501D"), JSON, 400, "delay", id="delay-long"),
    pytest.param(body(execution_time=..., delay=True), JSON, 400, "delay", id="delay-bool"),
    pytest.param(
        body(execution_time="2030-01-01T12:00:00"), JSON, 400, "execution_time", id="naive-time"
    ),
    pytest.param(body(execution_time="tomorrow"), JSON, 400, "execution_time", id="tomorrow"),
    pytest.param(body(execution_time="2030-01-01"), JSON, 400, "execution_time", id="date-only"),
    pytest.param(
        body(execution_time="2030-13-01T00:00:00Z"), JSON, 400, "execution_time", id="month-13"
    ),
    pytest.param(body(execution_time=""), JSON, 400, "execution_time", id="time-empty"),
    # Unix times are not RFC 3339 (a lenient decoder would take them as seconds since 1970).
    pytest.param(body(execution_time=1893499200), JSON, 400, "execution_time", id="time-int"),
    pytest.param(body(execution_time=1.8e9), JSON, 400, "execution_time", id="time-float"),
    pytest.param(
        body(execution_time="1893499200"), JSON, 400, "execution_time", id="time-numeric-string"
    ),
    # Valid RFC 3339, but outside what a timestamp can hold once converted to UTC.
    pytest.param(
        body(execution_time="9999-12-31T23:30:00-01:00"), JSON, 400, "execution_time", id="y10k"
    ),
    pytest.param(
        body(execution_time="0001-01-01T00:30:00+01:00"), JSON, 400, "execution_time", id="y0"
    ),
    # asyncpg stores these as -infinity and infinity, and reads them back without an offset.
    pytest.param(
        body(execution_time="0001-01-01T00:00:00Z"), JSON, 400, "execution_time", id="first-us"
    ),
    pytest.param(
        body(execution_time="9999-12-31T23:59:59.999999Z"),
        JSON,
        400,
        "execution_time",
        id="last-us",
    ),
    pytest.param(
        body(execution_time="0001-01-01T12:00:00Z"), JSON, 400, "execution_time", id="first-day"
    ),
    pytest.param(
        body(execution_time="9999-12-31T00:00:00Z"), JSON, 400, "execution_time", id="last-day"
    ),
    pytest.param(
        b'{"task_type": "noop", "execution_time": "%s", "payload": {"s": "\xff"}}' % WHEN.encode(),
        JSON,
        400,
        None,
        id="not-utf-8",
    ),
    pytest.param(body(payload=[1, 2]), JSON, 400, "payload", id="payload-array"),
    pytest.param(body(payload="x"), JSON, 400, "payload", id="payload-string"),
    pytest.param(body(payload=3), JSON, 400, "payload", id="payload-number"),
    pytest.param(body(payload=True), JSON, 400, "payload", id="payload-bool"),
    # PostgreSQL's jsonb refuses \u0000.
    pytest.param(body(payload={"x": "a\u0000b"}), JSON, 400, "payload", id="payload-nul"),
    pytest.param(body(payload={"\u0000": 1}), JSON, 400, "payload", id="payload-nul-key"),
    pytest.param(
        body(payload={"x": "a" * (MAX_PAYLOAD_BYTES + 100)}), JSON, 413, "payload", id="payload-big"
    ),
    pytest.param(body(payload={"x": "a" * 300_000}), JSON, 413, None, id="body-300kb"),
    pytest.param(b"", JSON, 400, None, id="empty-body"),
    pytest.param(b"   ", JSON, 400, None, id="blank-body"),
    pytest.param(b"null", JSON, 400, None, id="json-null"),
    pytest.param(b"[]", JSON, 400, None, id="json-empty-array"),
    pytest.param(b"[" + body() + b"]", JSON, 400, None, id="json-array-of-task"),
    pytest.param(b'"noop"', JSON, 400, None, id="json-string"),
    pytest.param(b"42", JSON, 400, None, id="json-number"),
    pytest.param(nested(5000), JSON, 400, None, id="nested-too-deep"),
]


@pytest.mark.parametrize(("content", "headers", "status", "field"), BAD_INPUT)
async def test_bad_input_is_refused_and_writes_nothing(
    client: Client,
    pool: asyncpg.Pool,
    content: bytes,
    headers: dict[str, str],
    status: int,
    field: str | None,
) -> None:
    await submit(client)  # one row already there, so "unchanged" is not just "still empty"
    before = await table(pool)
    response = await client.post("/task", content=content, headers=headers)
    error = assert_error(response, status, field)
    if field is None:
        assert "field" not in error
    assert await table(pool) == before
    # Nothing half-done either: the API still serves and the table still takes good tasks.
    await submit(client)
    assert len(await table(pool)) == len(before) + 1


async def test_unknown_task_type_lists_the_known_ones(client: Client) -> None:
    response = await client.post("/task", json={**VALID, "task_type": "nope"})
    detail = assert_error(response, 422, "task_type")["detail"]
    assert "'nope'" in detail
    for known in TYPES:
        assert known in detail


async def test_unknown_field_is_named(client: Client) -> None:
    response = await client.post("/task", json={**VALID, "priority": 5})
    error = assert_error(response, 400, "priority")
    assert "unknown" in error["detail"]


async def test_naive_execution_time_says_it_needs_an_offset(client: Client) -> None:
    response = await client.post("/task", json={**VALID, "execution_time": "2030-01-01T12:00:00"})
    error = assert_error(response, 400, "execution_time")
    assert "timezone" in error["detail"]


async def test_wrong_content_type_names_the_one_expected(client: Client) -> None:
    response = await client.post("/task", content=body(), headers={"content-type": "text/plain"})
    detail = assert_error(response, 415)["detail"]
    assert "application/json" in detail
    assert "text/plain" in detail


# --- GET /task/{id} ---------------------------------------------------------------------------


async def test_get_returns_every_field(client: Client, pool: asyncpg.Pool) -> None:
    payload = {"k": [1, {"v": "é"}]}
    task_id = await submit(client, "foo", "2030-01-01T13:00:00+01:00", payload)
    response = await client.get(f"/task/{task_id}")
    assert response.status_code == 200, response.text
    task = response.json()
    assert set(task) == TASK_FIELDS
    row = await row_of(pool, task_id)
    assert task["task_id"] == str(task_id)
    assert task["task_type"] == "foo"
    assert task["status"] == "submitted"
    assert instant(task["execution_time"]) == datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    assert instant(task["created_at"]) == row["created_at"]
    assert abs(row["created_at"] - datetime.now(UTC)) < timedelta(minutes=5)
    assert task["started_at"] is None
    assert task["finished_at"] is None
    assert task["attempts"] == 0
    assert task["last_error"] is None
    assert task["payload"] == payload
    assert task["result"] is None


@pytest.mark.parametrize(
    ("sent", "utc"),
    [
        ("0001-01-02T00:00:00+23:59", "0001-01-01T00:01:00Z"),
        ("9999-12-30T23:59:59.999999-23:59", "9999-12-31T23:58:59.999999Z"),
    ],
)
async def test_the_first_and_last_instants_taken_come_back_with_their_offset(
    client: Client, sent: str, utc: str
) -> None:
    task_id = await submit(client, execution_time=sent)
    task = (await client.get(f"/task/{task_id}")).json()
    assert task["execution_time"] == utc


async def test_get_shows_a_finished_attempt(client: Client, pool: asyncpg.Pool) -> None:
    done_id = await submit(client, "baz", PAST)
    failed_id = await submit(client, "bar", PAST)
    assert set(await claim_all(pool)) == {done_id, failed_id}
    written = await queries.finish_many(
        pool,
        [
            queries.Finish(done_id, 1, "done", '{"n": 42}'),
            queries.Finish(failed_id, 1, "fail", error="boom", reason="fail"),
        ],
    )
    assert written == {done_id: TaskStatus.DONE, failed_id: TaskStatus.FAILED}

    done = (await client.get(f"/task/{done_id}")).json()
    assert done["status"] == "done"
    assert done["attempts"] == 1
    assert done["result"] == {"n": 42}
    assert done["last_error"] is None
    assert done["started_at"] is not None
    assert done["finished_at"] is not None
    assert instant(done["finished_at"]) >= instant(done["started_at"])

    failed = (await client.get(f"/task/{failed_id}")).json()
    assert (failed["status"], failed["attempts"]) == ("failed", 1)
    assert (failed["result"], failed["last_error"]) == (None, "boom")


async def test_get_unknown_task_is_404(client: Client) -> None:
    await submit(client)
    unknown = uuid4()
    error = assert_error(await client.get(f"/task/{unknown}"), 404)
    assert set(error) == {"detail"}
    assert str(unknown) in error["detail"]


@pytest.mark.parametrize(
    "raw", ["not-a-uuid", "1234", "00000000-0000-0000-0000-00000000000g", "%00"]
)
async def test_get_non_uuid_is_400_naming_task_id(client: Client, raw: str) -> None:
    assert_error(await client.get(f"/task/{raw}"), 400, "task_id")


# --- GET /task --------------------------------------------------------------------------------


async def insert(pool: asyncpg.Pool, count: int, task_type: str = "noop") -> list[UUID]:
    tasks = [new_task(task_type, instant(WHEN)) for _ in range(count)]
    await queries.insert_many(pool, tasks)
    return [t.id for t in tasks]


async def test_list_pages_walk_every_task_once(client: Client) -> None:
    created = [await submit(client, payload={"i": i}) for i in range(25)]
    seen: list[str] = []
    sizes: list[int] = []
    cursors: list[str | None] = []
    params: dict[str, Any] = {"limit": 10}
    while True:
        response = await client.get("/task", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert set(page) == {"tasks", "next_cursor"}
        for task in page["tasks"]:
            assert set(task) == TASK_FIELDS
        seen += [task["task_id"] for task in page["tasks"]]
        sizes.append(len(page["tasks"]))
        cursors.append(page["next_cursor"])
        if page["next_cursor"] is None:
            break
        assert len(sizes) < 10, "pagination does not end"
        params["cursor"] = page["next_cursor"]
    assert sizes == [10, 10, 5]
    assert cursors[0] == seen[9]
    assert cursors[1] == seen[19]
    assert cursors[2] is None
    assert seen == [str(task_id) for task_id in created]  # creation order, each exactly once
    # Each task shows its own payload.
    first = (await client.get("/task", params={"limit": 1})).json()["tasks"][0]
    assert first["payload"] == {"i": 0}


async def test_list_default_limit_is_100(client: Client, pool: asyncpg.Pool) -> None:
    ids = await insert(pool, 105)
    page = (await client.get("/task")).json()
    assert [t["task_id"] for t in page["tasks"]] == [str(i) for i in ids[:100]]
    assert page["next_cursor"] == str(ids[99])
    rest = (await client.get("/task", params={"cursor": page["next_cursor"]})).json()
    assert [t["task_id"] for t in rest["tasks"]] == [str(i) for i in ids[100:]]
    assert rest["next_cursor"] is None


@pytest.mark.parametrize("limit", [1, 1000])
async def test_list_limit_bounds_are_accepted(
    client: Client, pool: asyncpg.Pool, limit: int
) -> None:
    ids = await insert(pool, 3)
    page = (await client.get("/task", params={"limit": limit})).json()
    assert [t["task_id"] for t in page["tasks"]] == [str(i) for i in ids[:limit]]
    assert page["next_cursor"] == (str(ids[0]) if limit == 1 else None)


async def test_list_of_an_empty_table(client: Client) -> None:
    response = await client.get("/task")
    assert response.status_code == 200
    assert response.json() == {"tasks": [], "next_cursor": None}


async def test_list_filters_by_status_and_type(client: Client, pool: asyncpg.Pool) -> None:
    running = await submit(client, "foo", PAST)
    [claimed] = await claim_all(pool)
    assert claimed == running
    deleted = await submit(client, "foo")
    assert (await client.delete(f"/task/{deleted}")).status_code == 200
    waiting_foo = await submit(client, "foo")
    waiting_bar = await submit(client, "bar")
    waiting_baz = await submit(client, "baz")

    async def ids(**params: Any) -> list[UUID]:
        response = await client.get("/task", params=params)
        assert response.status_code == 200, response.text
        return [UUID(t["task_id"]) for t in response.json()["tasks"]]

    assert await ids(status="submitted") == [waiting_foo, waiting_bar, waiting_baz]
    assert await ids(status="started_executing") == [running]
    assert await ids(status="deleted") == [deleted]
    assert await ids(status="done") == []
    assert await ids(type="foo") == [running, deleted, waiting_foo]
    assert await ids(type="bar") == [waiting_bar]
    assert await ids(type="noop") == []
    assert await ids(status="submitted", type="foo") == [waiting_foo]
    assert await ids(status="deleted", type="bar") == []
    # Filters and pages together: the cursor carries on within the filter.
    first = await ids(status="submitted", limit=2)
    assert first == [waiting_foo, waiting_bar]
    assert await ids(status="submitted", limit=2, cursor=str(first[-1])) == [waiting_baz]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=bogus", "status"),
        ("status=", "status"),
        ("status=SUBMITTED", "status"),
        ("limit=0", "limit"),
        ("limit=-1", "limit"),
        ("limit=1001", "limit"),
        ("limit=abc", "limit"),
        ("limit=1.5", "limit"),
        ("cursor=not-a-cursor", "cursor"),
        ("cursor=", "cursor"),
        ("type=bad%00type", "type"),
        ("type=no%20space", "type"),
    ],
)
async def test_list_bad_parameter_is_400_naming_it(
    client: Client, pool: asyncpg.Pool, query: str, field: str
) -> None:
    await submit(client)
    before = await table(pool)
    error = assert_error(await client.get(f"/task?{query}"), 400, field)
    assert error["detail"].startswith(f"{field}:")
    if field == "status":
        for status in TaskStatus:
            assert status.value in error["detail"]
    assert await table(pool) == before


# --- DELETE /task/{id} ------------------------------------------------------------------------


async def test_delete_submitted_task_is_idempotent(client: Client, pool: asyncpg.Pool) -> None:
    task_id = await submit(client, payload={"keep": True})
    other = await submit(client)
    response = await client.delete(f"/task/{task_id}")
    assert response.status_code == 200, response.text
    task = response.json()
    assert set(task) == TASK_FIELDS
    assert task["task_id"] == str(task_id)
    assert task["status"] == "deleted"
    assert task["finished_at"] is not None
    assert task["payload"] == {"keep": True}
    row = await row_of(pool, task_id)
    assert row["status"] == "deleted"
    assert row["finished_at"] == instant(task["finished_at"])
    assert (await row_of(pool, other))["status"] == "submitted"

    again = await client.delete(f"/task/{task_id}")
    assert again.status_code == 200, again.text
    assert again.json() == task  # same row, same finished_at: nothing rewritten
    assert await row_of(pool, task_id) == row
    assert (await client.get(f"/task/{task_id}")).json()["status"] == "deleted"


async def test_deleted_task_is_never_claimed(client: Client, pool: asyncpg.Pool) -> None:
    task_id = await submit(client, execution_time=PAST)
    assert (await client.delete(f"/task/{task_id}")).status_code == 200
    assert await claim_all(pool) == []
    assert (await row_of(pool, task_id))["status"] == "deleted"


async def test_delete_running_task_is_409_and_changes_nothing(
    client: Client, pool: asyncpg.Pool
) -> None:
    task_id = await submit(client, execution_time=PAST)
    assert await claim_all(pool) == [task_id]
    before = await table(pool)
    response = await client.delete(f"/task/{task_id}")
    error = assert_error(response, 409)
    assert set(error) == {"detail", "status"}
    assert error["status"] == "started_executing"
    assert await table(pool) == before


@pytest.mark.parametrize("outcome", [TaskStatus.DONE, TaskStatus.FAILED])
async def test_delete_finished_task_is_409(
    client: Client, pool: asyncpg.Pool, outcome: TaskStatus
) -> None:
    task_id = await submit(client, execution_time=PAST)
    assert await claim_all(pool) == [task_id]
    kind = "done" if outcome is TaskStatus.DONE else "fail"
    await queries.finish_many(pool, [queries.Finish(task_id, 1, kind)])
    before = await table(pool)
    error = assert_error(await client.delete(f"/task/{task_id}"), 409)
    assert error["status"] == outcome.value
    assert outcome.value in error["detail"]
    assert await table(pool) == before


async def test_delete_unknown_task_is_404(client: Client, pool: asyncpg.Pool) -> None:
    await submit(client)
    before = await table(pool)
    error = assert_error(await client.delete(f"/task/{uuid4()}"), 404)
    assert set(error) == {"detail"}
    assert await table(pool) == before


async def test_delete_non_uuid_is_400(client: Client, pool: asyncpg.Pool) -> None:
    await submit(client)
    before = await table(pool)
    assert_error(await client.delete("/task/not-a-uuid"), 400, "task_id")
    assert await table(pool) == before


# --- the rest ---------------------------------------------------------------------------------


async def test_health(client: Client) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_openapi_documents_post_task(client: Client) -> None:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200, response.text
    doc = response.json()
    assert {"post", "get"} <= set(doc["paths"]["/task"])
    assert {"get", "delete"} <= set(doc["paths"]["/task/{task_id}"])
    schema = doc["paths"]["/task"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    if "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    assert {"task_type", "execution_time", "delay", "payload"} <= set(schema["properties"])
    assert set(schema["required"]) == {"task_type"}  # no execution_time nor delay: due now
    time = schema["properties"]["execution_time"]
    assert "date-time" in {time.get("format"), *(s.get("format") for s in time.get("oneOf", []))}
    assert "201" in doc["paths"]["/task"]["post"]["responses"]
