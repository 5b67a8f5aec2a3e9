"""`tq serve`: the JSON HTTP API (tq.http.app) on uvicorn.

Binds 127.0.0.1 by default. Without TQ_API_TOKENS it refuses any address but
loopback (exit 2) and says at start that anyone on this machine can act.
fastapi and uvicorn are imported only when the verb runs, so `tq --help`
stays light.
"""
from __future__ import annotations

import argparse

from tq.cli.common import CliError, err, make_runtime, whole
from tq.text import literal

DEFAULT_PORT = 8000


def cmd_serve(args: argparse.Namespace) -> int:
    from tq import tokens as tq_tokens
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
    host = f"[{args.bind}]" if ":" in args.bind else args.bind
    if not tokens:
        err.print("tq: no TQ_API_TOKENS: anyone on this machine can act", markup=False)
    err.print(literal(f"API on http://{host}:{args.port}/api/v1 (docs at /docs; Ctrl-C stops)"))
    err.file.flush()
    try:
        server.run()
    except OSError as exc:
        raise CliError(f"cannot listen on {args.bind}:{args.port}: "
                       f"{exc.strerror or exc}") from None
    except KeyboardInterrupt:
        pass
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="the JSON HTTP API (OpenAPI at /docs)")
    p.add_argument("--bind", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; another needs TQ_API_TOKENS)")
    p.add_argument("--port", type=whole(0, 65535), default=DEFAULT_PORT,
                   help=f"port (default {DEFAULT_PORT})")
    p.set_defaults(func=cmd_serve)
