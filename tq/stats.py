"""How it is going, read from the summaries only (for `tq stats`, see tq.cli.stats).

Both read the per-minute summary tables (tq.summaries), never the raw job
history, so they cost the same on a day-old install and on a year of history.
They show what the last roll-up saw (at most `[history] rollup_every` old).
"""
from __future__ import annotations

import time
from collections import Counter
from typing import Any

from tq.summaries import COUNTS, EventMinute, TaskMinute, load_histogram, percentile

SLOTS = 24  # trend points across the window (a sparkline: tq.format)


def _slot(minute: int, since: float, now: float, slots: int) -> int:
    width = max(now - since, 60.0) / slots
    return min(slots - 1, max(0, int((minute - since) // width)))


def task_stats(runtime, since: float, now: float | None = None, by: str = "task",
               slots: int = SLOTS) -> list[dict[str, Any]]:
    """Per task (or queue) over [since, now]: counts, throughput, failure rate,
    run and wait percentiles (merged histograms), and a series of finished jobs."""
    now = time.time() if now is None else now
    runtime.history_db()  # binds the history models to it
    groups: dict[tuple[str, ...], dict[str, Any]] = {}
    query = TaskMinute.select().where((TaskMinute.minute >= since // 60 * 60)
                                      & (TaskMinute.minute <= now))
    for row in query.dicts().iterator():
        key: tuple[str, ...] = (row["queue"],) if by == "queue" else (row["queue"], row["task"])
        group = groups.get(key)
        if group is None:
            group = groups[key] = {"counts": Counter(), "run": Counter(), "wait": Counter(),
                                   "run_max": None, "wait_max": None, "series": [0] * slots}
        group["counts"].update({name: row[name] for name in COUNTS})
        for kind in ("run", "wait"):
            group[kind].update(load_histogram(row[f"{kind}_hist"]))
            if row[f"{kind}_max"] is not None:
                group[f"{kind}_max"] = max(group[f"{kind}_max"] or 0.0, row[f"{kind}_max"])
        group["series"][_slot(row["minute"], since, now, slots)] += (
            row["succeeded"] + row["failed"])
    minutes = max((now - since) / 60, 1 / 60)
    result = []
    for key, group in groups.items():
        counts = group["counts"]
        done = counts["succeeded"] + counts["failed"]
        entry: dict[str, Any] = {"queue": key[0]}
        if by == "task":
            entry["task"] = key[1]
        entry.update({name: counts[name] for name in COUNTS})
        entry["per_minute"] = round(done / minutes, 3)
        entry["failure_rate"] = round(counts["failed"] / done, 4) if done else None
        for kind in ("run", "wait"):
            entry[f"{kind}_p50"] = percentile(group[kind], 0.50, group[f"{kind}_max"])
            entry[f"{kind}_p95"] = percentile(group[kind], 0.95, group[f"{kind}_max"])
            entry[f"{kind}_max"] = group[f"{kind}_max"]
        entry["series"] = group["series"]
        result.append(entry)
    return sorted(result, key=lambda e: (-(e["succeeded"] + e["failed"]), e["queue"],
                                         e.get("task", "")))


def event_stats(runtime, since: float, now: float | None = None,
                slots: int = SLOTS) -> list[dict[str, Any]]:
    now = time.time() if now is None else now
    runtime.history_db()  # binds the history models to it
    groups: dict[str, dict[str, Any]] = {}
    query = EventMinute.select().where((EventMinute.minute >= since // 60 * 60)
                                       & (EventMinute.minute <= now))
    for row in query.dicts().iterator():
        group = groups.setdefault(row["type"], {"type": row["type"], "count": 0,
                                                "first_seen": row["first_seen"],
                                                "last_seen": row["last_seen"],
                                                "series": [0] * slots})
        group["count"] += row["count"]
        group["first_seen"] = min(group["first_seen"], row["first_seen"])
        group["last_seen"] = max(group["last_seen"], row["last_seen"])
        group["series"][_slot(row["minute"], since, now, slots)] += row["count"]
    minutes = max((now - since) / 60, 1 / 60)
    for group in groups.values():
        group["per_minute"] = round(group["count"] / minutes, 3)
    return sorted(groups.values(), key=lambda g: (-g["count"], g["type"]))


__all__ = ["task_stats", "event_stats"]
