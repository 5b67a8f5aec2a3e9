"""What every verb of the `tq` command shares: the output streams, the one-line
error, the runtime from the settings, the filter options and argparse types.

Output is literal: every value that came from outside (ids, names, arguments,
errors, tracebacks, anything read from Redis or the history) goes through
tq.text, as `literal()` in table cells and whole lines, as `markup()` inside the
markup strings tq writes itself. `--json` is JSON (json.dumps escapes control
characters and lone surrogates).

Nothing here imports huey, redis, peewee or a database driver at import time:
`tq --help` builds the whole parser from these modules (see tq.cli).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import re
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NoReturn

from rich.console import Console
from rich.table import Table
from rich.text import Text

from tq.format import first_line
from tq.text import literal

if TYPE_CHECKING:
    from tq.runtime import Runtime
    from tq.where import Filter

EXIT_USAGE = 2
MAX_LINE_ERRORS_SHOWN = 20
MAX_LIMIT = 100_000  # rows one `tq jobs` prints
MAX_WORKERS = 1024  # as [consumer] workers

# Piped output keeps whole ids and rows on one line for grep and scripts. No
# emoji: Rich would turn a `:smile:` inside a job's data into a picture.
out = Console(highlight=False, emoji=False, width=None if sys.stdout.isatty() else 240)
err = Console(stderr=True, highlight=False, emoji=False, soft_wrap=True)


class CliError(Exception):
    """One line for the operator; exit status 2."""


def new_table(*columns: str, right: tuple[str, ...] = ()) -> Table:
    table = Table(box=None, header_style="bold")
    for column in columns:
        table.add_column(column, justify="right" if column in right else "left",
                         overflow="fold" if column == "id" else "ellipsis")
    return table


def add_row(table: Table, *cells: Any) -> None:
    """A row whose text cells are shown as written (a str cell of a Rich table is
    markup); tq's own styled cells come as Text."""
    table.add_row(*(cell if isinstance(cell, Text) else literal(cell) for cell in cells))


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=True, default=str) + "\n")


# --- runtime ---------------------------------------------------------------------

def make_runtime(args: argparse.Namespace, overrides: dict[str, Any] | None = None,
                 check_backend: bool = True) -> Runtime:
    from tq.config import SecretFilter, load_config
    from tq.runtime import configure

    config = load_config(getattr(args, "config", None), overrides=overrides)
    logging.basicConfig(level=getattr(logging, config.log_level.upper()),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:  # secrets never reach a log line
        handler.addFilter(SecretFilter(config.secrets()))
    if config.log_level != "debug":
        logging.getLogger("huey").setLevel(logging.WARNING)  # not a line per job
    runtime = configure(config)
    if check_backend:
        runtime.check_queue_backend()
    return runtime


def catch_up_unless_down(runtime: Runtime) -> Exception | None:
    """The one door before a history read (queries.catch_up), unless the queue
    backend does not answer: then its BackendUnavailable, and the read goes on
    with what history holds (a silent Redis is waited out here once)."""
    from tq.config import BackendUnavailable
    from tq.queries import catch_up

    try:
        runtime.check_queue_backend()
    except BackendUnavailable as exc:
        return exc
    catch_up(runtime)
    return None


def catch_up_or_say(runtime: Runtime) -> None:
    """catch_up_unless_down for a read that needs history only (tq jobs, tq show):
    with the queue backend down, stderr says what the read may miss, in one line."""
    down = catch_up_unless_down(runtime)
    if down is not None:
        err.print(literal(f"tq: {down}; jobs submitted since its last write to history "
                          "may be missing"), style="yellow")


def parse_filter(args: argparse.Namespace) -> Filter:
    from tq.where import parse

    terms = [getattr(args, "where", None) or ""]
    for key in ("state", "queue", "task"):
        value = getattr(args, key, None)
        if value:
            terms.append(f"{key}:{','.join(value) if isinstance(value, list) else value}")
    if getattr(args, "since", None):
        terms.append(f"since:{args.since}")
    if getattr(args, "before", None):
        terms.append(f"before:{args.before}")
    return parse(" ".join(t for t in terms if t))


def error_line(text: str) -> str:
    """One stderr line: first line only, secrets masked, control characters visible."""
    from tq import runtime as runtime_module
    from tq.config import environment_secrets, mask_secrets
    from tq.text import visible

    secrets = environment_secrets()
    if runtime_module._current is not None:
        secrets += runtime_module._current.config.secrets()
    return visible(mask_secrets(first_line(text) or text, secrets))


# --- parsing ---------------------------------------------------------------------------

class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (usage is in --help) and exit 2."""

    def error(self, message: str) -> NoReturn:
        from tq.text import visible

        self.exit(EXIT_USAGE, f"{self.prog}: error: {visible(message)} (see --help)\n")


def moment(text: str) -> str:
    """An argparse type: a duration or ISO time that where.parse_time accepts."""
    from tq.where import FilterError, parse_time

    try:
        parse_time(text)
    except (FilterError, ValueError, OverflowError):
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise argparse.ArgumentTypeError(f"time '{shown}': use a duration like 30m, 2h, 7d "
                                         "or an ISO time") from None
    return text


def whole(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from low to high, said so when it is not."""
    def parse(text: str) -> int:
        if not re.fullmatch(r"[+-]?[0-9]{1,19}", text.strip()):
            raise argparse.ArgumentTypeError(f"expected a whole number from {low} to {high}, "
                                             f"got '{text[:40]}'")
        number = int(text)
        if not low <= number <= high:
            raise argparse.ArgumentTypeError(f"expected a whole number from {low} to {high}, "
                                             f"got {number}")
        return number
    return parse


PORT = whole(1, 65535)



def filter_options(parser: argparse.ArgumentParser,
                   state_default: list[str] | None = None) -> None:
    parser.add_argument("--where", help="filter, e.g. 'task:send_email state:failed since:1h'")
    parser.add_argument("--state", action="append", default=state_default)
    parser.add_argument("--queue", action="append")
    parser.add_argument("--task")
    parser.add_argument("--since", type=moment,
                        help="only jobs enqueued since: 30m, 2h, 7d or ISO time")
    parser.add_argument("--before", type=moment,
                        help="only jobs enqueued before: 30m, 2h, 7d or ISO time")


def server_arguments(parser: argparse.ArgumentParser, default_port: int) -> None:
    """--bind and --port of a verb that serves HTTP (tq serve, tq web): the same
    defaults and words, loopback unless tokens are set (tq/tokens.py)."""
    parser.add_argument("--bind", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; another needs "
                             "TQ_API_TOKENS)")
    parser.add_argument("--port", type=whole(0, 65535), default=default_port,
                        help=f"port (default {default_port}; 0 picks a free one)")


@contextlib.contextmanager
def serving(args: argparse.Namespace) -> Iterator[None]:
    """Around a server's run: a port that cannot be had is one line (exit 2), Ctrl-C
    a clean stop."""
    try:
        yield
    except OSError as exc:
        raise CliError(f"cannot listen on {args.bind}:{args.port}: "
                       f"{exc.strerror or exc}") from None
    except KeyboardInterrupt:
        pass
