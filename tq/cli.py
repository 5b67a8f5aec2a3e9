"""The `tq` command. Verbs match what an operator thinks; `--json` where scripts read.

Every verb is a thin shell around a function in submit, ops or queries, the
same functions the console calls. Errors are one line on stderr and exit 2.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from datetime import datetime, timezone
from typing import Any, Callable, Iterator

from rich.console import Console
from rich.table import Table

EXIT_USAGE = 2
BATCH = 1000
# A batch also goes out once its first job is this old: a job's enqueue time is
# stamped when its line is read, so it must reach the queue soon after, or a
# slow file would make later-stamped jobs of other submitters run first.
BATCH_SECONDS = 0.2
MAX_LINE_ERRORS_SHOWN = 20

# Piped output keeps whole ids and rows on one line for grep and scripts.
out = Console(highlight=False, width=None if sys.stdout.isatty() else 240)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class CliError(Exception):
    """One line for the operator; exit status 2."""


def fmt_time(value: float | None) -> str:
    if not value:
        return ""
    return datetime.fromtimestamp(value, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def fmt_age(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = float(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.1f}s"


def new_table(*columns: str, right: tuple[str, ...] = ()) -> Table:
    table = Table(box=None, header_style="bold")
    for column in columns:
        table.add_column(column, justify="right" if column in right else "left",
                         overflow="fold" if column == "id" else "ellipsis")
    return table


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=True, default=str) + "\n")


# --- runtime ---------------------------------------------------------------------

def make_runtime(args, overrides: dict | None = None, check_backend: bool = True):
    from tq.config import load_config
    from tq.runtime import configure

    config = load_config(getattr(args, "config", None), overrides=overrides)
    logging.basicConfig(level=getattr(logging, config.log_level.upper()),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if config.log_level != "debug":
        logging.getLogger("huey").setLevel(logging.WARNING)  # not a line per job
    runtime = configure(config)
    if check_backend:
        runtime.check_queue_backend()
    return runtime


def parse_filter(args) -> Any:
    from tq.where import parse

    terms = [getattr(args, "where", None) or ""]
    for key in ("state", "queue", "task"):
        value = getattr(args, key, None)
        if value:
            terms.append(f"{key}:{','.join(value) if isinstance(value, list) else value}")
    if getattr(args, "since", None):
        terms.append(f"since:{args.since}")
    if getattr(args, "before", None):
        terms.append(f"before:{args.before}")
    return parse(" ".join(t for t in terms if t))


# --- submit ------------------------------------------------------------------------

def cmd_submit(args) -> int:
    from tq.submit import SubmitError, enqueue, parse_spec_line, prepare

    runtime = make_runtime(args)
    if args.file:
        if args.task:
            raise CliError("give a TASK or --file, not both")
        return _submit_file(runtime, args.file, prepare, enqueue, parse_spec_line, SubmitError)
    if not args.task:
        raise CliError("give a TASK (e.g. tq.tasks.demo.echo) or --file FILE")
    spec: dict[str, Any] = {"task": args.task}
    for key in ("args", "kwargs"):
        raw = getattr(args, key)
        if raw is not None:
            try:
                spec[key] = json.loads(raw)
            except ValueError as exc:
                raise CliError(f"--{key} is not valid JSON: {exc}") from None
    for key in ("queue", "priority", "delay", "eta", "expires", "retries", "timeout", "id"):
        value = getattr(args, key)
        if value is not None:
            spec[key] = value
    try:
        job = prepare(runtime, spec)
    except SubmitError as exc:
        raise CliError(str(exc)) from None
    enqueue(runtime, [job])
    if args.json:
        print_json({"id": job.job_id, "queue": job.queue})
    else:
        out.print(job.job_id)
    return 0


def _lines(path: str) -> Iterator[tuple[int, bytes]]:
    handle = sys.stdin.buffer if path == "-" else open(path, "rb")
    try:
        for number, line in enumerate(handle, 1):
            yield number, line
    finally:
        if handle is not sys.stdin.buffer:
            handle.close()


def _submit_file(runtime, path, prepare, enqueue, parse_spec_line, SubmitError) -> int:
    if path != "-" and not os.path.isfile(path):
        raise CliError(f"--file {path}: no such file")
    submitted, bad = 0, []
    batch = []
    for number, raw in _lines(path):
        if not raw.strip():
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            bad.append((number, "not UTF-8 text"))
            continue
        try:
            batch.append(prepare(runtime, parse_spec_line(line)))
        except SubmitError as exc:
            bad.append((number, str(exc)))
            continue
        if len(batch) >= BATCH or time.time() - batch[0].record["enqueued_at"] >= BATCH_SECONDS:
            submitted += len(enqueue(runtime, batch))
            batch = []
    if batch:
        submitted += len(enqueue(runtime, batch))
    for number, reason in bad[:MAX_LINE_ERRORS_SHOWN]:
        err.print(f"tq: line {number}: {reason}")
    if len(bad) > MAX_LINE_ERRORS_SHOWN:
        err.print(f"tq: ... and {len(bad) - MAX_LINE_ERRORS_SHOWN} more bad lines")
    out.print(f"submitted {submitted} job{'s' if submitted != 1 else ''}"
              + (f", {len(bad)} bad line{'s' if len(bad) != 1 else ''} skipped" if bad else ""))
    return EXIT_USAGE if bad else 0


# --- consumer / up -----------------------------------------------------------------

def cmd_consumer(args) -> int:
    from tq.consumer import ConsumerGroup

    runtime = make_runtime(args)
    group = ConsumerGroup(runtime, queues=args.queue, workers=args.workers,
                          worker_type=args.worker_type, periodic=not args.no_periodic)
    group.run()
    return 0


def up_services(runtime) -> list[Callable]:
    """What `tq up` runs beside the consumer (the watcher, once configured)."""
    services = []
    try:
        from tq.ingest.watcher import watch_service
    except ImportError:
        return services
    services.append(watch_service(runtime))
    return services


def cmd_up(args) -> int:
    from tq.consumer import ConsumerGroup

    runtime = make_runtime(args)
    runtime.database  # create the schema now: the first command a new user runs
    group = ConsumerGroup(runtime, workers=args.workers, services=up_services(runtime))
    err.print(f"[bold]tq up[/]: queues {', '.join(runtime.queues)} on "
              f"{runtime.config.queue_url_safe}; history in {runtime.config.history_url_safe}")
    err.print(f"inbox: {runtime.config.ingest['inbox']}   try: tq submit tq.tasks.demo.echo "
              "--args '[\"hi\"]'   then: tq jobs   (Ctrl-C stops)")
    group.run()
    return 0


# --- reading -------------------------------------------------------------------------

def cmd_jobs(args) -> int:
    from tq.queries import list_jobs

    runtime = make_runtime(args)
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
        table.add_row(row["id"], row["queue"] or "", row["task"] or "", row["state"],
                      str(row["attempts"] or 0), fmt_time(row["enqueued_at"]), eta,
                      fmt_time(row["finished_at"]), error[:60])
    out.print(table)
    return 0


def cmd_show(args) -> int:
    from tq.queries import job_detail

    runtime = make_runtime(args)
    job = job_detail(runtime, args.id)
    if job is None:
        raise CliError(f"no job {args.id!r} in history")
    if args.json:
        print_json(job)
        return 0
    for key in ("id", "queue", "task", "state", "priority", "attempts", "max_retries", "worker",
                "requeued_from"):
        out.print(f"[bold]{key:>13}[/] {job.get(key) if job.get(key) is not None else ''}")
    for key in ("enqueued_at", "eta", "started_at", "finished_at"):
        out.print(f"[bold]{key:>13}[/] {fmt_time(job.get(key))}")
    out.print(f"[bold]{'args':>13}[/] {json.dumps(job['args'])}")
    out.print(f"[bold]{'kwargs':>13}[/] {json.dumps(job['kwargs'])}")
    if job["requeued_to"]:
        out.print(f"[bold]{'requeued_to':>13}[/] {', '.join(job['requeued_to'])}")
    if job.get("error_type"):
        out.print(f"[bold]{'error':>13}[/] {job['error_type']}: {job['error_message']}")
    for attempt in job["attempt_log"]:
        out.print(f"  attempt {attempt['attempt']}: {attempt['outcome'] or 'running'} "
                  f"{fmt_time(attempt['started_at'])} -> {fmt_time(attempt['finished_at'])} "
                  f"on {attempt['worker'] or '?'}"
                  + (f"  {attempt['error_type']}: {attempt['error_message']}"
                     if attempt.get("error_type") else ""))
    if job.get("traceback"):
        out.print(job["traceback"].rstrip())
    return 0


def cmd_status(args) -> int:
    from tq.queries import status

    runtime = make_runtime(args)
    data = status(runtime)
    if args.json:
        print_json(data)
        return 0
    numbers = ("queued", "scheduled", "running", "retrying", "failed", "ok/1m", "ok/1h",
               "oldest", "err/1h")
    table = new_table("queue", "state", *numbers, right=numbers)
    for name, entry in data["queues"].items():
        state = "[yellow]paused[/]" if entry["paused"] else "running"
        if entry["paused_tasks"]:
            state += f" ({len(entry['paused_tasks'])} task paused)"
        table.add_row(name, state, f"{entry['queued']:,}", f"{entry['scheduled']:,}",
                      f"{entry['running']:,}", f"{entry['retrying']:,}", f"{entry['failed']:,}",
                      f"{entry['succeeded_last_minute']:,}", f"{entry['succeeded_last_hour']:,}",
                      fmt_age(entry["oldest_queued_age"]),
                      f"{entry['error_rate_last_hour']:.1%}")
    out.print(table)
    out.print(f"workers alive: {data['workers_alive']}   queue: {data['queue_backend']}   "
              f"history: {data['history']}")
    held = data.get("quarantine") or {}
    if any(held.values()):
        parts = [f"{held[key]:,} {key}" for key in ("messages", "records") if held.get(key)]
        out.print(f"[yellow]set aside: {', '.join(parts)}[/] (tq quarantine)")
    return 0


def cmd_workers(args) -> int:
    from tq.queries import list_workers

    runtime = make_runtime(args)
    workers = list_workers(runtime)
    if args.json:
        print_json(workers)
        return 0
    table = new_table("consumer", "host", "pid", "queues", "workers", "heartbeat", "running")
    for worker in workers:
        beat = fmt_age(worker["heartbeat_age"]) + " ago"
        table.add_row(worker["id"], worker["host"], str(worker["pid"]),
                      ",".join(worker["queues"]), f"{worker['workers']} {worker['worker_type']}",
                      beat if worker["alive"] else f"[red]{beat} (silent)[/]",
                      str(len(worker["running"])))
    out.print(table if workers else "no consumers registered")
    return 0


def cmd_periodic(args) -> int:
    from tq.queries import list_periodic

    runtime = make_runtime(args)
    rows = list_periodic(runtime)
    if args.json:
        print_json(rows)
        return 0
    table = new_table("name", "schedule", "task", "queue", "next run", "last run", "outcome")
    for row in rows:
        table.add_row(row["name"], row["schedule"], row["task"], row["queue"],
                      fmt_time(row["next_run"]), fmt_time(row["last_run"]),
                      row["last_outcome"] or "")
    out.print(table if rows else "no periodic tasks (add them under [periodic] or with "
                                 "@tq.periodic)")
    return 0


# --- acting -----------------------------------------------------------------------------

def cmd_pause(args) -> int:
    from tq import ops

    runtime = make_runtime(args)
    ops.pause(runtime, args.queue_name, args.task_name)
    out.print(f"paused {args.queue_name}" + (f" / {args.task_name}" if args.task_name else ""))
    return 0


def cmd_resume(args) -> int:
    from tq import ops

    runtime = make_runtime(args)
    moved = ops.resume(runtime, args.queue_name, args.task_name)
    out.print(f"resumed {args.queue_name}" + (f" / {args.task_name}" if args.task_name else "")
              + (f"; {moved} held job(s) back on the queue" if moved else ""))
    return 0


def _ids_or_filter(args) -> tuple[list[str] | None, Any]:
    if args.ids and (args.where or args.state or args.queue or args.task):
        raise CliError("give job ids or a filter, not both")
    if args.ids:
        return args.ids, None
    flt = parse_filter(args)
    if flt.is_empty():
        raise CliError("give job ids, or a filter such as --state failed --queue events")
    return None, flt


def cmd_cancel(args) -> int:
    from tq import ops

    runtime = make_runtime(args)
    ids, flt = _ids_or_filter(args)
    result = ops.cancel(runtime, ids, flt)
    if args.json:
        print_json(result.__dict__)
    else:
        out.print(f"canceled {len(result.canceled)}, stop requested for "
                  f"{len(result.requested)} running")
        for job_id in result.finished:
            err.print(f"tq: {job_id} already finished; unchanged")
        for job_id in result.unknown:
            err.print(f"tq: {job_id}: not in history (revoked in case it is queued)")
    return EXIT_USAGE if ids and (result.unknown or result.finished) and not (
        result.canceled or result.requested) else 0


def cmd_requeue(args) -> int:
    from tq import ops

    runtime = make_runtime(args)
    if not args.ids and not (args.where or args.state or args.queue or args.task
                             or args.since):
        args.state = ["failed"]
    ids, flt = _ids_or_filter(args)
    result = ops.requeue(runtime, ids, flt)
    if args.json:
        print_json(result.__dict__)
    else:
        out.print(f"requeued {len(result.new_ids)} job{'s' if len(result.new_ids) != 1 else ''}")
        for original, reason in list(result.skipped.items())[:MAX_LINE_ERRORS_SHOWN]:
            err.print(f"tq: {original}: not requeued: {reason}")
    return EXIT_USAGE if ids and not result.new_ids else 0


def cmd_purge(args) -> int:
    from tq import ops

    runtime = make_runtime(args)
    if not args.state:
        raise CliError("purge needs --state (failed, canceled or expired): it deletes on "
                       "purpose only")
    try:
        deleted = ops.purge(runtime, parse_filter(args))
    except ops.ActionError as exc:
        raise CliError(str(exc)) from None
    out.print(f"deleted {deleted} job{'s' if deleted != 1 else ''} from history")
    return 0


def cmd_run_now(args) -> int:
    from tq import ops

    runtime = make_runtime(args)
    moved = ops.run_now(runtime, args.ids)
    out.print(f"{len(moved)} job(s) moved from the schedule to the queue")
    return 0 if moved else EXIT_USAGE


def cmd_quarantine(args) -> int:
    """What tq set aside: list, show, requeue, purge (see queries/ops "quarantine")."""
    from tq import ops
    from tq.queries import quarantine_list, quarantine_show
    from tq.text import literal, markup, visible

    runtime = make_runtime(args, check_backend=False)
    action, ids = args.action, args.ids
    if action not in ("list", "show", "requeue", "purge"):
        # `tq quarantine m3` reads as `tq quarantine show m3`.
        action, ids = "show", [action, *ids]
    if action == "list":
        if ids:
            raise CliError("tq quarantine list takes no ids (tq quarantine show ID)")
        data = quarantine_list(runtime, limit=args.limit)
        if args.json:
            print_json(data)
            return 0
        table = new_table("id", "kind", "when", "queue", "from", "size", "reason",
                          right=("size",))
        for row in data["entries"]:
            table.add_row(row["id"], row["kind"], fmt_time(row["at"]),
                          literal(row["queue"] or ""), literal(row["source"] or ""),
                          f"{row['size'] or 0:,}", literal((row["reason"] or "")[:120]))
        out.print(table)
        for kind, why in data["unavailable"].items():
            err.print(f"tq: {kind}s not listed: {markup(why)}")
        out.print(f"{len(data['entries'])} set aside (tq quarantine show ID; requeue ID; "
                  "purge ID... or --all)")
        return 0
    if action == "show":
        if len(ids) != 1:
            raise CliError("tq quarantine show takes one id")
        try:
            entry = quarantine_show(runtime, ids[0])
        except ValueError as exc:
            raise CliError(str(exc)) from None
        if entry is None:
            raise CliError(f"{visible(ids[0])}: not in quarantine")
        if args.json:
            print_json(entry)
            return 0
        for key in ("id", "kind", "at", "queue", "source", "reason", "size"):
            value = fmt_time(entry[key]) if key == "at" else entry[key]
            out.print(literal(f"{key:>7} ", "bold") + literal("" if value is None else value))
        if not entry["complete"]:
            out.print(literal("   data (only its beginning was kept):", "bold"))
        out.print(literal(entry["data"], multiline=True))
        return 0
    if action == "requeue":
        if not ids:
            raise CliError("tq quarantine requeue needs ids (see tq quarantine)")
        result = ops.quarantine_requeue(runtime, ids)
        for entry_id, job_id in result.requeued.items():
            out.print(literal(f"{entry_id}: requeued as job {job_id}"))
        for entry_id, reason in list(result.skipped.items())[:MAX_LINE_ERRORS_SHOWN]:
            err.print(f"tq: {markup(entry_id)}: not requeued: {markup(reason)}")
        return 0 if not result.skipped else EXIT_USAGE
    if bool(ids) == bool(args.all):
        raise CliError("tq quarantine purge needs ids or --all (not both)")
    try:
        deleted = ops.quarantine_purge(runtime, None if args.all else ids)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    out.print(f"purged {deleted} entr{'ies' if deleted != 1 else 'y'} from quarantine")
    return 0


def cmd_db(args) -> int:
    from tq.models import create_schema

    runtime = make_runtime(args, check_backend=False)
    added = create_schema(runtime.database)
    out.print("schema up to date" if not added else "created: " + ", ".join(added))
    return 0


def cmd_tui(args) -> int:
    from tq.tui.app import run_tui

    runtime = make_runtime(args)
    return run_tui(runtime, readonly=args.readonly)


# --- parser -------------------------------------------------------------------------------

def _filter_options(parser: argparse.ArgumentParser, state_default=None) -> None:
    parser.add_argument("--where", help="filter, e.g. 'task:send_email state:failed since:1h'")
    parser.add_argument("--state", action="append", default=state_default)
    parser.add_argument("--queue", action="append")
    parser.add_argument("--task")
    parser.add_argument("--since", help="only jobs enqueued since: 30m, 2h, 7d or ISO time")
    parser.add_argument("--before", help="only jobs enqueued before: 30m, 2h, 7d or ISO time")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tq", description="Operations console and toolkit "
                                     "for Huey task queues.")
    parser.add_argument("--config", help="settings file (default: $TQ_CONFIG, else ./tq.ini)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("up", help="run consumer, scheduler and watcher on this machine")
    p.add_argument("-w", "--workers", type=int)
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("consumer", help="run workers for one or more queues")
    p.add_argument("--queue", "-q", action="append", help="queue to serve (repeat; default all)")
    p.add_argument("-w", "--workers", type=int, help="workers per queue")
    p.add_argument("-k", "--worker-type", choices=("thread", "process"))
    p.add_argument("--no-periodic", action="store_true", help="do not run periodic tasks here")
    p.set_defaults(func=cmd_consumer)

    p = sub.add_parser("submit", help="enqueue a job, or a batch with --file")
    p.add_argument("task", nargs="?", help="dotted task name, e.g. tq.tasks.demo.echo")
    p.add_argument("--args", help="JSON array of positional arguments")
    p.add_argument("--kwargs", help="JSON object of keyword arguments")
    p.add_argument("--queue")
    p.add_argument("--priority", type=int)
    when = p.add_mutually_exclusive_group()
    when.add_argument("--delay", type=float, help="seconds from now")
    when.add_argument("--eta", help="ISO 8601 time (naive means UTC)")
    p.add_argument("--expires", type=float, help="seconds after which it must not start")
    p.add_argument("--retries", type=int)
    p.add_argument("--timeout", type=float, help="seconds before the job is stopped")
    p.add_argument("--id", help="job id (default: a new UUID)")
    p.add_argument("--file", help="JSON lines file of jobs ('-' for stdin)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("jobs", help="list jobs from history, newest first")
    _filter_options(p)
    p.add_argument("--limit", type=int, default=40)
    p.add_argument("--sort", default="enqueued_at")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_jobs)

    p = sub.add_parser("show", help="one job with its attempts and traceback")
    p.add_argument("id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("status", help="queues: depths, outcomes, workers")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("workers", help="consumers and their heartbeats")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_workers)

    p = sub.add_parser("periodic", help="periodic tasks with their next run")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_periodic)

    for verb, func, help_text in (("pause", cmd_pause, "stop handing out a queue's jobs"),
                                  ("resume", cmd_resume, "undo pause")):
        p = sub.add_parser(verb, help=help_text)
        p.add_argument("queue_name", metavar="QUEUE")
        p.add_argument("--task", dest="task_name", help="only this task type within the queue")
        p.set_defaults(func=func)

    p = sub.add_parser("cancel", help="cancel jobs by id or filter")
    p.add_argument("ids", nargs="*", metavar="ID")
    _filter_options(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_cancel)

    p = sub.add_parser("requeue", help="run finished jobs again as new jobs")
    p.add_argument("ids", nargs="*", metavar="ID")
    _filter_options(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_requeue)

    p = sub.add_parser("purge", help="delete dead letters from history")
    _filter_options(p)
    p.set_defaults(func=cmd_purge)

    p = sub.add_parser("run-now", help="enqueue scheduled or retrying jobs now")
    p.add_argument("ids", nargs="+", metavar="ID")
    p.set_defaults(func=cmd_run_now)

    p = sub.add_parser("quarantine", help="what tq set aside: list, show, requeue, purge")
    p.add_argument("action", nargs="?", default="list",
                   help="list (default), show ID, requeue ID..., purge ID... | --all")
    p.add_argument("ids", nargs="*", help="quarantine ids: m<n> (message), r<n> (record)")
    p.add_argument("--all", action="store_true", help="with purge: every entry")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_quarantine)

    p = sub.add_parser("db", help="history database schema")
    p.add_argument("action", choices=("init",))
    p.set_defaults(func=cmd_db)

    p = sub.add_parser("tui", help="the live console")
    p.add_argument("--readonly", action="store_true", help="watch only: every action disabled")
    p.set_defaults(func=cmd_tui)

    for extra in _extra_commands():
        extra(sub)
    return parser


def _extra_commands() -> list[Callable]:
    """Verbs that live with their feature (ingest, stats) register here."""
    found = []
    for module_name in ("tq.ingest.cli", "tq.stats"):
        try:
            module = __import__(module_name, fromlist=["add_commands"])
        except ImportError:
            continue
        found.append(module.add_commands)
    return found


def main(argv: list[str] | None = None) -> int:
    from tq.config import ConfigError
    from tq.runtime import UnknownQueue
    from tq.where import FilterError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.func(args)
    except (CliError, ConfigError, UnknownQueue, FilterError) as exc:
        err.print(f"tq: error: {exc}", markup=False)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a server down mid-command: one line, not a traceback
        if os.environ.get("TQ_DEBUG"):
            raise
        text = str(exc).splitlines()[0] if str(exc) else ""
        err.print(f"tq: error: {type(exc).__name__}: {text}", markup=False)
        return 1


if __name__ == "__main__":
    sys.exit(main())
