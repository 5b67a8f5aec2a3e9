"""`tq submit`: one job from options, or a batch from a JSON-lines file.

A thin shell around tq.submit (prepare, enqueue, submit_lines); a bad line of a
file is reported by number and the good ones go in. A line without an "id" gets
one from the file's content and its line number (tq.submit.content_prefix), so
a batch cut short by an outage is completed by a re-run with --if-exists skip,
and one submitted twice by accident is refused; --again makes new jobs of it.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any

from tq.cli.common import (
    EXIT_USAGE,
    MAX_LINE_ERRORS_SHOWN,
    CliError,
    err,
    make_runtime,
    out,
    print_json,
)
from tq.text import literal, markup, visible

if TYPE_CHECKING:
    from tq.runtime import Runtime
    from tq.submit import BatchReport

BATCH = 1000
# A batch also goes out once its first job is this old: a job's enqueue time is
# stamped when its line is read, so it must reach the queue soon after, or a
# slow file would make later-stamped jobs of other submitters run first.
BATCH_SECONDS = 0.2
SINGLE_JOB_OPTIONS = ("args", "kwargs", "queue", "priority", "delay", "eta", "expires", "retries",
                      "retry_delay", "retry_backoff", "timeout", "id")


def cmd_submit(args: argparse.Namespace) -> int:
    from tq import jobspec
    from tq.submit import SubmitError, enqueue, prepare

    if args.file:
        if args.task:
            raise CliError("give a TASK or --file, not both")
        given = [name for name in SINGLE_JOB_OPTIONS if getattr(args, name) is not None]
        if given:
            raise CliError(f"--{given[0].replace('_', '-')} is for a single job; with --file "
                           "give it on each line")
        return _submit_file(make_runtime(args), args.file, args.if_exists, args.again)
    if args.again:
        raise CliError("--again is for --file (a single job without --id gets a new id)")
    if not args.task:
        raise CliError("give a TASK (e.g. tq.tasks.demo.echo) or --file FILE")
    runtime = make_runtime(args)
    spec: dict[str, Any] = {"task": args.task}
    try:
        for key in ("args", "kwargs"):
            raw = getattr(args, key)
            if raw is not None:
                spec[key] = _json_option(key, raw)
        for key in SINGLE_JOB_OPTIONS[2:]:
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
    from tq import jobspec, strictjson
    from tq.submit import SubmitError

    try:  # the arguments' levels inside the option's own array or object
        return strictjson.loads(raw, jobspec.MAX_DEPTH, wrapper_levels=1)
    except strictjson.StrictJsonError as exc:
        raise SubmitError(f"--{key}: {exc}") from None


@contextmanager
def _batch_file(path: str) -> Iterator[tuple[IO[bytes], str]]:
    """The batch to read and its content's SHA-256, which the ids of its lines
    come from. A file is hashed, then read from the start; stdin cannot be read
    twice, so it is spooled to an unnamed temporary file while it is hashed,
    and submitted once it has ended (the same content gives the same ids
    whichever way it comes)."""
    if path == "-":
        with tempfile.TemporaryFile(prefix="tq-submit-") as spool:
            digest = hashlib.sha256()
            while block := sys.stdin.buffer.read(1 << 20):
                digest.update(block)
                spool.write(block)
            spool.seek(0)
            yield spool, digest.hexdigest()
        return
    with open(path, "rb") as handle:
        sha256 = hashlib.file_digest(handle, "sha256").hexdigest()
        seen = _stamp(handle)
        handle.seek(0)
        yield handle, sha256
        if _stamp(handle) != seen:
            err.print(f"tq: warning: --file {markup(path)} changed while it was read; the ids "
                      "of its lines without an \"id\" come from its content before that")


def _stamp(handle: IO[bytes]) -> tuple[int, int]:
    status = os.fstat(handle.fileno())
    return status.st_size, status.st_mtime_ns


def _submit_file(runtime: Runtime, path: str, if_exists: str, again: bool) -> int:
    """Every line on its own (tq.submit.submit_lines): a bad line is reported by
    number and the good ones go in; one summary line at the end. A line without
    an "id" gets one from the file's content and its line number, so a line
    submitted before is refused (reported as ranges of lines, exit 2) or, with
    --if-exists skip, skipped; --again gives them new ids. An outage stops the
    batch with how many lines went in and where it stopped (exit 1)."""
    from tq.submit import content_prefix, submit_lines

    if path != "-" and not os.path.isfile(path):
        raise CliError(f"--file {path}: no such file")
    try:
        with _batch_file(path) as (handle, sha256):
            report = submit_lines(
                runtime, enumerate(handle, 1), if_exists=if_exists, batch_size=BATCH,
                batch_seconds=BATCH_SECONDS,
                prefix=content_prefix("ln", sha256, uuid.uuid4().hex if again else None))
    except OSError as exc:  # reading the file
        raise CliError(f"--file {path}: {exc.strerror or exc}") from None
    if report.outage is not None:
        return _report_outage(report, again)
    everything_before = bool(report.before) and len(report.before) == report.jobs
    _report_lines(report, ranges=not everything_before)
    if everything_before:
        good, count = "good " if report.bad else "", len(report.before)
        summary = ((f"all {count:,} {good}lines were" if count > 1 else f"its {good}line was")
                   + " submitted before (same file content): --if-exists skip completes a cut "
                   "batch, --again submits it again as new jobs")
    else:
        summary = f"{report.submitted:,} submitted"
        if report.skipped:
            summary += f", {report.skipped:,} skipped (already exist)"
        if report.before:
            summary += (f", {len(report.before):,} submitted before (same file content; "
                        "--if-exists skip skips them, --again submits them as new jobs)")
    if report.bad:
        first, reason = min(report.bad)
        summary += (f"{'; ' if everything_before else ', '}{len(report.bad):,} bad: "
                    f"line {first:,}: {reason}")
    if report.bad or report.before:
        err.print(literal(f"tq: {summary}"))
        return EXIT_USAGE
    out.print(f"submitted {report.submitted} job{'s' if report.submitted != 1 else ''}"
              + (f", {report.skipped:,} skipped (already exist)" if report.skipped else ""),
              markup=False)
    return 0


def _report_outage(report: BatchReport, again: bool) -> int:
    assert report.unsure is not None
    first, last = report.unsure
    _report_lines(report, ranges=True)
    done = f"{report.submitted:,} submitted"
    if report.skipped:
        done += f", {report.skipped:,} skipped"
    if report.before:
        done += f", {len(report.before):,} submitted before"
    rerun = ("re-run with --if-exists skip to complete it for the lines with an \"id\" (the "
             "others had new ids, --again: a re-run submits them again)" if again else
             "re-run with --if-exists skip to complete it")
    err.print(f"tq: stopped at line {first:,}: queue backend unreachable "
              f"({visible(report.outage or '')}); {done} through line {report.settled:,}, "
              f"lines {first:,} to {last:,} may or may not be in; {rerun}", markup=False)
    return 1


def _report_lines(report: BatchReport, ranges: bool) -> None:
    """The refused lines by number: bad ones with their reason, lines submitted
    before as ranges (a whole file again is one line, not thousands)."""
    entries = [(number, f"line {number:,}: {markup(reason)}") for number, reason in report.bad]
    if ranges:
        entries += [(start, (f"line {start:,}" if start == end else
                             f"lines {start:,} to {end:,}") + ": submitted before (same file "
                     "content)") for start, end in _runs(report.before)]
    entries.sort()
    for _, text in entries[:MAX_LINE_ERRORS_SHOWN]:
        err.print(f"tq: {text}")
    if len(entries) > MAX_LINE_ERRORS_SHOWN:
        err.print(f"tq: ... and {len(entries) - MAX_LINE_ERRORS_SHOWN:,} more bad lines",
                  markup=False)


def _runs(numbers: list[int]) -> Iterator[tuple[int, int]]:
    """Sorted line numbers as (first, last) runs of consecutive numbers."""
    start = end = None
    for number in numbers:
        if end is not None and number == end + 1:
            end = number
            continue
        if start is not None and end is not None:
            yield start, end
        start = end = number
    if start is not None and end is not None:
        yield start, end


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("submit", help="enqueue a job, or a batch with --file")
    p.add_argument("task", nargs="?", help="dotted task name, e.g. tq.tasks.demo.echo")
    p.add_argument("--args", help="JSON array of positional arguments")
    p.add_argument("--kwargs", help="JSON object of keyword arguments")
    p.add_argument("--queue")
    p.add_argument("--priority", help="whole number 0..1000 or low (0), medium (500), high "
                   "(1000); higher runs first")
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
    p.add_argument("--file", help="JSON lines file of jobs ('-' for stdin); a line without an "
                   "id gets one from the file's content and line number")
    p.add_argument("--again", action="store_true",
                   help="--file: lines without an id get new ids, so a file submitted before "
                        "is submitted again as new jobs")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_submit)
