"""`tq jobs`, `tq show`, `tq wait`, `tq status`, `tq workers`, `tq periodic`: reading.

Each reads through tq.queries, the same functions the console reads through.
`tq wait` exits 0 when every job succeeded, 1 when any ended otherwise
(failed, canceled, expired, requeued), 2 for an unknown id or a timeout.
"""
from __future__ import annotations

import argparse
import json
import math
import re
from typing import Any

from rich.text import Text

from tq.cli.common import (
    MAX_LIMIT,
    CliError,
    add_row,
    catch_up_or_say,
    catch_up_unless_down,
    filter_options,
    make_runtime,
    new_table,
    out,
    parse_filter,
    print_json,
    whole,
)
from tq.format import fmt_age, fmt_time
from tq.text import literal, markup, visible

# `tq jobs --sort` choices: tq.queries.SORTABLE, written out because building the
# parser must not load tq.queries (peewee) for `tq --help`; tests/test_lazy_import.py
# checks the two agree.
SORTABLE = ("enqueued_at", "started_at", "finished_at", "priority", "attempts", "task", "id")
RESULT_SHOWN = 4000  # characters of a result `tq show` prints (all of it: --json)
RESULT_LINE = 80  # characters of a result on `tq wait`'s one line per job
IDS_NAMED = 10  # ids a `tq wait` error line names before "and N more"
WAIT_MAX = 10 * 365 * 86400.0


