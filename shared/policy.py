"""The failure policy, defined once: its six fields, their bounds, and how a policy is resolved.

A policy says what happens when an attempt fails, times out or is lost. The settings give every
field (DUETIME_MAX_ATTEMPTS, …); a task type's `@task(...)` may name some; a request (or a
schedule) may name some more. `resolve` lays what was asked over what is beneath and checks the
result; the API and the scheduler both use it, and Settings, `@task`, the request bodies and the
rows all take their fields and bounds from here.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any

import msgspec

YEAR_SECONDS = 365 * 86400
MAX_ATTEMPTS = 1000

# The bounds of each field, as types the settings, the request schemas and check() share.
Attempts = Annotated[int, msgspec.Meta(ge=1, le=MAX_ATTEMPTS)]
Seconds = Annotated[float, msgspec.Meta(ge=0, le=YEAR_SECONDS)]
Timeout = Annotated[float, msgspec.Meta(gt=0, le=YEAR_SECONDS)]


class Backoff(enum.StrEnum):
    """How long to wait before a retry: base; base x retry number; base x 2^(retry number - 1).
    Linear and exponential draw uniformly from 0 to that (full jitter); all are capped."""

    FIXED = "fixed"
    LINEAR = "linear"
    EXPONENTIAL = "exponential"


class PolicyError(ValueError):
    """A policy field out of its bounds; the message starts with the field's name."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class TaskPolicy(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """A failure policy. A field left None takes the value of the policy beneath it: the
    request's over the task type's over the settings'."""

    max_attempts: int | None = None
    backoff: Backoff | None = None
    backoff_base_seconds: float | None = None
    backoff_cap_seconds: float | None = None
    retry_on_loss: bool | None = None
    timeout_seconds: float | None = None

    def over(self, beneath: TaskPolicy) -> TaskPolicy:
        """This policy, with the fields it leaves None taken from `beneath`."""
        return TaskPolicy(
            **{
                name: getattr(beneath, name) if getattr(self, name) is None else getattr(self, name)
                for name in FIELDS
            }
        )

    def resolve(self, beneath: TaskPolicy) -> TaskPolicy:
        """over(), and a cap this policy does not name rises to a larger base: only a cap named
        here below the base is a mistake, left for check() to report."""
        policy = self.over(beneath)
        base, cap = policy.backoff_base_seconds, policy.backoff_cap_seconds
        if self.backoff_cap_seconds is None and base is not None and cap is not None and cap < base:
            policy = msgspec.structs.replace(policy, backoff_cap_seconds=base)
        return policy

    @classmethod
    def of_row(cls, row: Any) -> TaskPolicy:
        """The policy a row holds in its policy columns (a task's, a schedule's)."""
        fields = {name: row[name] for name in FIELDS}
        return cls(**{**fields, "backoff": Backoff(fields["backoff"])})

    @property
    def values(self) -> tuple[Any, ...]:
        """The fields in their order."""
        return tuple(getattr(self, name) for name in FIELDS)

    @property
    def columns(self) -> tuple[Any, ...]:
        """The fields in their order as the tables' policy columns take them (backoff as text)."""
        return tuple(str(v) if isinstance(v, Backoff) else v for v in self.values)


FIELDS: tuple[str, ...] = TaskPolicy.__struct_fields__
_NONE = (None,) * len(FIELDS)


def asked_of(source: object) -> TaskPolicy:
    """The policy fields of anything that has them (a request body, a schedule, the settings)."""
    return TaskPolicy(**{name: getattr(source, name) for name in FIELDS})


def names_any(source: object) -> bool:
    """Whether `source` names any policy field (if not, the policy beneath applies as it is)."""
    return tuple(getattr(source, name) for name in FIELDS) != _NONE


def check(policy: TaskPolicy) -> None:
    """The bounds of each field (None is always fine); PolicyError naming the field."""
    if policy.max_attempts is not None and not 1 <= policy.max_attempts <= MAX_ATTEMPTS:
        raise PolicyError("max_attempts", f"must be 1 to {MAX_ATTEMPTS}, got {policy.max_attempts}")
    for field in ("backoff_base_seconds", "backoff_cap_seconds", "timeout_seconds"):
        value = getattr(policy, field)
        if value is not None and not 0 <= value <= YEAR_SECONDS:
            raise PolicyError(field, f"must be 0 to 1 year of seconds, got {value}")
    if policy.timeout_seconds == 0:
        raise PolicyError("timeout_seconds", "must be more than 0")
    base, cap = policy.backoff_base_seconds, policy.backoff_cap_seconds
    if base is not None and cap is not None and cap < base:
        raise PolicyError("backoff_cap_seconds", f"{cap} is below backoff_base_seconds {base}")


def resolve(asked: TaskPolicy, beneath: TaskPolicy) -> TaskPolicy:
    """`asked` over `beneath` (a complete policy), checked: the policy a task is inserted with."""
    policy = asked.resolve(beneath)
    check(policy)
    return policy
