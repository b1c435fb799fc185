"""The OpenAPI document says what the API does: schemathesis generates requests from it (valid
and invalid ones) against the app on a real database, with every check on.

Bounded: a fixed seed, 100 examples per operation, then a stateful run that follows the
links between operations (create, then read, change, delete the task it made).
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from litestar import Litestar

from api.app import create_app
from shared.settings import Settings

# The document does not depend on the database: made once, from an app that never connects.
schema = schemathesis.openapi.from_dict(
    create_app(Settings(), dsn="postgresql://unused@127.0.0.1:1/unused").openapi_schema.to_schema()
)
schema.config.seed = 1
schema.config.generation.update(max_examples=100, allow_x00=False)
# use_after_free expects a 404 after a DELETE; a deleted task still answers 200 with status
# "deleted" until the pruner removes it (soft delete, README): that is the contract.
schema.config.checks.update(excluded_check_names=["use_after_free"])

# The rules a JSON Schema cannot state, each refused with a message that names its field: a backoff
# cap below its base and an idempotency key in the body that differs from the header's (two
# fields each), a payload over 64 KiB once encoded (bytes, not items), and an integer written with
# a fraction (1.0: an integer to JSON Schema, a float to a JSON parser); and a schedule's cadence:
# cron syntax, an interval's ISO 8601 form, a time zone name, exactly one of cron and interval,
# an end before the start; a change whose every field is a null policy field (nothing to change);
# a delay beside an execution_time, or not an ISO 8601 duration of fixed length.
_UNSTATED = (
    b"backoff_cap_seconds: ",
    b"differs from the Idempotency-Key header",
    b'"field":"payload"',
    b"got `float`",
    b'"field":"cron"',
    b'"field":"interval"',
    b'"field":"timezone"',
    b'"field":"end_at"',
    b"names nothing to change",
    b"delay: ",
)


@schema.hook
def filter_failure(
    ctx: object, failure: object, case: schemathesis.Case, response: schemathesis.Response
) -> bool:
    """Keep every failure but a valid-by-the-document request refused for one of _UNSTATED."""
    from schemathesis.openapi.checks import RejectedPositiveData

    refused = isinstance(failure, RejectedPositiveData) and response.status_code in (400, 413)
    return not (refused and any(rule in response.content for rule in _UNSTATED))


SETTINGS = settings(
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture
def app(dsn: str) -> Iterator[Litestar]:
    app = create_app(Settings(), dsn=dsn)
    yield app
    # schemathesis keeps the app's lifespan (its pool) open until told: close it before the
    # test's database is dropped.
    schemathesis.python.asgi.shutdown_lifespans()


@schema.parametrize()
@SETTINGS
def test_every_operation_does_what_the_document_says(
    case: schemathesis.Case, app: Litestar
) -> None:
    case.call_and_validate(app=app)


def test_a_sequence_of_operations_does_what_the_document_says(app: Litestar, dsn: str) -> None:
    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, object]:
            return {"app": app}

        def teardown(self) -> None:
            # Each sequence starts from an empty table, or a replay would meet what an earlier
            # one left (hypothesis requires the same draws to give the same run).
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("TRUNCATE tasks, task_batches, schedules")

    Workflow.run(
        settings=settings(SETTINGS, max_examples=40, phases=[Phase.generate], stateful_step_count=6)
    )
