"""Periodic schedules: `@every 30s` intervals and five-field crontab lines.

A schedule turns wall-clock time into numbered ticks. Every consumer running
the scheduler computes the same tick for the same moment, and the queue
backend lets exactly one of them claim it, so a periodic run is enqueued once
however many machines run the scheduler.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from huey import crontab

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Schedule:
    text: str
    every: float | None = None  # seconds, for @every
    cron: object = None  # huey's crontab validator

    def tick_at(self, now: float) -> int | None:
        """The tick due at `now` (epoch seconds), or None if no tick is due this second."""
        if self.every is not None:
            return int(now // self.every)
        minute = datetime.fromtimestamp(now, timezone.utc).replace(second=0, microsecond=0,
                                                                 tzinfo=None)
        return int(minute.timestamp() // 60) if self.cron(minute) else None

    def tick_time(self, tick: int) -> float:
        return tick * self.every if self.every is not None else tick * 60.0

    def next_run(self, now: float | None = None) -> float | None:
        """Epoch seconds of the next tick after `now` (None if none within a year)."""
        now = time.time() if now is None else now
        if self.every is not None:
            return (int(now // self.every) + 1) * self.every
        minute = datetime.fromtimestamp(now, timezone.utc).replace(second=0, microsecond=0,
                                                                 tzinfo=None)
        for _ in range(366 * 24 * 60):
            minute += timedelta(minutes=1)
            if self.cron(minute):
                return minute.replace(tzinfo=timezone.utc).timestamp()
        return None


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
    except (ValueError, TypeError) as exc:
        raise ValueError(f"schedule {text!r}: {exc}") from None
    return Schedule(text, cron=cron)
