"""Schedules: the next run an operator is shown is the minute huey's crontab fires.

tq fires a crontab tick when huey's `crontab` matches the minute (tick_at) and
shows the next run from croniter; these tests hold the two to the same answer,
judged by walking huey's own matcher, with time passed in (never the clock).
"""
from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta

import pytest
from huey import crontab

from tq.schedule import parse_schedule


def at(*fields: int) -> float:
    """Epoch seconds of a UTC moment: at(2028, 2, 29) or at(2026, 12, 2, 8, 7, 30)."""
    return float(calendar.timegm((*fields, 0, 0, 0)[:6]))


def huey_next(text: str, now: float, years: int = 30) -> float | None:
    """The first minute after `now`'s minute that huey's crontab matches: days are
    walked first (a day huey's day/month/weekday fields reject has no match), then
    the minutes of a matching day, each judged by the full crontab."""
    minute, hour, day, month, weekday = text.split()
    fires = crontab(minute, hour, day, month, weekday, strict=True)
    day_fits = crontab(day=day, month=month, day_of_week=weekday, strict=True)
    start = datetime.fromtimestamp(now, UTC).replace(second=0, tzinfo=None)
    first = start + timedelta(minutes=1)
    date = first.replace(hour=0, minute=0)
    while date.year <= start.year + years:
        if day_fits(date):
            candidate = max(date, first)
            while candidate.date() == date.date():
                if fires(candidate):
                    return candidate.replace(tzinfo=UTC).timestamp()
                candidate += timedelta(minutes=1)
        date += timedelta(days=1)
    return None


EXPRESSIONS = [
    "0 0 29 2 *",          # leap day: more than a year away from most moments
    "*/15 * * * *",        # steps
    "0 9-17 * * 1-5",      # ranges, weekdays
    "5,35 8,20 * * *",     # lists
    "0 0 13 * 5",          # day of month and day of week together (huey: both must match)
    "0 12 1,15 * 1",       # the same, with a list
    "0-10/5 */6 1-7 * 1",  # first Monday of the month, by huey's rule
    "0 22-2 * * *",        # huey's wrap-around range (22, 23, 0, 1, 2)
    "0 12 * * 5-1",        # wrap-around weekdays (Fri, Sat, Sun, Mon)
    "30 0 1 */3 *",        # every third month
    "0 0 31 * *",          # months without a 31st are skipped
    "59 23 31 12 *",       # the last minute of the year
    "0 0 * * 7",           # 7 is Sunday too
    "0 0 29 2 1",          # a leap day on a Monday: 2044 from 2026
    "* * * * *",
]
MOMENTS = [
    at(2026, 12, 2, 8, 0),      # on a minute
    at(2026, 12, 2, 8, 7, 30),  # inside a minute
    at(2026, 12, 31, 23, 59, 30),
    at(2028, 2, 28, 23, 59, 59),
    at(2027, 3, 28, 1, 30),     # a DST change in Europe: nothing moves in UTC
]


@pytest.mark.parametrize("text", EXPRESSIONS)
def test_next_run_is_the_minute_huey_fires(text):
    schedule = parse_schedule(text)
    for now in MOMENTS:
        expected = huey_next(text, now)
        assert schedule.next_run(now) == expected, (text, now)
        # ... and the scheduler's tick_at fires in that minute.
        assert expected is not None and schedule.tick_at(expected + 30) is not None


def test_leap_day_is_found_years_ahead():
    """`0 0 29 2 *` was reported as "none within a year" after a 1 s walk."""
    assert parse_schedule("0 0 29 2 *").next_run(at(2026, 12, 2, 8, 0)) == at(2028, 2, 29)


def test_day_of_month_and_week_both_must_match_as_in_huey():
    """Vixie cron runs `0 0 13 * 5` on every 13th and every Friday; huey runs it
    only on a Friday the 13th, and tq shows what huey does."""
    schedule = parse_schedule("0 0 13 * 5")
    now = at(2026, 12, 2, 8, 0)
    assert schedule.tick_at(at(2026, 12, 4)) is None      # a Friday, not the 13th
    assert schedule.tick_at(at(2026, 12, 13)) is None     # the 13th, a Sunday
    assert schedule.next_run(now) == at(2027, 8, 13)      # the next Friday the 13th
    assert schedule.tick_at(at(2027, 8, 13)) is not None


def test_a_schedule_that_never_fires_has_no_next_run():
    schedule = parse_schedule("0 0 31 2 *")  # huey accepts it; February has no 31st
    assert schedule.next_run(at(2026, 12, 2)) is None
    assert huey_next("0 0 31 2 *", at(2026, 12, 2), years=8) is None


def test_every_interval_next_run_and_ticks():
    schedule = parse_schedule("@every 30s")
    assert schedule.next_run(at(2026, 12, 2, 8, 0, 10)) == at(2026, 12, 2, 8, 0, 30)
    assert schedule.tick_at(at(2026, 12, 2, 8, 0, 10)) == schedule.tick_at(at(2026, 12, 2, 8, 0, 29))


@pytest.mark.parametrize("text", ["0 0 * * */2", "5/15 * * * *", "61 * * * *", "0 0 * *",
                                  "@every 0.5s", "0 0 * * mon"])
def test_bad_schedules_are_refused(text):
    with pytest.raises(ValueError):
        parse_schedule(text)