def result_text(value: Any, width: int | None = None) -> tuple[str, bool]:
    """A result as tq shows it: pretty JSON (one line when `width` is given), cut
    to RESULT_SHOWN or `width` characters; and whether it was cut."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True,
                      indent=None if width else 2)
    limit = width or RESULT_SHOWN
    return (text, False) if len(text) <= limit else (text[:limit], True)


def cmd_jobs(args: argparse.Namespace) -> int:
    from tq.queries import list_jobs

    runtime = make_runtime(args, check_backend=False)  # history answers alone
    catch_up_or_say(runtime)  # the jobs submitted since, then the read
    rows = list_jobs(runtime, parse_filter(args), sort=args.sort, limit=args.limit)
    if args.json:
        for row in rows:
            for key in ("args", "kwargs"):
                row[key] = json.loads(row[key]) if row.get(key) else None
        print_json(rows)
        return 0
    table = new_table("id", "queue", "task", "state", "tries", "enqueued", "eta", "finished",
                      "error")
    for row in rows:
        error = f"{row['error_type']}: {row['error_message']}" if row.get("error_type") else ""
        eta = fmt_time(row["eta"]) if row["state"] in ("scheduled", "retrying") else ""
        add_row(table, row["id"], row["queue"] or "", row["task"] or "", row["state"],
                str(row["attempts"] or 0), fmt_time(row["enqueued_at"]), eta,
                fmt_time(row["finished_at"]), visible(error)[:60])
    out.print(table)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from tq.queries import job_detail

    runtime = make_runtime(args, check_backend=False)  # history answers alone
    catch_up_or_say(runtime)  # the jobs submitted since, then the read
    job = job_detail(runtime, args.id)
    if job is None:
        raise CliError(f"no job {args.id!r} in history")
    if args.json:
        print_json(job)
        return 0
    def field(key: str, value: Any) -> None:
        out.print(f"[bold]{key:>13}[/] {markup(value)}")
    for key in ("id", "queue", "task", "state", "priority", "attempts", "max_retries", "worker",
                "requeued_from"):
        field(key, job.get(key))
    for key in ("enqueued_at", "eta", "started_at", "finished_at"):
        field(key, fmt_time(job.get(key)))
    field("args", json.dumps(job["args"]))
    field("kwargs", json.dumps(job["kwargs"]))
    if job["requeued_to"]:
        field("requeued_to", ", ".join(job["requeued_to"]))
    if job.get("error_type"):
        field("error", f"{job['error_type']}: {job['error_message']}")
    if job.get("has_result"):
        text, cut = result_text(job["result"])
        # soft_wrap: a long line of the value stays one line (grep, copy and paste).
        out.print(Text.assemble(Text(f"{'result':>13} ", style="bold"),
                                literal(text, multiline=True)), soft_wrap=True)
        if cut:
            out.print(Text(f"{'':>13} (cut at {RESULT_SHOWN:,} characters: "
                           "tq show --json for all of it)", style="dim"))
    for attempt in job["attempt_log"]:
        out.print(literal(
            f"  attempt {attempt['attempt']}: {attempt['outcome'] or 'running'} "
            f"{fmt_time(attempt['started_at'])} -> {fmt_time(attempt['finished_at'])} "
            f"on {attempt['worker'] or '?'}"
            + (f"  {attempt['error_type']}: {attempt['error_message']}"
               if attempt.get("error_type") else "")))
    if job.get("traceback"):
        out.print(literal(job["traceback"].rstrip(), multiline=True))
    return 0


def timeout_seconds(text: str) -> float:
    """An argparse type: seconds to wait, 0 to ten years, said so when it is not."""
    value = float(text) if re.fullmatch(r"\s*[0-9]{1,12}(\.[0-9]{0,9})?\s*", text) else math.nan
    if not 0 <= value <= WAIT_MAX:
        raise argparse.ArgumentTypeError(f"expected seconds from 0 to {WAIT_MAX:.0f}, "
                                         f"got '{text[:40]}'")
    return value


def _named(ids: list[str]) -> str:
    shown = ", ".join(i if len(i) <= 80 else i[:77] + "..." for i in ids[:IDS_NAMED])
    return shown + (f" and {len(ids) - IDS_NAMED:,} more" if len(ids) > IDS_NAMED else "")


def _outcome(job: dict) -> dict[str, Any]:
    keys = ("id", "state", "has_result", "result", "error_type", "error_message",
            "finished_at", "attempts", "requeued_to")
    return {key: job.get(key) for key in keys}


def _outcome_line(job: dict) -> Text:
    line = Text.assemble(literal(job["id"]), "  ", Text(job["state"], style=(
        "green" if job["state"] == "succeeded" else "red")))
    if job["state"] == "succeeded":
        if job.get("has_result"):
            text, cut = result_text(job["result"], width=RESULT_LINE)
            line.append_text(Text.assemble("  ", literal(text + ("..." if cut else ""))))
    elif job["state"] == "requeued" and job.get("requeued_to"):
        line.append_text(literal(f"  as {', '.join(job['requeued_to'])}"))
    elif job.get("error_type"):
        line.append_text(literal(f"  {job['error_type']}: {job['error_message']}"[:200]))
    return line


def cmd_wait(args: argparse.Namespace) -> int:
    from tq.queries import unknown_jobs, wait_jobs

    ids = list(dict.fromkeys(args.ids))
    runtime = make_runtime(args)
    unknown = unknown_jobs(runtime, ids)  # through catch_up, the one door
    if unknown:
        raise CliError(f"no job{'s' if len(unknown) > 1 else ''} {_named(unknown)} in "
                       "history")
    ended = wait_jobs(runtime, ids, args.timeout)
    pending = [job_id for job_id in ids if job_id not in ended]
    if args.json:
        print_json([{**_outcome(ended[job_id]), "ended": True} if job_id in ended
                    else {"id": job_id, "ended": False} for job_id in ids])
    else:
        for job_id in ids:
            if job_id in ended:
                out.print(_outcome_line(ended[job_id]))
    if pending:
        raise CliError(f"timed out after {args.timeout:g} s: {len(pending):,} "
                       f"job{'s' if len(pending) > 1 else ''} not ended: {_named(pending)}")
    return 0 if all(job["state"] == "succeeded" for job in ended.values()) else 1


def _depth(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"  # None: not known, never shown as 0


def cmd_status(args: argparse.Namespace) -> int:
    """Exit 0; 1 when the queue backend or the history database did not answer
    (what the other one says is still printed, the unknown numbers as ?)."""
    from tq.queries import status

    # Not checked up front: with the queue backend down, history still answers.
    runtime = make_runtime(args, check_backend=False)
    catch_up_unless_down(runtime)  # the jobs submitted since; an outage status says itself
    data = status(runtime)
    down = [data[key] for key in ("queue_unreachable", "history_unreachable") if key in data]
    if args.json:
        print_json(data)
        return 1 if down else 0
    numbers = ("queued", "scheduled", "running", "retrying", "failed", "ok/1m", "ok/1h",
               "oldest", "err/1h")
    table = new_table("queue", "state", *numbers, right=numbers)
    unreachable = []
    for name, entry in data["queues"].items():
        if entry["paused"] is None:  # the queue backend did not answer
            state = Text("?")
        else:
            state = Text("paused", style="yellow") if entry["paused"] else Text("running")
        if entry["paused_tasks"]:
            state.append(f" ({len(entry['paused_tasks'])} task paused)")
        if entry.get("unreachable"):  # an attached app's own storage: depths unknown
            state = Text("unreachable", style="red")
            unreachable.append(entry["unreachable"])
        rate = entry["error_rate_last_hour"]
        add_row(table, name, state, _depth(entry["queued"]), _depth(entry["scheduled"]),
                _depth(entry["running"]), _depth(entry["retrying"]), _depth(entry["failed"]),
                _depth(entry["succeeded_last_minute"]), _depth(entry["succeeded_last_hour"]),
                "?" if "history_unreachable" in data else fmt_age(entry["oldest_queued_age"]),
                "?" if rate is None else f"{rate:.1%}")
    out.print(table)
    alive = data["workers_alive"]
    out.print(literal(f"workers alive: {'?' if alive is None else alive}"
                      f"   queue: {data['queue_backend']}   history: {data['history']}"))
    for line in [*down, *unreachable]:
        out.print(literal(line, style="red"))
    held = data.get("quarantine") or {}
    if any(held.values()):
        parts = [f"{held[key]:,} {key}" for key in ("messages", "records") if held.get(key)]
        out.print(f"[yellow]set aside: {', '.join(parts)}[/] (tq quarantine)")
    return 1 if down else 0


def cmd_workers(args: argparse.Namespace) -> int:
    from tq.queries import list_workers

    runtime = make_runtime(args)
    if args.forget:
        from tq import ops
        try:
            ops.forget_worker(runtime, args.forget)
        except ops.ActionError as exc:
            raise CliError(str(exc)) from None
        out.print(f"forgot consumer {visible(args.forget)}", markup=False)
        return 0
    workers = list_workers(runtime)
    if args.json:
        print_json(workers)
        return 0
    table = new_table("consumer", "host", "pid", "queues", "workers", "heartbeat", "running")
    for worker in workers:
        beat = fmt_age(worker["heartbeat_age"]) + " ago"
        add_row(table, worker["id"], worker["host"], str(worker["pid"]),
                ",".join(worker["queues"]), f"{worker['workers']} {worker['worker_type']}",
                beat if worker["alive"] else Text(f"{beat} (silent)", style="red"),
                str(len(worker["running"])))
    out.print(table if workers else "no consumers registered")
    return 0


def cmd_periodic(args: argparse.Namespace) -> int:
    from tq.queries import list_periodic

    runtime = make_runtime(args)
    rows = list_periodic(runtime)
    if args.json:
        print_json(rows)
        return 0
    table = new_table("name", "schedule", "task", "queue", "next run", "last run", "outcome")
    for row in rows:
        add_row(table, row["name"], row["schedule"], row["task"], row["queue"],
                fmt_time(row["next_run"]), fmt_time(row["last_run"]), row["last_outcome"] or "")
    out.print(table if rows else Text("no periodic tasks (add them under [periodic] or with "
                                      "@tq.periodic)"))
    return 0



def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("jobs", help="list jobs from history, newest first")
    filter_options(p)
    p.add_argument("--limit", type=whole(1, MAX_LIMIT), default=40,
                   help=f"rows to show, 1 to {MAX_LIMIT} (default 40)")
    p.add_argument("--sort", default="enqueued_at", choices=SORTABLE)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_jobs)

    p = sub.add_parser("show", help="one job with its attempts, traceback and result")
    p.add_argument("id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("wait", help="wait until jobs end; print each one's outcome "
                       "(exit 0 all succeeded, 1 any did not, 2 unknown id or timeout)")
    p.add_argument("ids", nargs="+", metavar="ID")
    p.add_argument("--timeout", type=timeout_seconds, default=None,
                   help="seconds to wait at most (default: as long as it takes)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_wait)

    p = sub.add_parser("status", help="queues: depths, outcomes, workers")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("workers", help="consumers and their heartbeats")
    p.add_argument("--json", action="store_true")
    p.add_argument("--forget", metavar="ID",
                   help="remove a dead (silent) consumer from the list")
    p.set_defaults(func=cmd_workers)

    p = sub.add_parser("periodic", help="periodic tasks with their next run")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_periodic)
