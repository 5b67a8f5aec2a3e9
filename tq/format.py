"""How tq shows times, ages, counts, trends and errors: one rule each, shared by the
CLI and the console (and every log line that names an error).

Below everything else in tq (it imports nothing of tq), so `tq status` and the Queues
screen cannot disagree about what an age or a bar means:

- a moment is UTC, `YYYY-MM-DD HH:MM:SS` in full; a narrow column gives `now`
  and gets `HH:MM:SS` for today's moments, `MM-DD HH:MM` for others;
- an age is whole seconds below a minute, whole minutes below an hour, then
  hours and days to a tenth (45s, 12m, 3.5h, 2.0d): as wide as it needs, as
  precise as matters at that size;
- a sparkline has a baseline for nothing and seven bars above it, each an equal
  seventh of its scale, so any job at all shows at least the first bar;
- an error is its first line that says something, or its type's name.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime

BARS = "▁▂▃▄▅▆▇█"


def fmt_count(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def fmt_time(value: float | None, now: float | None = None) -> str:
    """A moment in UTC; given `now`, compact for a narrow column (the date only
    when it is not today's)."""
    if not value:
        return ""
    moment = datetime.fromtimestamp(value, UTC)
    if now is None:
        return moment.strftime("%Y-%m-%d %H:%M:%S")
    if moment.date() == datetime.fromtimestamp(now, UTC).date():
        return moment.strftime("%H:%M:%S")
    return moment.strftime("%m-%d %H:%M")


def fmt_times(values: Sequence[float | None], now: float | None = None) -> list[str]:
    """fmt_time of several moments shown together, to the millisecond when whole
    seconds would show two different moments as the same time."""
    plain = [fmt_time(v, now) for v in values]
    shown: dict[str, float] = {}
    clash = False
    for value, text in zip(values, plain):
        if value:
            clash = clash or (text in shown and shown[text] != value)
            shown.setdefault(text, value)
    if not clash:
        return plain
    # Only today's "HH:MM:SS" has seconds to refine; the milliseconds are floored
    # like the seconds, so 10:00:00.999 never reads 10:00:00.000.
    return [text + f".{int(value * 1000) % 1000:03d}" if value and len(text) == 8 else text
            for value, text in zip(values, plain)]


def fmt_age(seconds: float | None) -> str:
    """How long ago (or how long): 45s, 12m, 3.5h, 2.0d."""
    if seconds is None:
        return ""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def fmt_duration(start: float | None, end: float | None) -> str:
    """How long from start to end: 250ms below a second, then as fmt_age."""
    if not start or not end:
        return ""
    seconds = end - start
    return f"{seconds * 1000:.0f}ms" if seconds < 1 else fmt_age(seconds)


def bar(value: float | None, top: float) -> str:
    """The sparkline character for one value on the scale `top`; a space for an
    unknown value (no data, an outage)."""
    if value is None:
        return " "
    if value <= 0 or top <= 0:
        return BARS[0]
    steps = len(BARS) - 1
    # value * steps / top is exact when the true result is whole (the guard is for
    # a float scale), so a value of exactly 3/7 of the top is bar 3, not 4.
    return BARS[max(1, min(steps, math.ceil(value * steps / top - 1e-9)))]


def sparkline(values: Sequence[float | None], top: float | None = None) -> str:
    """One character per value, on the scale `top` (default: the largest value;
    a screen passes its own so bars of different rows compare)."""
    if top is None:
        top = max((v for v in values if v is not None), default=0)
    return "".join(bar(value, top) for value in values)


def first_line(error: BaseException | str, limit: int | None = None) -> str:
    """What an error says, in one line: its first line that is not blank (a server's
    reply or a chained message may run to many), at most `limit` characters. An
    exception that says nothing (or whose str() fails) is named by its type; a
    str that says nothing is ""."""
    if isinstance(error, BaseException):
        try:
            text = str(error)
        except Exception:
            text = ""
    else:
        text = error
    line = next((line.rstrip() for line in text.splitlines() if line.strip()), "")
    if not line and isinstance(error, BaseException):
        line = type(error).__name__
    return line if limit is None else line[:limit]
