"""How tq shows times, ages and trends: one rule, used by the CLI and the console.

Below both (imports nothing of tq but tq.text), so `tq jobs` and the Jobs screen
cannot disagree about what "1.5m ago" means.
"""
from __future__ import annotations

from datetime import UTC, datetime


def fmt_time(value: float | None) -> str:
    if not value:
        return ""
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S")


def fmt_age(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = float(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.1f}s"
