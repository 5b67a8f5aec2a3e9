"""The console in a browser: `tq web` serves the same Textual console as `tq tui`.

textual-serve (aiohttp) starts one console process per browser connection and
relays Textual's web driver protocol over a websocket; this module puts the
API tokens (tq.tokens) in front of it.

Invariants:

- Auth: a browser cannot send a bearer header on a page load, so the operator
  opens `/?token=...` once. A valid token is swapped for a random session id in
  an HttpOnly, SameSite=Strict cookie and the browser is redirected to `/`, so
  the token is never in the page, a later URL or a Referer; the access log
  writes paths without their query and aiohttp's errors are one line without
  the request (OneLine), so it is never logged either. (A request line too long
  to parse gets aiohttp's own 400, which quotes its start back to its sender.) Every other
  request (the page, the websocket upgrade, downloads) needs that cookie;
  only textual-serve's own static files (its JS and CSS) are public.
  A missing or wrong token or cookie is a 401 page of one line; a websocket
  from another origin is 403. Nothing a request sends is echoed back.
- No tokens configured: the server binds loopback only (the rule of `tq
  serve`) and answers loopback peers naming a loopback Host only (not a name
  rebound to 127.0.0.1 by another site's page), as the local operator.
- A websocket whose Origin is another host than the page's is refused (403).
- The role picks the command: a `read` token's console is `tq tui
  --read-only` (every action refused before any tq.ops call). The child gets
  the server's environment and `--config` (so the same queues and history)
  minus TQ_API_TOKENS, which it does not need, plus TQ_AUDIT_USER: what the
  console does is audited as the token's `api:<name>`.
- At most MAX_CONSOLES consoles run at once (each is a process); one more is
  refused with 503 rather than exhausting the host.
"""
from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import shlex
import signal
import sys
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from textual_serve.app_service import AppService
from textual_serve.server import Server, to_int

from tq import tokens as tokens_module
from tq.audit import AUDIT_USER_ENV
from tq.config import ConfigError
from tq.tokens import Token, Tokens, is_loopback

COOKIE = "tq_console"
SESSION_SECONDS = 12 * 3600
MAX_SESSIONS = 10_000  # the oldest session is forgotten past this many
MAX_CONSOLES = 16
LOCAL_OPERATOR = Token("local", "operate")  # no tokens configured: the loopback operator

HOST = re.compile(r"[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?")

TOKEN = web.RequestKey("tq_token", Token)  # who this request is, set by the guard

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def host_name(host: str) -> str:
    """The name of a Host header value, without its port or IPv6 brackets."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def refuse(status: int, line: str) -> web.Response:
    """A page of one fixed line (never what the request sent)."""
    return web.Response(status=status, text=line + "\n", content_type="text/plain",
                        headers={"Cache-Control": "no-store"})


def child_command(token: Token, config: str | None) -> str:
    """The shell command textual-serve runs for one browser: `tq tui`, read-only for
    a read token, with the server's settings file."""
    argv = [sys.executable, "-m", "tq.cli"]
    if config:
        argv += ["--config", os.path.abspath(config)]
    argv.append("tui")
    if not token.may("operate"):
        argv.append("--read-only")
    return shlex.join(argv)


def child_environment(token: Token, base: dict[str, str] | None = None) -> dict[str, str]:
    """The server's environment without the tokens, naming who acts for the audit trail."""
    env = dict(os.environ if base is None else base)
    env.pop(tokens_module.ENV, None)
    if token is LOCAL_OPERATOR:
        env.pop(AUDIT_USER_ENV, None)
    else:
        env[AUDIT_USER_ENV] = token.actor
    return env


class ConsoleService(AppService):
    """One console process, started with the environment chosen for its token."""

    def __init__(self, command: str, environment: dict[str, str], **kwargs: Any) -> None:
        super().__init__(command, **kwargs)
        self._environment = environment

    def _build_environment(self, width: int = 80, height: int = 24) -> dict[str, str]:
        # textual-serve copies os.environ and adds its driver's settings: keep only
        # those additions on top of the environment chosen for this token.
        env = super()._build_environment(width, height)
        added = {key: value for key, value in env.items() if os.environ.get(key) != value}
        return {**self._environment, **added}


class PathOnlyAccessLogger(AbstractAccessLogger):
    """Method, path and status: never the query (`/?token=` holds a secret)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info("%s %s %s", request.method, request.path, response.status)


class OneLine(logging.Filter):
    """aiohttp's errors as one line naming the exception's type: its message and
    traceback quote the request line (a `/?token=` too long to parse, say)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            record.msg = f"bad request: {type(record.exc_info[1]).__name__}"
        else:
            record.msg = str(record.msg).split("%", 1)[0].strip() or "server error"
        record.args, record.exc_info, record.exc_text, record.stack_info = (), None, None, None
        return True


SERVER_LOG = logging.getLogger("tq.web.server")
SERVER_LOG.addFilter(OneLine())


@dataclass
class Session:
    token: Token
    expires: float


