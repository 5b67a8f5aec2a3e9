"""`tq pause`, `resume`, `cancel`, `requeue`, `purge`, `run-now`: acting on queues and jobs.

Each is a thin shell around tq.ops, the functions the console acts through, and
reports the outcome with report(): exit 1 when a server failed before or during
it, 2 when ids were given and none could be acted on.
"""
from __future__ import annotations

import argparse
from typing import Any

from tq.cli.common import (
    EXIT_USAGE,
    MAX_LINE_ERRORS_SHOWN,
    CliError,
    err,
    filter_options,
    make_runtime,
    out,
    parse_filter,
    print_json,
)
from tq.text import literal, visible


def cmd_pause(args: argparse.Namespace) -> int:
    from tq import ops

    runtime = make_runtime(args)
    try:
        ops.pause(runtime, args.queue_name, args.task_name)
    except ops.ActionError as exc:  # an attached app's unknown task: bad input
        raise CliError(str(exc)) from None
    out.print(literal(f"paused {args.queue_name}"
                      + (f" / {args.task_name}" if args.task_name else "")))
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from tq import ops

    runtime = make_runtime(args)
    try:
        moved = ops.resume(runtime, args.queue_name, args.task_name)
    except ops.ActionError as exc:
        raise CliError(str(exc)) from None
    out.print(literal(f"resumed {args.queue_name}"
                      + (f" / {args.task_name}" if args.task_name else "")
                      + (f"; {moved} held job(s) back on the queue" if moved else "")))
    return 0


def _ids_or_filter(args: argparse.Namespace) -> tuple[list[str] | None, Any]:
    if args.ids and (args.where or args.state or args.queue or args.task):
        raise CliError("give job ids or a filter, not both")
    if args.ids:
        return args.ids, None
    flt = parse_filter(args)
    if flt.is_empty():
        raise CliError("give job ids, or a filter such as --state failed --queue events")
    return None, flt


SHOWN_ID = 100  # characters of a skipped id shown (no job id is longer than 64)


def _shown_id(job_id: str) -> str:
    shown = visible(job_id)
    return shown if len(shown) <= SHOWN_ID else shown[:SHOWN_ID] + "…"


def report(result, json_output: bool = False, given_ids: bool = False) -> int:
    """One clear line (or JSON) for an action's outcome, and its exit status:
    0 done (or nothing to do for a filter), 1 a server failed part-way or before
    anything was done, 2 ids were given and none of them could be acted on."""

    if json_output:
        print_json(result.as_dict())
    else:
        (err if result.outcome in ("failed", "partly") else out).print(
            ("tq: error: " if result.outcome == "failed" else "") + visible(result.line()),
            markup=False)
        for job_id, why in list(result.skipped.items())[:MAX_LINE_ERRORS_SHOWN]:
            err.print(f"tq: {_shown_id(job_id)}: {visible(why)}", markup=False)
        if len(result.skipped) > MAX_LINE_ERRORS_SHOWN:
            err.print(f"tq: … and {len(result.skipped) - MAX_LINE_ERRORS_SHOWN:,} more "
                      "skipped (--json lists them all)", markup=False)
    if result.error:
        return 1
    return EXIT_USAGE if given_ids and not result.done else 0


def dry_run(runtime: Any, action: str, ids: list[str] | None, flt: Any,
            json_output: bool = False) -> int:
    """--dry-run: what `action` would touch (tq.ops.preview, the count the console asks
    with) and a few ids; nothing is changed. Exit 0, or 1 if a server did not answer."""
    from tq import ops

    try:
        preview = ops.preview(runtime, action, ids, flt)
    except ops.ActionError as exc:
        raise CliError(str(exc)) from None
    except Exception as exc:
        err.print(f"tq: error: could not count what to {action.replace('_', ' ')}: "
                  f"{visible(ops.reason(exc))}", markup=False)
        return 1
    if json_output:
        print_json(preview.as_dict())
        return 0
    out.print(visible(preview.line()), markup=False)
    for job_id in preview.sample:
        out.print(f"  {visible(job_id)}", markup=False)
    if preview.count > len(preview.sample):
        out.print(f"  … and {preview.count - len(preview.sample):,} more", markup=False)
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    from tq import ops

    runtime = make_runtime(args, check_backend=False)  # an outage: the action says so
    ids, flt = _ids_or_filter(args)
    if args.dry_run:
        return dry_run(runtime, "cancel", ids, flt, args.json)
    return report(ops.cancel(runtime, ids, flt), args.json, given_ids=bool(ids))


