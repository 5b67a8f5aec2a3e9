"""`tq web`: the console (`tq tui`) in a browser, behind the API tokens.

A verb of its own beside `tq serve` (the JSON API): the two are different
servers (textual-serve is aiohttp, the API is FastAPI on uvicorn), each on its
own port, and an operator can run one without the other. See tq.http.console
for the auth rules; the token is read from TQ_API_TOKENS only, never a flag.
"""
from __future__ import annotations

import argparse

from tq.cli.common import err, make_runtime, server_arguments, serving
from tq.text import literal


def cmd_web(args: argparse.Namespace) -> int:
    from tq import tokens
    from tq.http.console import ConsoleServer

    # Settings and tokens are read now, so a mistake fails here, not in each browser.
    make_runtime(args, check_backend=False)
    server = ConsoleServer(tokens.load(), host=args.bind, port=args.port,
                           config=getattr(args, "config", None))

    def announce(port: int) -> None:
        host = f"[{args.bind}]" if ":" in args.bind else args.bind
        how = ("open /?token=YOUR_TOKEN once" if server.tokens
               else "no API tokens: loopback only, as the local operator")
        err.print(literal(f"console on http://{host}:{port}/ ({how}; Ctrl-C stops)"))
        err.file.flush()

    with serving(args):
        server.run(announce)
    return 0


DEFAULT_PORT = 8001  # beside tq serve's; aiohttp is imported only when `tq web` runs


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("web", help="the console in a browser (read tokens get it read-only)")
    server_arguments(p, DEFAULT_PORT)
    p.set_defaults(func=cmd_web)