class ConsoleServer(Server):
    """textual-serve's Server behind tq's tokens (see the module docstring)."""

    def __init__(self, tokens: Tokens, *, host: str, port: int, config: str | None = None) -> None:
        if not tokens and not is_loopback(host):
            raise ConfigError(f"no API tokens ({tokens_module.ENV}): the console binds "
                              "loopback only; set tokens to bind another address")
        super().__init__("tq tui", host=host, port=port, title="tq console")
        self.tokens = tokens
        self.config = config
        self.sessions: OrderedDict[str, Session] = OrderedDict()
        self.consoles = 0

    # --- auth --------------------------------------------------------------------------
    def session_of(self, request: web.Request) -> Token | None:
        sid = request.cookies.get(COOKIE)
        if not sid or len(sid) > 128:
            return None
        session = self.sessions.get(sid)
        if session is None:
            return None
        if session.expires < time.time():
            self.sessions.pop(sid, None)
            return None
        return session.token

    def open_session(self, token: Token) -> str:
        sid = secrets.token_urlsafe(32)
        self.sessions[sid] = Session(token, time.time() + SESSION_SECONDS)
        while len(self.sessions) > MAX_SESSIONS:
            self.sessions.popitem(last=False)
        return sid

    @web.middleware
    async def guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/static/"):
            return await handler(request)
        if request.path == "/ws":
            origin = request.headers.get("Origin")
            if origin is not None and urlsplit(origin).netloc != request.host:
                return refuse(403, "websocket from another origin")
        if not self.tokens:
            # The Host too: a page whose name was rebound to 127.0.0.1 is not local.
            if not (is_loopback(request.remote or "") and is_loopback(host_name(request.host))):
                return refuse(403, "this console answers loopback only (no API tokens set)")
            request[TOKEN] = LOCAL_OPERATOR
            return await handler(request)
        if "token" in request.query:
            token = self.tokens.check(request.query.getone("token", ""))
            if token is None or request.path != "/":
                return refuse(401, "unknown token")
            response = web.HTTPSeeOther("/")  # the token leaves the address bar
            response.set_cookie(COOKIE, self.open_session(token), httponly=True,
                                samesite="Strict", path="/", max_age=SESSION_SECONDS,
                                secure=request.secure)
            response.headers["Cache-Control"] = "no-store"
            response.headers["Referrer-Policy"] = "no-referrer"
            return response
        found = self.session_of(request)
        if found is None:
            return refuse(401, "open /?token=YOUR_TOKEN once to sign in")
        request[TOKEN] = found
        return await handler(request)

    # --- textual-serve, with the token's command ------------------------------------------
    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.middlewares.append(self.guard)
        return app

    async def on_startup(self, app: web.Application) -> None:
        pass  # textual-serve prints a logo; `tq web` prints its one line itself

    async def handle_index(self, request: web.Request) -> Any:
        # The page's URLs follow the address the browser used (textual-serve builds
        # them from a fixed public URL, wrong behind a bind of 0.0.0.0).
        if not HOST.fullmatch(request.host):
            return refuse(400, "bad Host header")
        self.public_url = f"{request.scheme}://{request.host}"
        response = await super().handle_index(request)
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        token: Token = request[TOKEN]
        if self.consoles >= MAX_CONSOLES:
            raise web.HTTPServiceUnavailable(text=f"{MAX_CONSOLES} consoles already open\n")
        websocket = web.WebSocketResponse(heartbeat=15, max_msg_size=1 << 20)
        width = max(20, min(500, to_int(request.query.get("width", "80"), 80)))
        height = max(5, min(300, to_int(request.query.get("height", "24"), 24)))
        service: ConsoleService | None = None
        self.consoles += 1
        try:
            await websocket.prepare(request)
            service = ConsoleService(
                child_command(token, self.config), child_environment(token),
                write_bytes=websocket.send_bytes, write_str=websocket.send_str,
                close=websocket.close, download_manager=self.download_manager)
            await service.start(width, height)
            try:
                await self._process_messages(websocket, service)
            except (ValueError, TypeError, KeyError, IndexError, AssertionError):
                await websocket.close()  # a malformed message ends this console
        except asyncio.CancelledError:
            await websocket.close()
        finally:
            self.consoles -= 1
            if service is not None:
                await service.stop()
        return websocket

    # --- running ---------------------------------------------------------------------------
    async def start(self) -> tuple[web.AppRunner, int]:
        """Listen; the runner and the port bound (port 0 picks a free one)."""
        runner = web.AppRunner(await self._make_app(), access_log_class=PathOnlyAccessLogger,
                               logger=SERVER_LOG)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        port = sockets[0].getsockname()[1] if sockets else self.port
        return runner, port

    def run(self, announce: Callable[[int], None]) -> None:
        """Serve until SIGINT or SIGTERM; `announce(port)` once listening."""
        async def main() -> None:
            runner, port = await self.start()
            announce(port)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            try:
                await stop.wait()
            finally:
                await runner.cleanup()
        asyncio.run(main())


__all__ = ["ConsoleServer", "child_command", "child_environment", "is_loopback",
           "COOKIE", "MAX_CONSOLES"]
