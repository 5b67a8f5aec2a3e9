"""`tq stats` and `tq metrics`: how it is going, read from the summaries only.

Both read the per-minute summary tables (tq.summaries), never the raw job
history, so they cost the same on a day-old install and on a year of history.
They show what the last roll-up saw (at most `[history] rollup_every` old).
"""
from __future__ import annotations

import math
import time
from collections import Counter
from typing import Any

from tq.summaries import COUNTS, EventMinute, TaskMinute, load_histogram, percentile

BY_CHOICES = ("task", "queue", "type")
SPARK = "▁▂▃▄▅▆▇█"
SLOTS = 24  # sparkline points across the window


def sparkline(values: list[int]) -> str:
    """One character per value, scaled to the largest; zero is the lowest bar."""
    top = max(values, default=0)
    if top <= 0:
        return SPARK[0] * len(values)
    return "".join(SPARK[0] if v <= 0 else SPARK[1 + min(6, int((v / top) * 7 - 1e-9))]
                   for v in values)


def _slot(minute: int, since: float, now: float, slots: int) -> int:
    width = max(now - since, 60.0) / slots
    return min(slots - 1, max(0, int((minute - since) // width)))


def task_stats(runtime, since: float, now: float | None = None, by: str = "task",
               slots: int = SLOTS) -> list[dict[str, Any]]:
    """Per task (or queue) over [since, now]: counts, throughput, failure rate,
    run and wait percentiles (merged histograms), and a series of finished jobs."""
    now = time.time() if now is None else now
    runtime.database
    groups: dict[tuple, dict] = {}
    query = TaskMinute.select().where((TaskMinute.minute >= since // 60 * 60)
                                      & (TaskMinute.minute <= now))
    for row in query.dicts().iterator():
        key = (row["queue"],) if by == "queue" else (row["queue"], row["task"])
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
    runtime.database
    groups: dict[str, dict] = {}
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


# --- the verbs -----------------------------------------------------------------------

def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    if math.isinf(value):
        return "inf"
    return f"{value * 1000:.0f}ms" if value < 1 else f"{value:.2f}s"


def cmd_stats(args) -> int:
    from rich.table import Table

    from tq.cli import add_row, fmt_time, make_runtime, out, print_json
    from tq.where import parse_time

    now = time.time()
    since = parse_time(args.since, now)
    runtime = make_runtime(args, check_backend=False)
    rows = (event_stats(runtime, since, now) if args.by == "type"
            else task_stats(runtime, since, now, args.by))
    if args.json:
        print_json({"since": since, "until": now, "by": args.by, "rows": rows})
        return 0
    spark = out.is_terminal and (out.encoding or "").lower().startswith("utf")
    table = Table(title=f"since {fmt_time(since)} UTC, by {args.by}", title_justify="left")
    if args.by == "type":
        columns = ["type", "events", "/min", "first seen", "last seen"]
        cells = [[r["type"], str(r["count"]), f"{r['per_minute']:g}", fmt_time(r["first_seen"]),
                  fmt_time(r["last_seen"])] for r in rows]
    else:
        columns = (["queue"] + (["task"] if args.by == "task" else [])
                   + ["done/min", "ok", "failed", "fail %", "retried", "run p50", "run p95",
                      "run max", "wait p50", "wait p95"])
        cells = [[r["queue"]] + ([r["task"]] if args.by == "task" else []) + [
            f"{r['per_minute']:g}", str(r["succeeded"]), str(r["failed"]),
            "" if r["failure_rate"] is None else f"{r['failure_rate'] * 100:.1f}",
            str(r["retried"]), _seconds(r["run_p50"]), _seconds(r["run_p95"]),
            _seconds(r["run_max"]), _seconds(r["wait_p50"]), _seconds(r["wait_p95"])]
            for r in rows]
    for index, column in enumerate(columns):
        table.add_column(column, justify="left" if index < (2 if args.by == "task" else 1)
                         else "right")
    if spark:
        table.add_column("trend")
    for row, cell in zip(rows, cells):
        add_row(table, *(cell + ([sparkline(row["series"])] if spark else [])))
    if not rows:
        out.print(f"no summaries since {fmt_time(since)} UTC (roll-up schedule: "
                  f"{runtime.config.history.rollup_every})", markup=False)
        return 0
    out.print(table)
    return 0


def cmd_metrics(args) -> int:
    import sys

    from tq.cli import CliError, err, make_runtime
    from tq.metrics import exposition, make_server
    from tq.text import literal

    runtime = make_runtime(args)
    if args.serve is None:
        sys.stdout.write(exposition(runtime))
        return 0
    try:
        server = make_server(runtime, args.bind, args.serve)
    except OSError as exc:
        raise CliError(f"cannot listen on {args.bind}:{args.serve}: {exc.strerror or exc}") \
            from None
    err.print(literal(f"serving metrics on http://{args.bind}:{server.server_address[1]}"
                      "/metrics (Ctrl-C stops)"))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def add_commands(subparsers) -> None:
    from tq.cli import PORT, _moment  # the CLI's checks of a time and a port

    p = subparsers.add_parser("stats", help="throughput, failure rate and latency from the "
                                            "summaries")
    p.add_argument("--since", default="1h", type=_moment,
                   help="window: 30m, 6h, 7d or an ISO time (default 1h)")
    p.add_argument("--by", choices=BY_CHOICES, default="task")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_stats)

    p = subparsers.add_parser("metrics", help="Prometheus text exposition (stdout, or --serve)")
    p.add_argument("--serve", type=PORT, metavar="PORT", help="serve /metrics over HTTP")
    p.add_argument("--bind", default="127.0.0.1", help="address for --serve "
                                                       "(default 127.0.0.1)")
    p.set_defaults(func=cmd_metrics)


__all__ = ["add_commands", "task_stats", "event_stats", "sparkline"]
