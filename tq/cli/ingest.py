"""`tq watch` and `tq ingest`: files into jobs, watched or once (the work is in tq.ingest)."""
from __future__ import annotations

import argparse
import os
import signal
import threading
from types import FrameType

from tq.cli.common import EXIT_USAGE, err, make_runtime, out, print_json
from tq.text import literal, markup


def cmd_watch(args: argparse.Namespace) -> int:
    from tq.ingest.watcher import Watcher

    inbox = os.path.abspath(args.inbox) if args.inbox else None
    runtime = make_runtime(args, overrides={"ingest": {"inbox": inbox}})
    stop = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()
    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)
    watcher = Watcher(runtime)
    err.print(f"[bold]tq watch[/]: inbox {markup(watcher.folders.inbox)} -> queues on "
              f"{markup(runtime.config.queue_url_safe)}   (Ctrl-C stops)", markup=True)
    watcher.run(stop)
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from tq.ingest.pipeline import Result, check_routes, ingest_file

    runtime = make_runtime(args)
    check_routes(runtime)
    results: list[Result] = []
    for name in args.files:
        if not os.path.lexists(name):
            results.append(Result(name, "missing", reason="no such file"))
        elif os.path.isdir(name) and not os.path.islink(name):
            results.append(Result(name, "missing", reason="a folder, not a file"))
        else:
            try:
                results.append(ingest_file(runtime, name, again=args.again))
            except OSError as exc:  # e.g. no permission to move it
                results.append(Result(name, "failed", reason=f"{exc.strerror or exc}"))
    if args.json:
        print_json([result.as_dict() for result in results])
    else:
        for result in results:
            line = result.summary()
            where = result.errors_path if result.rejected else result.path
            if where:
                line += f" -> {where}"
            (err if result.outcome in ("missing", "failed", "rejected", "taken") else out).print(
                literal(line))
    if any(result.outcome not in ("done", "duplicate") or result.rejected
           for result in results):
        return EXIT_USAGE
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("watch", help="turn files dropped in the inbox into jobs")
    p.add_argument("--inbox", help="folder to watch (default: [ingest] inbox)")
    p.set_defaults(func=cmd_watch)

    p = sub.add_parser("ingest", help="turn files into jobs now, once (no watching)")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--again", action="store_true",
                   help="ingest content already ingested before (new jobs)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_ingest)
