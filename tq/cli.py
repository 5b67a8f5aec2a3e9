"""The `tq` command. Verbs match what an operator thinks; `--json` where scripts read.

Every verb is a thin shell around a function in submit, ops or queries, the
same functions the console calls. Errors are one line on stderr and exit 2;
an action (cancel, requeue, purge, run-now) reports its own outcome (see report()):
exit 1 when a server failed before or during it.

Output is literal: every value that came from outside (ids, names, arguments,
errors, tracebacks, anything read from Redis or the history) goes through
tq.text, as `literal()` in table cells and whole lines, as `markup()` inside the
markup strings tq writes itself. `--json` is JSON (json.dumps escapes control
characters and lone surrogates).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, NoReturn

from rich.console import Console
from rich.table import Table
from rich.text import Text

from tq.text import literal, markup, visible

EXIT_USAGE = 2
BATCH = 1000
# A batch also goes out once its first job is this old: a job's enqueue time is
# stamped when its line is read, so it must reach the queue soon after, or a
# slow file would make later-stamped jobs of other submitters run first.
BATCH_SECONDS = 0.2
MAX_LINE_ERRORS_SHOWN = 20

# Piped output keeps whole ids and rows on one line for grep and scripts. No
# emoji: Rich would turn a `:smile:` inside a job's data into a picture.
out = Console(highlight=False, emoji=False, width=None if sys.stdout.isatty() else 240)
err = Console(stderr=True, highlight=False, emoji=False, soft_wrap=True)


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


def add_row(table: Table, *cells: Any) -> None:
    """A row whose text cells are shown as written (a str cell of a Rich table is
    markup); tq's own styled cells come as Text."""
    table.add_row(*(cell if isinstance(cell, Text) else literal(cell) for cell in cells))


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=True, default=str) + "\n")


# --- runtime ---------------------------------------------------------------------