def cmd_requeue(args: argparse.Namespace) -> int:
    from tq import ops

    runtime = make_runtime(args, check_backend=False)  # an outage: the action says so
    if not args.ids and not (args.where or args.state or args.queue or args.task
                             or args.since):
        args.state = ["failed"]
    ids, flt = _ids_or_filter(args)
    if args.dry_run:
        return dry_run(runtime, "requeue", ids, flt, args.json)
    result = ops.requeue(runtime, ids, flt)
    if result.already and not args.json:
        out.print(f"{len(result.already):,} had been requeued before (no second copy made)",
                  markup=False)
    return report(result, args.json, given_ids=bool(ids))


def cmd_purge(args: argparse.Namespace) -> int:
    from tq import ops

    runtime = make_runtime(args, check_backend=False)  # an outage: the action says so
    if not args.state:
        raise CliError("purge needs --state (failed, canceled or expired): it deletes on "
                       "purpose only")
    if args.dry_run:
        return dry_run(runtime, "purge", None, parse_filter(args), args.json)
    try:
        result = ops.purge(runtime, flt=parse_filter(args))
    except ops.ActionError as exc:
        raise CliError(str(exc)) from None
    return report(result, getattr(args, "json", False))


def cmd_run_now(args: argparse.Namespace) -> int:
    from tq import ops

    runtime = make_runtime(args, check_backend=False)  # an outage: the action says so
    if args.dry_run:
        return dry_run(runtime, "run_now", args.ids, None, args.json)
    return report(ops.run_now(runtime, args.ids), getattr(args, "json", False), given_ids=True)


DRY_RUN_HELP = "print what would be touched and how many; change nothing"


def add_commands(sub: argparse._SubParsersAction) -> None:
    for verb, func, help_text in (("pause", cmd_pause, "stop handing out a queue's jobs"),
                                  ("resume", cmd_resume, "undo pause")):
        p = sub.add_parser(verb, help=help_text)
        p.add_argument("queue_name", metavar="QUEUE")
        p.add_argument("--task", dest="task_name", help="only this task type within the queue")
        p.set_defaults(func=func)

    p = sub.add_parser("cancel", help="cancel jobs by id or filter")
    p.add_argument("ids", nargs="*", metavar="ID")
    filter_options(p)
    p.add_argument("--json", action="store_true")
    p.add_argument("--dry-run", action="store_true", help=DRY_RUN_HELP)
    p.set_defaults(func=cmd_cancel)

    p = sub.add_parser("requeue", help="run finished jobs again as new jobs (each once; "
                       "the original is retired as requeued)")
    p.add_argument("ids", nargs="*", metavar="ID")
    filter_options(p)
    p.add_argument("--json", action="store_true")
    p.add_argument("--dry-run", action="store_true", help=DRY_RUN_HELP)
    p.set_defaults(func=cmd_requeue)

    p = sub.add_parser("purge", help="delete dead letters from history")
    filter_options(p)
    p.add_argument("--json", action="store_true")
    p.add_argument("--dry-run", action="store_true", help=DRY_RUN_HELP)
    p.set_defaults(func=cmd_purge)

    p = sub.add_parser("run-now", help="enqueue scheduled or retrying jobs now")
    p.add_argument("ids", nargs="+", metavar="ID")
    p.add_argument("--json", action="store_true")
    p.add_argument("--dry-run", action="store_true", help=DRY_RUN_HELP)
    p.set_defaults(func=cmd_run_now)
