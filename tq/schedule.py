"""Periodic schedules: `@every 30s` intervals and five-field crontab lines.

A schedule turns wall-clock time into numbered ticks. Every consumer running
the scheduler computes the same tick for the same moment, and the queue
backend lets exactly one of them claim it, so a periodic run is enqueued once
however many machines run the scheduler.

Crontab lines are read in UTC and have one parser, huey's `crontab`: it
decides which minutes fire (tick_at). The next run shown to an operator is
found by croniter, fed the very values huey's crontab matches in each field
(never the raw text), so the two cannot disagree about ranges, wrap-arounds
or steps; and with day_or=False, because huey requires the day of month AND
the day of week to match where Vixie cron accepts either.
"""
from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from croniter import CroniterBadDateError, croniter
from huey import crontab

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

# One probe moment per value of each field, in huey's argument order
# (minute, hour, day, month, day_of_week; 2000-01-02 was a Sunday, huey's 0).
_PROBES: tuple[tuple[str, list[tuple[int, datetime]]], ...] = (
    ("minute", [(v, datetime(2000, 1, 1, 0, v)) for v in range(60)]),
    ("hour", [(v, datetime(2000, 1, 1, v)) for v in range(24)]),
    ("day", [(v, datetime(2000, 1, v)) for v in range(1, 32)]),
    ("month", [(v, datetime(2000, v, 1)) for v in range(1, 13)]),
    ("day_of_week", [(v, datetime(2000, 1, 2 + v)) for v in range(7)]),
)


@dataclass(frozen=True)
class Schedule:
    """One schedule, as parse_schedule builds it: `every` set, or `cron` and `cron_values`."""

    text: str
    every: float | None = None  # seconds, for @every
    cron: Callable[[datetime], bool] | None = None  # huey's crontab matcher (naive UTC minute)
    cron_values: str = ""  # the same minutes as croniter's explicit lists, for next_run

    def tick_at(self, now: float) -> int | None:
        """The tick due at `now` (epoch seconds), or None if no tick is due this second."""
        if self.every is not None:
            return int(now // self.every)
        assert self.cron is not None  # parse_schedule sets one of every and cron
        minute = datetime.fromtimestamp(now, UTC).replace(second=0, microsecond=0,
                                                                 tzinfo=None)
        return int(minute.timestamp() // 60) if self.cron(minute) else None

    def next_run(self, now: float | None = None) -> float | None:
        """Epoch seconds of the next tick after `now`'s minute (None if it can never
        fire, such as `0 0 31 2 *`: huey accepts it, and it never matches)."""
        now = time.time() if now is None else now
        if self.every is not None:
            return (int(now // self.every) + 1) * self.every
        start = datetime.fromtimestamp(now, UTC)
        try:
            found = croniter(self.cron_values, start, day_or=False).get_next(datetime)
        except CroniterBadDateError:  # no match within croniter's search (50 years)
            return None
        return float(found.timestamp())


def parse_schedule(text: str) -> Schedule:
    text = " ".join(text.split())
    match = re.fullmatch(r"@every (\d+(?:\.\d+)?)([smhd])", text)
    if match:
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
        if seconds < 1:
            raise ValueError("an @every interval must be at least 1s")
        return Schedule(text, every=seconds)
    fields = text.split(" ")
    if len(fields) != 5:
        raise ValueError(f"schedule {text!r}: expected '@every 30s' or five crontab fields")
    try:
        cron = crontab(*fields, strict=True)
        values = [_values(name, probes, field) for (name, probes), field in zip(_PROBES, fields)]
    except (ValueError, TypeError) as exc:
        raise ValueError(f"schedule {text!r}: {exc}") from None
    return Schedule(text, cron=cron, cron_values=" ".join(values))


def _values(name: str, probes: list[tuple[int, datetime]], field: str) -> str:
    """The values of one field that huey's crontab matches, as a croniter list."""
    matches = crontab(**{name: field}, strict=True)
    values = [value for value, moment in probes if matches(moment)]
    return "*" if len(values) == len(probes) else ",".join(map(str, values))
