"""`tq stats` and `tq metrics`: how it is going, read from the summaries only.

The numbers come from tq.stats (throughput, failure rate, percentiles) and
tq.metrics (the Prometheus exposition); this module only shows them.
"""
from __future__ import annotations

import argparse
import math
import sys
import time

from rich.table import Table

from tq.cli.common import PORT, CliError, add_row, err, make_runtime, moment, out, print_json
from tq.format import fmt_time, sparkline
from tq.text import literal

# By task or queue (tq.stats.task_stats), or by ingested event type (tq.stats.event_stats).
BY_CHOICES = ("task", "queue", "type")


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    if math.isinf(value):
        return "inf"
    return f"{value * 1000:.0f}ms" if value < 1 else f"{value:.2f}s"


def cmd_stats(args: argparse.Namespace) -> int:
    from tq.stats import event_stats, task_stats
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


def cmd_metrics(args: argparse.Namespace) -> int:
    from tq.metrics import exposition, make_server

    # Not checked up front: with a server down a scrape answers what the other
    # says, and tq_server_up 0 for it (tq.metrics).
    runtime = make_runtime(args, check_backend=False)
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


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("stats", help="throughput, failure rate and latency from the "
                                            "summaries")
    p.add_argument("--since", default="1h", type=moment,
                   help="window: 30m, 6h, 7d or an ISO time (default 1h)")
    p.add_argument("--by", choices=BY_CHOICES, default="task")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_stats)

    p = subparsers.add_parser("metrics", help="Prometheus text exposition (stdout, or --serve)")
    p.add_argument("--serve", type=PORT, metavar="PORT", help="serve /metrics over HTTP")
    p.add_argument("--bind", default="127.0.0.1", help="address for --serve "
                                                       "(default 127.0.0.1)")
    p.set_defaults(func=cmd_metrics)
