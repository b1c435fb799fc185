"""The failure policy is defined once (shared/policy.py): every place that takes its fields takes
the same fields with the same bounds."""

from __future__ import annotations

import msgspec
import pytest

from api.schemas import TaskItem
from shared import policy
from shared.policy import MAX_ATTEMPTS, YEAR_SECONDS, PolicyError, TaskPolicy
from shared.settings import Settings

PLACES = [Settings, TaskItem, TaskPolicy]
TOO_FAR = [
    ("max_attempts", 0),
    ("max_attempts", MAX_ATTEMPTS + 1),
    ("backoff_base_seconds", -1.0),
    ("backoff_cap_seconds", YEAR_SECONDS + 1.0),
    ("timeout_seconds", 0.0),
    ("timeout_seconds", YEAR_SECONDS + 1.0),
    ("backoff", "sometimes"),
]


@pytest.mark.parametrize("place", PLACES, ids=lambda p: p.__name__)
def test_every_place_has_the_six_fields(place: type) -> None:
    assert set(policy.FIELDS) <= set(place.__struct_fields__)


@pytest.mark.parametrize(("field", "value"), TOO_FAR)
def test_one_bound_everywhere(field: str, value: object) -> None:
    required = {"task_type": "noop", "execution_time": "2030-01-01T00:00:00Z"}
    with pytest.raises(msgspec.ValidationError, match=field):
        msgspec.convert({field: value}, Settings)
    with pytest.raises(msgspec.ValidationError, match=field):
        msgspec.convert({**required, field: value}, TaskItem)
    if field != "backoff":  # a TaskPolicy holds a Backoff; check() guards the numbers
        with pytest.raises(PolicyError, match=f"^{field}: ") as caught:
            policy.check(TaskPolicy(**{field: value}))  # type: ignore[arg-type]
        assert caught.value.field == field


def test_resolve_lays_the_asked_over_what_is_beneath_and_checks_it() -> None:
    beneath = Settings().policy()
    asked = TaskPolicy(max_attempts=4, backoff_base_seconds=600.0)
    resolved = policy.resolve(asked, beneath)
    assert resolved.max_attempts == 4
    assert resolved.backoff_cap_seconds == 600.0  # an inherited cap rises to the base
    assert resolved.timeout_seconds == beneath.timeout_seconds
    assert None not in resolved.values
    with pytest.raises(PolicyError, match="backoff_cap_seconds"):
        policy.resolve(TaskPolicy(backoff_base_seconds=60.0, backoff_cap_seconds=1.0), beneath)


def test_names_any_and_asked_of_read_the_fields_of_anything() -> None:
    item = msgspec.convert(
        {"task_type": "noop", "execution_time": "2030-01-01T00:00:00Z"}, TaskItem
    )
    assert not policy.names_any(item)
    item = msgspec.structs.replace(item, retry_on_loss=True)
    assert policy.names_any(item)
    assert policy.asked_of(item) == TaskPolicy(retry_on_loss=True)
