"""The `tq` command. Verbs match what an operator thinks; `--json` where scripts read.

Every verb is a thin shell around a function in submit, ops or queries, the
same functions the console calls. Errors are one line on stderr and exit 2;
an action (cancel, requeue, purge, run-now) reports its own outcome (see
tq.cli.actions.report): exit 1 when a server failed before or during it.

The verbs live in a few modules, each with `add_commands(subparsers)`, listed
in VERBS in the order `tq --help` shows them. They are imported like any other
module: a mistake in one fails every `tq` command loudly rather than quietly
dropping its verbs. What they share (output streams, runtime, argparse types)
is tq.cli.common; how times and ages look is tq.format, shared with the console.
"""
from __future__ import annotations

import argparse
import os
import sys

from tq.cli import actions, admin, ingest, jobs, run, serve, stats, submit, web
from tq.cli.common import EXIT_USAGE, CliError, Parser, err, error_line

VERBS = (
    run,      # up, consumer
    submit,   # submit
    jobs,     # jobs, show, wait, status, workers, periodic
    actions,  # pause, resume, cancel, requeue, purge, run-now
    admin,    # audit, quarantine, db, tui
    ingest,   # watch, ingest
    stats,    # stats, metrics
    web,      # web
    serve,    # serve
)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="tq", description="Operations console and toolkit "
                    "for Huey task queues.")
    parser.add_argument("--config", help="settings file (default: $TQ_CONFIG, else ./tq.ini)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in VERBS:
        module.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):
        # Whatever slips past tq.text (a lone surrogate, a terminal that is not
        # UTF-8) is shown as an escape, never a UnicodeEncodeError.
        reconfigure = getattr(stream, "reconfigure", None)
        if callable(reconfigure):
            reconfigure(errors="backslashreplace")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already said in one line
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    # Imported once a verb runs, not for --help or a usage error (see tq.cli.common).
    from tq.config import ConfigError
    from tq.runtime import UnknownQueue
    from tq.where import FilterError

    try:
        return int(args.func(args))
    except (CliError, ConfigError, UnknownQueue, FilterError) as exc:
        err.print(f"tq: error: {error_line(str(exc))}", markup=False)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a server down mid-command: one line, not a traceback
        if os.environ.get("TQ_DEBUG"):
            raise
        err.print(f"tq: error: {_outage_line(exc)}", markup=False)
        return 1


def _outage_line(exc: Exception) -> str:
    """A server that failed mid-command, said as what it is; anything else (a
    defect) keeps its exception's name, which is what a bug report needs."""
    from peewee import InterfaceError, OperationalError

    from tq.storage.contract import backend_unreachable
    if backend_unreachable(exc):
        return f"a queue server is unreachable: {error_line(str(exc))}"
    if isinstance(exc, (OperationalError, InterfaceError)):
        return f"the history database is unreachable: {error_line(str(exc))}"
    return f"{type(exc).__name__}: {error_line(str(exc))}"


__all__ = ["main", "build_parser", "VERBS"]
