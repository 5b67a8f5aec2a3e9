"""`tq up` and `tq consumer`: running the workers on this machine.

`tq up` is the one command a new user runs: consumer, scheduler and the inbox
watcher in one process; `tq consumer` runs just workers for chosen queues.
"""
from __future__ import annotations

import argparse
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from tq.cli.common import MAX_WORKERS, err, make_runtime, whole
from tq.text import literal, markup

if TYPE_CHECKING:
    from tq.runtime import Runtime


def cmd_consumer(args: argparse.Namespace) -> int:
    from tq.consumer import ConsumerGroup

    runtime = make_runtime(args)
    migrate_at_start(runtime, "tq consumer")
    group = ConsumerGroup(runtime, queues=args.queue, workers=args.workers,
                          worker_type=args.worker_type, periodic=not args.no_periodic)
    group.run()
    return 0


def migrate_at_start(runtime: Runtime, verb: str,
                     meanwhile: str = "jobs run and their history is written once the "
                                      "database is back") -> None:
    """A writer brings the history schema up to date before it writes (tq.migrations)."""
    from tq.config import ConfigError
    from tq.migrations import SchemaError

    try:
        runtime.migrate_history()
    except SchemaError:
        raise  # newer than this tq: refuse to write into it
    except ConfigError as exc:
        # Jobs run through a history outage (their records are kept and written
        # once it is back, the schema migrated first), so they start through one too.
        err.print(f"{verb}: {exc}; starting anyway: {meanwhile}", markup=False)


def up_services(runtime: Runtime) -> list[Callable[[threading.Event], None]]:
    """What `tq up` runs beside the consumer: the inbox watcher."""
    from tq.ingest.watcher import watch_service

    return [watch_service(runtime)]


def cmd_up(args: argparse.Namespace) -> int:
    from tq.consumer import ConsumerGroup

    runtime = make_runtime(args)
    migrate_at_start(runtime, "tq up")
    group = ConsumerGroup(runtime, workers=args.workers, services=up_services(runtime))
    err.print(f"[bold]tq up[/]: queues {markup(', '.join(runtime.queues))} on "
              f"{markup(runtime.config.queue_url_safe)}; history in "
              f"{markup(runtime.config.history_url_safe)}")
    err.print(literal(f"inbox: {runtime.config.ingest.inbox}   try: tq submit "
                      "tq.tasks.demo.echo --args '[\"hi\"]'   then: tq jobs   (Ctrl-C stops)"))
    group.run()
    return 0



def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("up", help="run consumer, scheduler and watcher on this machine")
    p.add_argument("-w", "--workers", type=whole(1, MAX_WORKERS))
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("consumer", help="run workers for one or more queues")
    p.add_argument("--queue", "-q", action="append", help="queue to serve (repeat; default all)")
    p.add_argument("-w", "--workers", type=whole(1, MAX_WORKERS), help="workers per queue")
    p.add_argument("-k", "--worker-type", choices=("thread", "process"))
    p.add_argument("--no-periodic", action="store_true", help="do not run periodic tasks here")
    p.set_defaults(func=cmd_consumer)
