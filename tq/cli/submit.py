"""`tq submit`: one job from options, or a batch from a JSON-lines file.

A thin shell around tq.submit (prepare, enqueue); a bad line of a file is
reported by number and the good ones go in.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from tq.cli.common import (
    EXIT_USAGE,
    MAX_LINE_ERRORS_SHOWN,
    CliError,
    err,
    make_runtime,
    out,
    print_json,
)
from tq.format import first_line
from tq.text import literal, markup, visible

if TYPE_CHECKING:
    from tq.runtime import Runtime

BATCH = 1000
# A batch also goes out once its first job is this old: a job's enqueue time is
# stamped when its line is read, so it must reach the queue soon after, or a
# slow file would make later-stamped jobs of other submitters run first.
BATCH_SECONDS = 0.2


def cmd_submit(args: argparse.Namespace) -> int:
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
        yield from enumerate(handle, 1)
    finally:
        if handle is not sys.stdin.buffer:
            handle.close()


def _submit_file(runtime: Runtime, path: str, if_exists: str) -> int:
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
        reason = visible(first_line(str(exc)) or "connection lost")
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



def add_commands(sub: argparse._SubParsersAction) -> None:
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