def make_runtime(args, overrides: dict | None = None, check_backend: bool = True):
    from tq.config import SecretFilter, load_config
    from tq.runtime import configure

    config = load_config(getattr(args, "config", None), overrides=overrides)
    logging.basicConfig(level=getattr(logging, config.log_level.upper()),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:  # secrets never reach a log line
        handler.addFilter(SecretFilter(config.secrets()))
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
    from tq import jobspec
    from tq.submit import SubmitError, enqueue, prepare

    runtime = make_runtime(args)
    if args.file:
        if args.task:
            raise CliError("give a TASK or --file, not both")
        return _submit_file(runtime, args.file, args.if_exists)
    if not args.task:
        raise CliError("give a TASK (e.g. tq.tasks.demo.echo) or --file FILE")
    spec: dict[str, Any] = {"task": args.task}
    try:
        for key in ("args", "kwargs"):
            raw = getattr(args, key)
            if raw is not None:
                spec[key] = _json_option(key, raw)
        for key in ("queue", "priority", "delay", "eta", "expires", "retries", "retry_delay",
                    "retry_backoff", "timeout", "id"):
            value = getattr(args, key)
            if value is not None:
                spec[key] = jobspec.from_text(key, value)
        job = prepare(runtime, spec)
    except SubmitError as exc:
        raise CliError(str(exc)) from None
    skipped = not enqueue(runtime, [job])
    if skipped and args.if_exists == "error":
        raise CliError(f"job {jobspec.show(job.job_id, 80)} already exists "
                       "(--if-exists skip to leave it as it is)")
    if skipped:
        err.print(f"tq: job {jobspec.show(job.job_id, 80)} already exists; skipped",
                  markup=False)
    if args.json:
        print_json({"id": job.job_id, "queue": job.queue, "skipped": skipped})
    else:
        out.print(literal(job.job_id))
    return 0


def _json_option(key: str, raw: str) -> Any:
    from tq import jobspec
    from tq.submit import SubmitError

    if jobspec.depth_exceeds(raw, jobspec.MAX_DEPTH + 1):  # before the parser recurses
        raise SubmitError(f"--{key}: nested deeper than {jobspec.MAX_DEPTH} levels")
    try:
        return json.loads(raw)
    except RecursionError:
        raise SubmitError(f"--{key}: nested deeper than {jobspec.MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise SubmitError(f"--{key} is not valid JSON: {exc}") from None


def _lines(path: str) -> Iterator[tuple[int, bytes]]:
    handle = sys.stdin.buffer if path == "-" else open(path, "rb")
    try:
        for number, line in enumerate(handle, 1):
            yield number, line
    finally:
        if handle is not sys.stdin.buffer:
            handle.close()


def _submit_file(runtime, path: str, if_exists: str) -> int:
    """Every line on its own: a bad line is reported by number and the good ones
    go in; one summary line at the end. A job whose id exists is a bad line,
    or with --if-exists skip is counted as skipped. An outage stops the batch
    with how many lines went in and where it stopped."""
    from tq import jobspec
    from tq.submit import SubmitError, enqueue, parse_spec_line, prepare

    if path != "-" and not os.path.isfile(path):
        raise CliError(f"--file {path}: no such file")
    counts = {"submitted": 0, "skipped": 0}
    bad: list[tuple[int, str]] = []
    batch: list = []  # (line number, prepared)
    last_done = 0  # every line up to here is settled (in, skipped or bad)

    def send() -> None:
        nonlocal batch, last_done
        accepted = {id(job) for job in enqueue(runtime, [job for _, job in batch])}
        for number, job in batch:
            if id(job) in accepted:
                counts["submitted"] += 1
            elif if_exists == "skip":
                counts["skipped"] += 1
            else:
                bad.append((number, f"job {jobspec.show(job.job_id, 80)} already exists "
                                    "(--if-exists skip skips it)"))
        last_done = batch[-1][0]
        batch = []

    number = 0
    try:
        for number, raw in _lines(path):
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                bad.append((number, "not UTF-8 text"))
                continue
            try:
                batch.append((number, prepare(runtime, parse_spec_line(line))))
            except SubmitError as exc:
                bad.append((number, str(exc)))
                continue
            if len(batch) >= BATCH or \
                    time.time() - batch[0][1].record["enqueued_at"] >= BATCH_SECONDS:
                send()
        if batch:
            send()
    except OSError as exc:  # reading the file
        raise CliError(f"--file {path}: {exc.strerror or exc}") from None
    except Exception as exc:  # the queue backend went away mid-batch
        first = batch[0][0] if batch else number
        reason = visible(str(exc).splitlines()[0] if str(exc) else "connection lost")
        _report_bad(bad)
        err.print(f"tq: stopped at line {first:,}: queue backend unreachable ({reason}); "
                  f"{counts['submitted']:,} submitted through line {last_done:,}"
                  + (f", lines {first:,} to {batch[-1][0]:,} may or may not be in"
                     if batch else "")
                  + "; re-run with --if-exists skip to complete it (lines without an "
                  "\"id\" get new ids)", markup=False)
        return 1
    _report_bad(bad)
    summary = f"{counts['submitted']:,} submitted"
    if counts["skipped"]:
        summary += f", {counts['skipped']:,} skipped (already exist)"
    if bad:
        bad.sort()
        summary += f", {len(bad):,} bad: line {bad[0][0]:,}: {bad[0][1]}"
        err.print(literal(f"tq: {summary}"))
        return EXIT_USAGE
    out.print(f"submitted {counts['submitted']} job{'s' if counts['submitted'] != 1 else ''}"
              + (f", {counts['skipped']:,} skipped (already exist)" if counts["skipped"]
                 else ""), markup=False)
    return 0


def _report_bad(bad: list[tuple[int, str]]) -> None:
    bad.sort()
    for number, reason in bad[:MAX_LINE_ERRORS_SHOWN]:
        err.print(f"tq: line {number:,}: {markup(reason)}")
    if len(bad) > MAX_LINE_ERRORS_SHOWN:
        err.print(f"tq: ... and {len(bad) - MAX_LINE_ERRORS_SHOWN:,} more bad lines",
                  markup=False)


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

    from tq.config import ConfigError

    runtime = make_runtime(args)
    try:
        runtime.database  # create the schema now: the first command a new user runs
    except ConfigError as exc:
        # Jobs run through a history outage (their records are kept and written
        # once it is back), so they start through one too.
        err.print(f"tq up: {exc}; starting anyway: jobs run and their history is "
                  "written once the database is back", markup=False)
    group = ConsumerGroup(runtime, workers=args.workers, services=up_services(runtime))
    err.print(f"[bold]tq up[/]: queues {markup(', '.join(runtime.queues))} on "
              f"{markup(runtime.config.queue_url_safe)}; history in "
              f"{markup(runtime.config.history_url_safe)}")
    err.print(literal(f"inbox: {runtime.config.ingest.inbox}   try: tq submit "
                      "tq.tasks.demo.echo --args '[\"hi\"]'   then: tq jobs   (Ctrl-C stops)"))
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
        add_row(table, row["id"], row["queue"] or "", row["task"] or "", row["state"],
                str(row["attempts"] or 0), fmt_time(row["enqueued_at"]), eta,
                fmt_time(row["finished_at"]), visible(error)[:60])
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
        state = Text("paused", style="yellow") if entry["paused"] else Text("running")
        if entry["paused_tasks"]:
            state.append(f" ({len(entry['paused_tasks'])} task paused)")
        add_row(table, name, state, f"{entry['queued']:,}", f"{entry['scheduled']:,}",
                f"{entry['running']:,}", f"{entry['retrying']:,}", f"{entry['failed']:,}",
                f"{entry['succeeded_last_minute']:,}", f"{entry['succeeded_last_hour']:,}",
                fmt_age(entry["oldest_queued_age"]), f"{entry['error_rate_last_hour']:.1%}")
    out.print(table)
    out.print(literal(f"workers alive: {data['workers_alive']}   queue: {data['queue_backend']}"
                      f"   history: {data['history']}"))
    held = data.get("quarantine") or {}
    if any(held.values()):
        parts = [f"{held[key]:,} {key}" for key in ("messages", "records") if held.get(key)]
        out.print(f"[yellow]set aside: {', '.join(parts)}[/] (tq quarantine)")
    return 0


def cmd_workers(args) -> int:
    from tq.queries import list_workers

    runtime = make_runtime(args)
    if args.forget:
        from tq import ops
        from tq.text import visible
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


def cmd_periodic(args) -> int:
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


# --- acting -----------------------------------------------------------------------------

def cmd_pause(args) -> int:
    from tq import ops

    runtime = make_runtime(args)
    ops.pause(runtime, args.queue_name, args.task_name)
    out.print(literal(f"paused {args.queue_name}"
                      + (f" / {args.task_name}" if args.task_name else "")))
    return 0


def cmd_resume(args) -> int:
    from tq import ops

    runtime = make_runtime(args)
    moved = ops.resume(runtime, args.queue_name, args.task_name)
    out.print(literal(f"resumed {args.queue_name}"
                      + (f" / {args.task_name}" if args.task_name else "")
                      + (f"; {moved} held job(s) back on the queue" if moved else "")))
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


def report(result, json_output: bool = False, given_ids: bool = False) -> int:
    """One clear line (or JSON) for an action's outcome, and its exit status:
    0 done (or nothing to do for a filter), 1 a server failed part-way or before
    anything was done, 2 ids were given and none of them could be acted on."""
    from tq.text import visible

    if json_output:
        print_json(result.as_dict())
    else:
        (err if result.outcome in ("failed", "partly") else out).print(
            ("tq: error: " if result.outcome == "failed" else "") + visible(result.line()),
            markup=False)
        for job_id, why in list(result.skipped.items())[:MAX_LINE_ERRORS_SHOWN]:
            err.print(f"tq: {visible(job_id)}: {visible(why)}", markup=False)
        if len(result.skipped) > MAX_LINE_ERRORS_SHOWN:
            err.print(f"tq: … and {len(result.skipped) - MAX_LINE_ERRORS_SHOWN:,} more "
                      "skipped (--json lists them all)", markup=False)
    if result.error:
        return 1
    return EXIT_USAGE if given_ids and not result.done else 0


def cmd_cancel(args) -> int:
    from tq import ops

    runtime = make_runtime(args, check_backend=False)  # an outage: the action says so
    ids, flt = _ids_or_filter(args)
    return report(ops.cancel(runtime, ids, flt), args.json, given_ids=bool(ids))


def cmd_requeue(args) -> int:
    from tq import ops

    runtime = make_runtime(args, check_backend=False)  # an outage: the action says so
    if not args.ids and not (args.where or args.state or args.queue or args.task
                             or args.since):
        args.state = ["failed"]
    ids, flt = _ids_or_filter(args)
    result = ops.requeue(runtime, ids, flt)
    if result.already and not args.json:
        out.print(f"{len(result.already):,} had been requeued before (no second copy made)",
                  markup=False)
    return report(result, args.json, given_ids=bool(ids))


def cmd_purge(args) -> int:
    from tq import ops

    runtime = make_runtime(args, check_backend=False)  # an outage: the action says so
    if not args.state:
        raise CliError("purge needs --state (failed, canceled or expired): it deletes on "
                       "purpose only")
    try:
        result = ops.purge(runtime, parse_filter(args))
    except ops.ActionError as exc:
        raise CliError(str(exc)) from None
    return report(result, getattr(args, "json", False))


def cmd_run_now(args) -> int:
    from tq import ops

    runtime = make_runtime(args, check_backend=False)  # an outage: the action says so
    return report(ops.run_now(runtime, args.ids), getattr(args, "json", False), given_ids=True)


def cmd_audit(args) -> int:
    from tq import audit
    from tq.text import visible
    from tq.where import parse_time

    runtime = make_runtime(args, check_backend=False)
    since = parse_time(args.since) if args.since else None
    from tq.queries import catch_up

    catch_up(runtime)  # entries still in the outbox (made while the database was down)
    rows = audit.entries(runtime.database, since=since, limit=args.limit)
    if args.json:
        print_json(rows)
        return 0
    table = new_table("when", "user", "host", "action", "target", "count", "outcome",
                      right=("count",))
    for row in rows:
        outcome = row["outcome"] or ""
        if row["detail"]:
            outcome += f": {row['detail']}"
        table.add_row(fmt_time(row["at"]), visible(row["user"]), visible(row["host"]),
                      visible(row["action"]), visible(row["target"] or ""),
                      f"{row['count']:,}", visible(outcome))
    out.print(table)
    return 0


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
    out.print(literal("schema up to date" if not added else "created: " + ", ".join(added)))
    return 0


def cmd_tui(args) -> int:
    from tq.tui.app import run_tui

    runtime = make_runtime(args)
    return run_tui(runtime, readonly=args.readonly)


# --- parser -------------------------------------------------------------------------------

def _moment(text: str) -> str:
    """An argparse type: a duration or ISO time that where.parse_time accepts."""
    from tq.where import FilterError, parse_time

    try:
        parse_time(text)
    except (FilterError, ValueError, OverflowError):
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise argparse.ArgumentTypeError(f"time '{shown}': use a duration like 30m, 2h, 7d "
                                         "or an ISO time") from None
    return text


def _filter_options(parser: argparse.ArgumentParser, state_default=None) -> None:
    parser.add_argument("--where", help="filter, e.g. 'task:send_email state:failed since:1h'")
    parser.add_argument("--state", action="append", default=state_default)
    parser.add_argument("--queue", action="append")
    parser.add_argument("--task")
    parser.add_argument("--since", type=_moment,
                        help="only jobs enqueued since: 30m, 2h, 7d or ISO time")
    parser.add_argument("--before", type=_moment,
                        help="only jobs enqueued before: 30m, 2h, 7d or ISO time")


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (usage is in --help) and exit 2."""

    def error(self, message: str) -> NoReturn:
        from tq.text import visible

        self.exit(EXIT_USAGE, f"{self.prog}: error: {visible(message)} (see --help)\n")


def whole(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from low to high, said so when it is not."""
    def parse(text: str) -> int:
        if not re.fullmatch(r"[+-]?[0-9]{1,19}", text.strip()):
            raise argparse.ArgumentTypeError(f"expected a whole number from {low} to {high}, "
                                             f"got '{text[:40]}'")
        number = int(text)
        if not low <= number <= high:
            raise argparse.ArgumentTypeError(f"expected a whole number from {low} to {high}, "
                                             f"got {number}")
        return number
    return parse


MAX_LIMIT = 100_000  # rows one `tq jobs` prints
MAX_WORKERS = 1024  # as [consumer] workers
PORT = whole(1, 65535)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="tq", description="Operations console and toolkit "
                    "for Huey task queues.")
    parser.add_argument("--config", help="settings file (default: $TQ_CONFIG, else ./tq.ini)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("up", help="run consumer, scheduler and watcher on this machine")
    p.add_argument("-w", "--workers", type=whole(1, MAX_WORKERS))
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("consumer", help="run workers for one or more queues")
    p.add_argument("--queue", "-q", action="append", help="queue to serve (repeat; default all)")
    p.add_argument("-w", "--workers", type=whole(1, MAX_WORKERS), help="workers per queue")
    p.add_argument("-k", "--worker-type", choices=("thread", "process"))
    p.add_argument("--no-periodic", action="store_true", help="do not run periodic tasks here")
    p.set_defaults(func=cmd_consumer)

    p = sub.add_parser("submit", help="enqueue a job, or a batch with --file")
    p.add_argument("task", nargs="?", help="dotted task name, e.g. tq.tasks.demo.echo")
    p.add_argument("--args", help="JSON array of positional arguments")
    p.add_argument("--kwargs", help="JSON object of keyword arguments")
    p.add_argument("--queue")
    p.add_argument("--priority", help="whole number 0..1000, higher runs first")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--delay", help="seconds from now")
    when.add_argument("--eta", help="ISO 8601 time (naive means UTC)")
    p.add_argument("--expires", help="seconds after which it must not start")
    p.add_argument("--retries")
    p.add_argument("--retry-delay", dest="retry_delay", help="seconds before a retry")
    p.add_argument("--retry-backoff", dest="retry_backoff",
                   help="factor applied to the retry delay after each retry")
    p.add_argument("--timeout", help="seconds before the job is stopped")
    p.add_argument("--id", help="job id (default: a new UUID); an id that exists is refused")
    p.add_argument("--if-exists", dest="if_exists", choices=("error", "skip"), default="error",
                   help="a job whose id exists: refuse it (error, the default) or skip it")
    p.add_argument("--file", help="JSON lines file of jobs ('-' for stdin)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_submit)

    from tq.queries import SORTABLE

    p = sub.add_parser("jobs", help="list jobs from history, newest first")
    _filter_options(p)
    p.add_argument("--limit", type=whole(1, MAX_LIMIT), default=40,
                   help=f"rows to show, 1 to {MAX_LIMIT} (default 40)")
    p.add_argument("--sort", default="enqueued_at", choices=SORTABLE)
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
    p.add_argument("--forget", metavar="ID",
                   help="remove a dead (silent) consumer from the list")
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

    p = sub.add_parser("requeue", help="run finished jobs again as new jobs (each once; "
                       "the original is retired as requeued)")
    p.add_argument("ids", nargs="*", metavar="ID")
    _filter_options(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_requeue)

    p = sub.add_parser("purge", help="delete dead letters from history")
    _filter_options(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_purge)

    p = sub.add_parser("run-now", help="enqueue scheduled or retrying jobs now")
    p.add_argument("ids", nargs="+", metavar="ID")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_run_now)

    p = sub.add_parser("audit", help="who did what to which jobs, newest first")
    p.add_argument("--since", help="only entries since: 30m, 2h, 7d or ISO time")
    p.add_argument("--limit", type=whole(1, MAX_LIMIT), default=200)
    p.add_argument("--json", action="store_true", help="entries with every job id they touched")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("quarantine", help="what tq set aside: list, show, requeue, purge")
    p.add_argument("action", nargs="?", default="list",
                   help="list (default), show ID, requeue ID..., purge ID... | --all")
    p.add_argument("ids", nargs="*", help="quarantine ids: m<n> (message), r<n> (record)")
    p.add_argument("--all", action="store_true", help="with purge: every entry")
    p.add_argument("--limit", type=whole(1, MAX_LIMIT), default=100)
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


def _error_line(text: str) -> str:
    """One stderr line: first line only, secrets masked, control characters visible."""
    from tq import runtime as runtime_module
    from tq.config import environment_secrets, mask_secrets
    from tq.text import visible

    secrets = environment_secrets()
    if runtime_module._current is not None:
        secrets += runtime_module._current.config.secrets()
    first = text.splitlines()[0] if text.strip() else text
    return visible(mask_secrets(first, secrets))


def main(argv: list[str] | None = None) -> int:
    from tq.config import ConfigError
    from tq.runtime import UnknownQueue
    from tq.where import FilterError

    for stream in (sys.stdout, sys.stderr):
        # Whatever slips past tq.text (a lone surrogate, a terminal that is not
        # UTF-8) is shown as an escape, never a UnicodeEncodeError.
        if callable(getattr(stream, "reconfigure", None)):
            stream.reconfigure(errors="backslashreplace")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already said in one line
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.func(args)
    except (CliError, ConfigError, UnknownQueue, FilterError) as exc:
        err.print(f"tq: error: {_error_line(str(exc))}", markup=False)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a server down mid-command: one line, not a traceback
        if os.environ.get("TQ_DEBUG"):
            raise
        err.print(f"tq: error: {type(exc).__name__}: {_error_line(str(exc))}", markup=False)
        return 1


if __name__ == "__main__":
    sys.exit(main())
