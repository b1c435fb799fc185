"""When a recurring schedule fires: a cron expression in a time zone's wall time, or an interval.

cronsim enumerates the wall-clock times a cron expression matches (6 fields: seconds first, as
"0 0 9 * * 1-5"; or the classic 5, minute first). `wall_to_utc` is the one step from a wall time
to the instants it stands for, and so the one place the DST policy lives (docs/schedules.md):

- a wall time that exists once is that instant;
- a wall time in a gap (spring forward) does not exist: an expression with a fixed hour runs once,
  at the first instant after the gap; one whose hour field is `*` or a step fires only at real
  instants, so not for the gap's times;
- a wall time that occurs twice (fall back): a fixed hour runs once, at the first; `*` or a step
  hour fires at both.

That is the rule of Debian's cron. An interval counts real elapsed time from its anchor (the
schedule's start), whatever the wall clock does.
"""

from __future__ import annotations

import heapq
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

MIN_INTERVAL_SECONDS = 1.0
MAX_DURATION_SECONDS = 100 * 365 * 86400.0  # an interval or a delay: 100 years at most
# No zone's wall clock jumps by more than this at once (the largest DST shift is 2 h): a wall time
# maps to an instant at most this far from its neighbours', which bounds the reordering below.
MAX_SHIFT = timedelta(hours=3)
_DURATION = re.compile(
    r"^P(?!$)(?:(?P<weeks>\d+(?:\.\d+)?)W)?(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?!$)(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


class ScheduleError(ValueError):
    """A cadence that cannot be used; the message starts with the field's name."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def parse_cron(expression: str) -> str:
    """The expression, normalised to single spaces, if cronsim accepts it with 5 or 6 fields."""
    fields = expression.split()
    if len(fields) not in (5, 6):
        raise ScheduleError(
            "cron",
            f"{expression!r} has {len(fields)} fields; 5 (minute hour day month weekday) "
            "or 6 (second first) are accepted",
        )
    normal = " ".join(fields)
    try:
        CronSim(normal, datetime(2000, 1, 1))
    except CronSimError as exc:
        raise ScheduleError("cron", f"{expression!r}: {exc}") from None
    return normal


def parse_interval(value: str | float) -> float:
    """Seconds, from an ISO 8601 duration ("PT30S", "P1D", "P1W"; no months or years, which
    have no fixed length) or a number of seconds; at least 1."""
    return parse_duration(value, "interval", MIN_INTERVAL_SECONDS, MAX_DURATION_SECONDS)


def parse_duration(value: str | float, field: str, least: float, most: float) -> float:
    """Seconds from `least` to `most`, from an ISO 8601 duration of weeks, days, hours, minutes
    and seconds or a number of seconds; ScheduleError naming `field` if not."""
    if isinstance(value, bool):
        raise ScheduleError(field, "must be an ISO 8601 duration or a number of seconds")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(value.strip().upper())
        if match is None:
            raise ScheduleError(
                field,
                f"{value!r} is not an ISO 8601 duration of weeks, days, hours, minutes and "
                "seconds (as PT30S, PT1H30M, P1D); months and years have no fixed length",
            )
        parts = {name: float(v) for name, v in match.groupdict().items() if v is not None}
        try:
            seconds = timedelta(**parts).total_seconds()
        except OverflowError:
            seconds = math.inf
    if not seconds >= least:
        raise ScheduleError(field, f"must be at least {least:g} s, got {value!r}")
    if not seconds <= most:
        raise ScheduleError(field, f"must be at most {most:g} s, got {value!r}")
    return seconds


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError("timezone", f"{name!r} is not an IANA time zone name") from None


def hour_is_wildcard(expression: str) -> bool:
    """Whether the hour field is `*` or a step: such expressions fire at every real instant that
    matches (both passes through a repeated hour, none in a skipped one)."""
    fields = expression.split()
    hour = fields[2] if len(fields) == 6 else fields[1]
    return "*" in hour or "/" in hour


def wall_to_utc(wall: datetime, tz: ZoneInfo, *, every_instant: bool) -> list[datetime]:
    """The instants (UTC) that wall-clock time `wall` (naive) in `tz` stands for, by the DST
    policy in the module's docstring; `every_instant`: the expression's hour is `*` or a step."""
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if first == second:
        return [first]
    if first.astimezone(tz).replace(tzinfo=None) != wall:  # in a gap: never on the clock
        return [] if every_instant else [_gap_end(second, first, tz)]
    return [first, second] if every_instant else [first]  # twice: fold 0 is the earlier


def _gap_end(before: datetime, after: datetime, tz: ZoneInfo) -> datetime:
    """The transition instant between `before` (still the old offset) and `after` (the new one):
    the first instant after the gap (zones change offset on a whole second)."""
    offset = before.astimezone(tz).utcoffset()
    low, high = int(before.timestamp()), math.ceil(after.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, tz).utcoffset() == offset:
            low = middle
        else:
            high = middle
    return datetime.fromtimestamp(high, UTC)


@dataclass(frozen=True)
class Cadence:
    """A cron expression in a zone, or an interval from an anchor; bounded by start and end."""

    cron: str | None = None
    interval_seconds: float | None = None
    timezone: str = "UTC"
    anchor: datetime | None = None  # intervals count from here (the start, else the creation)
    start_at: datetime | None = None
    end_at: datetime | None = None

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.interval_seconds is None):
            raise ScheduleError("cron", "give exactly one of cron and interval")
        if self.interval_seconds is not None and self.anchor is None:
            raise ScheduleError("interval", "an interval needs an anchor")
        if self.start_at and self.end_at and self.end_at < self.start_at:
            raise ScheduleError("end_at", f"{self.end_at.isoformat()} is before start_at")

    @classmethod
    def of_row(cls, row: Any) -> Cadence:
        """A schedules row's cadence (intervals count from start_at, else from its anchor: when
        it was made)."""
        return cls(
            cron=row["cron"],
            interval_seconds=row["interval_seconds"],
            timezone=row["timezone"],
            anchor=row["start_at"] or row["anchor"],
            start_at=row["start_at"],
            end_at=row["end_at"],
        )

    def after(self, instant: datetime) -> Iterator[datetime]:
        """The occurrences strictly after `instant`, in order, within start and end (UTC)."""
        since = instant if self.start_at is None else max(instant, self.start_at - _TICK)
        found = self._cron_after(since) if self.cron is not None else self._interval_after(since)
        try:
            for occurrence in found:
                if self.end_at is not None and occurrence > self.end_at:
                    return
                yield occurrence
        except OverflowError:  # past the year 9999: there are no more
            return

    def next_runs(self, instant: datetime, count: int) -> list[datetime]:
        runs: list[datetime] = []
        for occurrence in self.after(instant):
            runs.append(occurrence)
            if len(runs) == count:
                break
        return runs

    def _interval_after(self, instant: datetime) -> Iterator[datetime]:
        assert self.anchor is not None
        assert self.interval_seconds is not None
        step = timedelta(seconds=self.interval_seconds)
        n = 0 if instant < self.anchor else int((instant - self.anchor) / step) + 1
        while True:
            occurrence = self.anchor + n * step
            if occurrence > instant:
                yield occurrence
            n += 1

    def _cron_after(self, instant: datetime) -> Iterator[datetime]:
        """Wall times from cronsim, each mapped by wall_to_utc. A mapped instant can come later
        than the next wall time's (a repeated hour's second pass; a gap's end), at most by
        MAX_SHIFT: a heap holds each until no later wall time can map before it."""
        assert self.cron is not None
        tz = zone(self.timezone)
        every_instant = hour_is_wildcard(self.cron)
        start = (instant - MAX_SHIFT).astimezone(tz).replace(tzinfo=None)
        pending: list[datetime] = []
        last: datetime | None = None
        for wall in CronSim(self.cron, start):
            for occurrence in wall_to_utc(wall, tz, every_instant=every_instant):
                if occurrence > instant:
                    heapq.heappush(pending, occurrence)
            horizon = wall.replace(tzinfo=tz).astimezone(UTC) - MAX_SHIFT
            while pending and pending[0] <= horizon:
                occurrence = heapq.heappop(pending)
                if occurrence != last:  # fixed times in one gap all map to its end: once
                    last = occurrence
                    yield occurrence


_TICK = timedelta(microseconds=1)


@dataclass(frozen=True)
class Plan:
    """What one scheduler pass does with a schedule: the occurrences to make tasks of now, and
    the next occurrence it leaves for a later pass (None: the schedule has no more)."""

    occurrences: list[datetime]
    next_at: datetime | None


def plan(
    cadence: Cadence,
    next_at: datetime,
    now: datetime,
    *,
    horizon: float,
    overlap: str = "allow",
    catch_up: str = "latest",
    catch_up_limit: int = 100,
    most: int = 1000,
) -> Plan:
    """The occurrences from `next_at` (the first not yet made) up to `now` + `horizon`.

    Those before `now` were missed (the fleet was down, the schedule paused): `catch_up` keeps
    the latest of them, the last `catch_up_limit`, or none. With overlap 'skip' an occurrence is
    made only once it is due (its predecessor's state is known then), one per pass. At most
    `most` occurrences are considered per pass; the rest are the next pass's.
    """
    until = now + timedelta(seconds=horizon) if overlap == "allow" else now
    considered: list[datetime] = []
    following: datetime | None = None
    for occurrence in cadence.after(next_at - _TICK):
        if occurrence > until or len(considered) == most:
            following = occurrence
            break
        considered.append(occurrence)
    missed = [o for o in considered if o < now]
    upcoming = [o for o in considered if o >= now]
    if catch_up == "none":
        kept: list[datetime] = []
    elif catch_up == "all":
        kept = missed[-catch_up_limit:]
    else:
        kept = missed[-1:]
    chosen = kept + upcoming
    if overlap == "skip":
        chosen = chosen[-1:]  # the latest due one; its predecessors are past
    return Plan(chosen, following)
