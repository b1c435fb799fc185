"""When schedules fire (shared/schedule.py), with the DST policy of docs/schedules.md, across the
2027 transitions of Europe/Berlin (28 Mar, 31 Oct, at 01:00 UTC) and America/New_York (14 Mar at
07:00 UTC, 7 Nov at 06:00 UTC). Time is a parameter: nothing here reads the clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.schedule import (
    Cadence,
    ScheduleError,
    hour_is_wildcard,
    parse_cron,
    parse_interval,
    wall_to_utc,
    zone,
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def runs(cron: str, tz: str, after: datetime, count: int) -> list[datetime]:
    return Cadence(cron=cron, timezone=tz).next_runs(after, count)


# --- a fixed hour: a skipped time runs once at the end of the gap, a repeated one once, first ---


@pytest.mark.parametrize(
    ("tz", "after", "expected"),
    [
        # Berlin, spring: 02:30 does not exist on 28 Mar; the gap ends at 01:00 UTC (03:00 CEST).
        ("Europe/Berlin", utc(2027, 3, 27, 12), [utc(2027, 3, 28, 1), utc(2027, 3, 29, 0, 30)]),
        # Berlin, autumn: 02:30 happens twice on 31 Oct; the first is 00:30 UTC (CEST).
        (
            "Europe/Berlin",
            utc(2027, 10, 30, 12),
            [utc(2027, 10, 31, 0, 30), utc(2027, 11, 1, 1, 30)],
        ),
        # New York, spring: 02:30 does not exist on 14 Mar; the gap ends at 07:00 UTC.
        ("America/New_York", utc(2027, 3, 13, 12), [utc(2027, 3, 14, 7), utc(2027, 3, 15, 6, 30)]),
    ],
)
def test_a_fixed_hour_across_dst(tz: str, after: datetime, expected: list[datetime]) -> None:
    assert runs("0 30 2 * * *", tz, after, 2) == expected


def test_a_fixed_hour_that_repeats_in_new_york_runs_at_its_first_pass() -> None:
    # 01:00 happens twice on 7 Nov (EDT, then EST): once, at 05:00 UTC; the next day at 06:00.
    after = utc(2027, 11, 6, 12)
    assert runs("0 0 1 * * *", "America/New_York", after, 2) == [
        utc(2027, 11, 7, 5),
        utc(2027, 11, 8, 6),
    ]


def test_several_fixed_times_in_one_gap_run_once_at_its_end() -> None:
    # 02:00, 02:20 and 02:40 all fall in Berlin's gap: one run at its end, not three.
    after = utc(2027, 3, 27, 12)
    assert runs("0 0,20,40 2 * * *", "Europe/Berlin", after, 2) == [
        utc(2027, 3, 28, 1),
        utc(2027, 3, 29, 0),
    ]


# --- a step or `*` hour: every real instant that matches, both passes, nothing in a gap ---------


def every(start: datetime, step: timedelta, n: int) -> list[datetime]:
    return [start + i * step for i in range(n)]


@pytest.mark.parametrize(
    ("tz", "after", "expected"),
    [
        # Berlin spring: 01:45 CET (00:45 UTC), then 03:00 CEST (01:00 UTC): no 02:xx.
        (
            "Europe/Berlin",
            utc(2027, 3, 28, 0, 40),
            every(utc(2027, 3, 28, 0, 45), timedelta(minutes=15), 4),
        ),
        # Berlin autumn: 02:00-02:45 twice (00:00-00:45 and 01:00-01:45 UTC): every 15 real minutes.
        (
            "Europe/Berlin",
            utc(2027, 10, 30, 23, 50),
            every(utc(2027, 10, 31, 0), timedelta(minutes=15), 9),
        ),
        # New York spring and autumn.
        (
            "America/New_York",
            utc(2027, 3, 14, 6, 40),
            every(utc(2027, 3, 14, 6, 45), timedelta(minutes=15), 4),
        ),
        (
            "America/New_York",
            utc(2027, 11, 7, 4, 50),
            every(utc(2027, 11, 7, 5), timedelta(minutes=15), 9),
        ),
    ],
)
def test_a_step_hour_fires_at_every_real_instant(
    tz: str, after: datetime, expected: list[datetime]
) -> None:
    assert runs("0 */15 * * * *", tz, after, len(expected)) == expected


def test_the_repeated_hour_fires_twice_for_a_star_hour_and_once_for_a_fixed_one() -> None:
    after = utc(2027, 10, 30, 23)
    star = [r for r in runs("0 30 * * * *", "Europe/Berlin", after, 5) if r < utc(2027, 10, 31, 2)]
    assert star == [utc(2027, 10, 30, 23, 30), utc(2027, 10, 31, 0, 30), utc(2027, 10, 31, 1, 30)]
    assert runs("0 30 2 * * *", "Europe/Berlin", after, 1) == [utc(2027, 10, 31, 0, 30)]


# --- intervals count real time ------------------------------------------------------------------


def test_an_interval_counts_real_time_through_a_dst_change() -> None:
    anchor = utc(2027, 3, 27, 23)
    cadence = Cadence(interval_seconds=3600, timezone="Europe/Berlin", anchor=anchor)
    assert cadence.next_runs(anchor, 4) == every(utc(2027, 3, 28), timedelta(hours=1), 4)
    # From any instant: the next multiple of the interval after the anchor.
    assert cadence.next_runs(utc(2027, 3, 28, 5, 30), 1) == [utc(2027, 3, 28, 6)]
    assert cadence.next_runs(anchor - timedelta(days=1), 1) == [anchor]


def test_start_and_end_bound_the_runs() -> None:
    cadence = Cadence(cron="0 0 * * * *", start_at=utc(2030, 1, 1, 3), end_at=utc(2030, 1, 1, 5))
    assert cadence.next_runs(utc(2030, 1, 1), 10) == [
        utc(2030, 1, 1, 3),
        utc(2030, 1, 1, 4),
        utc(2030, 1, 1, 5),
    ]


def test_five_fields_put_the_minute_first_and_six_the_second() -> None:
    after = utc(2030, 1, 1)
    assert runs("30 9 * * *", "UTC", after, 1) == [utc(2030, 1, 1, 9, 30)]
    assert runs("30 9 * * * *", "UTC", after, 1) == [utc(2030, 1, 1, 0, 9, 30)]
    assert runs("0 0 9 * * 1-5", "UTC", utc(2030, 1, 4, 10), 1) == [utc(2030, 1, 7, 9)]  # Fri→Mon


def test_wall_to_utc_names_the_three_cases() -> None:
    berlin = zone("Europe/Berlin")
    assert wall_to_utc(datetime(2027, 6, 1, 12), berlin, every_instant=False) == [
        utc(2027, 6, 1, 10)
    ]
    assert wall_to_utc(datetime(2027, 3, 28, 2, 30), berlin, every_instant=True) == []
    assert wall_to_utc(datetime(2027, 10, 31, 2, 30), berlin, every_instant=True) == [
        utc(2027, 10, 31, 0, 30),
        utc(2027, 10, 31, 1, 30),
    ]


# --- bad input names its field ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "field", "words"),
    [
        (lambda: parse_cron("* * * *"), "cron", "4 fields"),
        (lambda: parse_cron("61 * * * *"), "cron", "Bad minute"),
        (lambda: parse_cron("0 0 30 2 *"), "cron", "day-of-month"),
        (lambda: parse_interval("P1M"), "interval", "months and years"),
        (lambda: parse_interval("PT0.5S"), "interval", "at least 1"),
        (lambda: parse_interval(0), "interval", "at least 1"),
        (lambda: parse_interval(True), "interval", "duration"),
        (lambda: parse_interval("P36501D"), "interval", "at most"),  # over 100 years
        (lambda: parse_interval("PT99999999999999999999H"), "interval", "at most"),  # no timedelta
        (lambda: parse_interval(1e300), "interval", "at most"),
        (lambda: zone("Mars/Olympus"), "timezone", "IANA"),
        (lambda: Cadence(cron="* * * * *", interval_seconds=5), "cron", "exactly one"),
        (
            lambda: Cadence(cron="* * * * *", start_at=utc(2030, 1, 2), end_at=utc(2030, 1, 1)),
            "end_at",
            "before start_at",
        ),
    ],
)
def test_bad_cadences_name_the_field(call: object, field: str, words: str) -> None:
    with pytest.raises(ScheduleError, match=words) as caught:
        call()  # type: ignore[operator]
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


def test_intervals_in_iso_8601_and_seconds() -> None:
    assert parse_interval("PT30S") == 30
    assert parse_interval("P1D") == 86400
    assert parse_interval("P1W") == 7 * 86400
    assert parse_interval("PT1H30M") == 5400
    assert parse_interval(90) == 90


def test_a_cadence_ends_near_the_end_of_the_year_9999() -> None:
    """Occurrences past what a datetime holds (the cron heap looks a little ahead, so its last
    day is the 30th, which is also the last the API accepts) end the cadence, with no error."""
    century = Cadence(interval_seconds=100 * 365 * 86400.0, anchor=utc(9950, 1, 1))
    assert century.next_runs(utc(9999, 1, 1), 5) == []
    assert Cadence(cron="0 0 0 * * *").next_runs(utc(9999, 12, 29), 5) == [utc(9999, 12, 30)]


def test_which_hours_fire_at_every_instant() -> None:
    assert hour_is_wildcard("0 */15 * * * *")
    assert hour_is_wildcard("15 * * * *")
    assert hour_is_wildcard("0 0 0-23/2 * * *")
    assert not hour_is_wildcard("0 30 2 * * *")
    assert not hour_is_wildcard("0 9,17 * * 1-5")
