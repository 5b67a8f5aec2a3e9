"""`tq serve`: the JSON HTTP API (tq.http.app) on uvicorn.

Binds 127.0.0.1 by default. Without TQ_API_TOKENS it refuses any address but
loopback (exit 2) and says at start that anyone on this machine can act.
fastapi and uvicorn are imported only when the verb runs, so `tq --help`
stays light.
"""
from __future__ import annotations

import argparse
import socket

from tq.cli.common import CliError, err, make_runtime, server_arguments, serving
from tq.text import literal

DEFAULT_PORT = 8000


def cmd_serve(args: argparse.Namespace) -> int:
    from tq import tokens as tq_tokens
    from tq.cli.run import migrate_at_start
    from tq.tokens import is_loopback

    runtime = make_runtime(args, check_backend=False)
    tokens = tq_tokens.load()
    if not tokens and not is_loopback(args.bind):
        raise CliError("no TQ_API_TOKENS: tq serve binds loopback only "
                       "(127.0.0.1, ::1, localhost); set tokens to bind another address")
    import uvicorn

    from tq.http.app import create_app

    app = create_app(runtime, tokens, max_body=runtime.config.http.max_body,
                     max_batch_body=runtime.config.http.max_batch_body)
    config = uvicorn.Config(app, host=args.bind, port=args.port, log_level="warning",
                            access_log=False, server_header=False)
    server = uvicorn.Server(config)
    # Bound here, not by uvicorn: a port in use is then one line and exit 2 (uvicorn
    # logs it and exits 3), and with --port 0 the line below names the real port.
    listener = _listen(args)
    # A writer (submits, and the history of what was submitted): the schema made
    # current at start, as a consumer's, so a fresh `tq serve` answers at once,
    # and on the first read that reaches a database missing at start.
    runtime.migrates = True
    migrate_at_start(runtime, "tq serve", "the API answers what the queue backend says "
                                          "until the database is back")
    port = listener.getsockname()[1]
    host = f"[{args.bind}]" if ":" in args.bind else args.bind
    if not tokens:
        err.print("tq: no TQ_API_TOKENS: anyone on this machine can act", markup=False)
    err.print(literal(f"API on http://{host}:{port}/api/v1 (docs at /docs; Ctrl-C stops)"))
    err.file.flush()
    with serving(args):
        server.run(sockets=[listener])
    return 0


def _listen(args: argparse.Namespace) -> socket.socket:
    try:
        family, kind, proto, _, _ = socket.getaddrinfo(
            args.bind, args.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)[0]
        # proto matters: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose
        # proto is IPPROTO_TCP, and with Nagle on every keep-alive response waits
        # out the client's delayed ACK (about 40 ms: 23 requests a second).
        listener = socket.socket(family, kind, proto)
    except OSError as exc:
        raise CliError(f"cannot listen on {args.bind}:{args.port}: "
                       f"{exc.strerror or exc}") from None
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    with serving(args):
        listener.bind((args.bind, args.port))
        return listener
    raise CliError("interrupted")  # Ctrl-C while binding


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="the JSON HTTP API (OpenAPI at /docs)")
    server_arguments(p, DEFAULT_PORT)
    p.set_defaults(func=cmd_serve)
