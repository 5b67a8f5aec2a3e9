"""Settings: built-in embedded defaults < tq.ini < TQ_<SECTION>_<KEY> environment < CLI flags.

The defaults describe the embedded deployment (SQLite queue and history in a
data folder), so a fresh clone runs with no file at all. Every key tq reads is
declared once, as a field of its section's frozen dataclass (QueueSettings,
ConsumerSettings, ...: name, type, parser with its range, default, doc); SCHEMA
is read off them. Anything else is a mistake we report by name, because a
misspelt key silently ignored is how production ends up on the embedded queue.
A loaded Config never changes: code reads `config.consumer.lease`, typed.
"""
from __future__ import annotations

import configparser
import logging
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal
from urllib.parse import SplitResult, unquote, urlsplit

from tq.format import first_line


class ConfigError(Exception):
    """A setting is missing, unknown or malformed; the message names it."""


class BackendUnavailable(ConfigError):
    """A server tq needs did not answer, or its history schema is not this tq's:
    the one line names which (with its address, password masked) and what to do.
    Front ends show what the other server says (tq status), or answer 503 (HTTP)."""


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


_WHOLE = re.compile(r"[+-]?[0-9]{1,30}")
_DECIMAL = re.compile(r"[+-]?([0-9]{1,30}\.?[0-9]{0,30}|\.[0-9]{1,30})([eE][+-]?[0-9]{1,4})?")


def _plain(number: float) -> str:
    """1e+08 as 100000000, 0.15 as 0.15: how tq.example.ini writes a range."""
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


def _number(low: float, high: float, whole: bool = False,
            low_open: bool = False) -> Callable[[str], float | int]:
    """A parser for a finite number in [low, high] (`low_open`: above low).

    NaN, inf, 1e400 and 10**5000 are refused here, once, so no later
    arithmetic (a sleep, a deadline, an int() of a float) ever sees them."""
    lo, hi = _plain(low), _plain(high)
    wanted = (f"a whole number from {lo} to {hi}" if whole
              else f"a number above {lo} and at most {hi}" if low_open
              else f"a number from {lo} to {hi}")
    pattern = _WHOLE if whole else _DECIMAL

    def parse(value: str) -> float | int:
        text = value.strip()
        if not pattern.fullmatch(text):  # no "1_000", "0x10", "١٢" or "inf"
            raise ValueError(f"expected {wanted}")
        number: float | int = int(text) if whole else float(text)
        if (not math.isfinite(number) or number < low or number > high
                or (low_open and number == low)):
            raise ValueError(f"expected {wanted}")
        return number
    parse.range = (low, high)  # type: ignore[attr-defined]  # read by the tests
    return parse


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        value = value.strip().lower()
        if value not in choices:
            raise ValueError("expected one of " + ", ".join(choices))
        return value
    parse.choices = choices  # type: ignore[attr-defined]  # read by the tests
    return parse


def _schedule_or_off(value: str) -> str:
    from tq.schedule import parse_schedule  # local: schedule imports nothing of ours

    value = " ".join(value.split())
    if value.lower() == "off":
        return "off"
    parse_schedule(value)  # its ValueError says what is wrong
    return value


def _names(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _text(value: str) -> str:
    """A path, URL or field name: not empty, no NUL (no OS call accepts one)."""
    if not value.strip():
        raise ValueError("expected a value, got nothing")
    if "\x00" in value:
        raise ValueError("a NUL character is not allowed")
    return value


MIB = 1024 * 1024


def setting(parse: Callable[[str], Any], default: Any, doc: str) -> Any:
    """One setting, declared once as a field of its section's dataclass: the
    field's name and annotation are the key and the type the code reads;
    `parse` turns the text of a file, variable or flag into that type and
    holds its range; `default` is used when no source sets the key (None:
    derived from data_dir after loading); `doc` is the opening of its comment
    in tq.example.ini (tests/test_config.py holds all of them to agree)."""
    return field(metadata={"parse": parse, "default": default, "doc": doc})


# kw_only: load_config builds each from every key by name. The fields carry
# no dataclass default: a derived default (None) is never the loaded value.
@dataclass(frozen=True, kw_only=True)
class TqSettings:
    data_dir: str = setting(
        _text, "tq-data",
        "Folder for the embedded queue, history, ingest folders and spill files.")
    log_level: Literal["debug", "info", "warning", "error"] = setting(
        _choice("debug", "info", "warning", "error"), "info",
        "debug | info | warning | error")


@dataclass(frozen=True, kw_only=True)
class QueueSettings:
    backend: Literal["sqlite", "redis"] = setting(
        _choice("sqlite", "redis"), "sqlite",
        "sqlite (embedded, one file) | redis (production)")
    path: str = setting(
        _text, None,
        "sqlite: the queue file (default <data_dir>/queue.db)")
    url: str = setting(
        _text, "redis://127.0.0.1:6379/0",
        "redis: where the queues live.")
    prefix: str = setting(
        _text, "tq",
        "Namespace for every Redis key, so several tq installs can share one Redis")
    max_arg_bytes: int = setting(
        _number(1, MIB * 64, whole=True), 1_048_576,
        "Largest accepted job arguments (JSON bytes of args + kwargs).")
    connect_timeout: float = setting(
        _number(0.1, 300), 5.0,
        "Seconds to wait for a server before a command fails with a clear error")


@dataclass(frozen=True, kw_only=True)
class HistorySettings:
    url: str = setting(
        _text, None,
        "sqlite:///PATH (default sqlite:///<data_dir>/history.db)")
    password: str = setting(
        str, "",
        "password: environment only (TQ_HISTORY_PASSWORD)")
    query_timeout: float = setting(
        _number(0.1, 3600), 30.0,
        "Seconds one history query may take (a roll-up or prune on a big table).")
    flush_interval: float = setting(
        _number(0.01, 60), 0.2,
        "The consumer's history writer flushes every flush_interval seconds")
    flush_rows: int = setting(
        _number(1, 100_000, whole=True), 500,
        "or every flush_rows records")
    buffer_rows: int = setting(
        _number(1, 100_000_000, whole=True), 100_000,
        "Records kept in memory while the database is down; past this they spill")
    keep_days: int = setting(
        _number(1, 36_500, whole=True), 30,
        "Retention: finished jobs (and their attempts) older than keep_days are pruned.")
    result_limit: int = setting(
        _number(1, MIB * 64, whole=True), 65_536,
        "Largest stored job result (JSON bytes); a larger one fails the job, saying so.")
    keep_summary_days: int = setting(
        _number(1, 36_500, whole=True), 400,
        "Per-minute summaries are kept keep_summary_days.")
    rollup_every: str = setting(
        _schedule_or_off, "@every 60s",
        "How often the built-in task tq.tasks.maintenance.rollup rolls the history up")


@dataclass(frozen=True, kw_only=True)
class ConsumerSettings:
    workers: int = setting(
        _number(1, 1024, whole=True), 2,
        "Workers per queue")
    worker_type: Literal["thread", "process"] = setting(
        _choice("thread", "process"), "thread",
        "thread | process (process workers can stop a job at its timeout).")
    heartbeat: float = setting(
        _number(0.05, 3600), 2.0,
        "Seconds between a consumer's heartbeats.")
    lease: float = setting(
        _number(0.15, 86_400), 15.0,
        "A consumer silent for `lease` seconds is dead: any live consumer puts its running "
        "jobs back on their queues (at-least-once).")
    lost_retries: int = setting(
        _number(0, 1000, whole=True), 3,
        "How many times a job may be lost with its worker before it ends failed")
    grace: float = setting(
        _number(0, 86_400, low_open=True), 30.0,
        "Seconds running jobs get to finish on SIGINT/SIGTERM before they are put back.")
    poll_max: float = setting(
        _number(0.01, 3600), 0.5,
        "Longest pause between polls of an idle queue (seconds)")


@dataclass(frozen=True, kw_only=True)
class TasksSettings:
    modules: tuple[str, ...] = setting(
        _names, ("tq.tasks.demo", "tq.tasks.events", "tq.tasks.maintenance"),
        "Modules whose @tq.task functions consumers and `tq submit` know.")


@dataclass(frozen=True, kw_only=True)
class IngestSettings:
    inbox: str = setting(
        _text, None,
        "Folders (default under <data_dir>): files dropped in inbox become jobs.")
    processing: str = setting(_text, None, "Folders (default under <data_dir>)")
    history: str = setting(_text, None, "Folders (default under <data_dir>)")
    rejected: str = setting(_text, None, "Folders (default under <data_dir>)")
    type_field: str = setting(
        _text, "type",
        "The event field that routes an event.")
    polling: bool = setting(
        _bool, False,
        "Poll the inbox instead of filesystem events (network filesystems).")
    poll_interval: float = setting(
        _number(0.01, 3600), 1.0,
        "Seconds between polls of the inbox.")
    batch_size: int = setting(
        _number(1, 100_000, whole=True), 500,
        "Events enqueued per batch (one pipeline / transaction each, checkpointed).")
    max_event_bytes: int = setting(
        _number(1, MIB * 64, whole=True), 1_048_576,
        "Largest accepted single event (bytes).")
    settle_seconds: float = setting(
        _number(0, 3600, low_open=True), 1.0,
        "A file must be unchanged this long before it is taken")


def _apps(value: str) -> tuple[str, ...]:
    apps = _names(value)
    for app in apps:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*"
                            r":[A-Za-z_][A-Za-z0-9_]*", app):
            raise ValueError("expected module:attribute names, separated by commas")
    return apps


@dataclass(frozen=True, kw_only=True)
class HueySettings:
    apps: tuple[str, ...] = setting(
        _apps, (),
        "Huey apps attached with tq.attach(huey), as module:attribute, separated by commas:")


@dataclass(frozen=True, kw_only=True)
class HttpSettings:
    max_body: int = setting(
        _number(1024, MIB * 64, whole=True), MIB,
        "Largest request body tq serve takes for one job or one action (bytes); a larger")
    max_batch_body: int = setting(
        _number(1024, MIB * 1024, whole=True), 16 * MIB,
        "Largest body of POST /api/v1/jobs/batch (bytes), a JSON array or JSON lines; a")


# section -> its dataclass: the one declaration of every key tq reads.
SECTIONS: dict[str, type] = {
    "tq": TqSettings, "queue": QueueSettings, "history": HistorySettings,
    "consumer": ConsumerSettings, "tasks": TasksSettings, "ingest": IngestSettings,
    "huey": HueySettings, "http": HttpSettings,
}
# section -> key -> (parser, default), read off SECTIONS for the loader and the tests.
SCHEMA: dict[str, dict[str, tuple[Callable[[str], Any], Any]]] = {
    section: {f.name: (f.metadata["parse"], f.metadata["default"]) for f in fields(cls)}
    for section, cls in SECTIONS.items()
}
# Sections whose keys are names the operator chooses.
OPEN_SECTIONS = ("queues", "routes", "periodic")
SECRET_KEYS = {("history", "password")}
DEFAULT_QUEUES = {"default": 0, "events": 0, "reports": 0}
DEFAULT_ROUTE_TASK = "tq.tasks.events.store_event"
PRIORITY_RANGE = (0, 1000)
# Priority names, accepted wherever a priority is (jobspec.priority: the CLI, batch
# lines, tq.submit, ingest; [routes] and [queues] here), in any case ("High"), and
# stored as their numbers. Huey runs a higher priority first. low is the bottom of
# the range and the default (a job that names none), so "low" never runs behind an
# unnamed job; high is the top, so no number outranks it; medium is the middle, with
# room on both sides for numbers that order finer.
PRIORITY_NAMES = {"low": 0, "medium": 500, "high": 1000}


@dataclass(frozen=True)
class Route:
    queue: str
    task: str
    priority: int | None = None


@dataclass(frozen=True)
class Periodic:
    name: str
    schedule: str  # "@every 10s" or five crontab fields
    task: str
    queue: str | None = None


@dataclass(frozen=True)
class Config:
    source: Path | None
    data_dir: Path
    log_level: str
    queue: QueueSettings
    history: HistorySettings
    consumer: ConsumerSettings
    task_modules: list[str]
    ingest: IngestSettings
    http: HttpSettings
    queues: dict[str, int]
    routes: dict[str, Route]
    periodic: dict[str, Periodic] = field(default_factory=dict)
    secret: str = ""
    huey_apps: tuple[str, ...] = ()  # [huey] apps: attached Huey apps (tq/attach.py)

    @property
    def history_url_safe(self) -> str:
        """The history URL with any password masked, for status and logs."""
        return redact_url(self.history.url)

    def secrets(self) -> list[str]:
        """Every secret this config holds, to mask in any message or log line."""
        found = [self.history.password, self.secret]
        found += url_secrets(self.history.url) + url_secrets(self.queue.url)
        return [secret for secret in found if secret]

    @property
    def queue_url_safe(self) -> str:
        if self.queue.backend == "sqlite":
            return f"sqlite:///{self.queue.path}"
        return redact_url(self.queue.url)


_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)(.*)", re.S)
_SECRET_QUERY = re.compile(r"((?:^|[?&;])(?:password|passwd|pwd|secret|token)=)[^&;]*", re.I)
MASK = "***"


def redact_url(url: str) -> str:
    """`url` with its whole password masked, whatever the password holds.

    The userinfo ends at the LAST `@` of the URL, so a password with an
    unencoded `@`, `:` or `/` is masked whole (a path with an `@` in it is
    masked too: over-masking is the safe way to be wrong). Passwords given as
    `?password=` are masked as well. A string that is not a URL at all is
    masked whole: it cannot be told what part of it is secret."""
    match = _SCHEME.fullmatch(url)
    if match is None:
        return MASK if url else url
    scheme, rest = match.groups()
    rest = _SECRET_QUERY.sub(lambda m: m.group(1) + MASK, rest)  # first: it may hold an @
    if not rest.startswith("/") and "@" in rest:
        userinfo, _, after = rest.rpartition("@")
        if ":" in userinfo:
            rest = f"{userinfo.split(':', 1)[0]}:{MASK}@{after}"
    return scheme + rest


def url_secrets(url: str) -> list[str]:
    """The secret parts of `url` (password, as written and decoded), to mask
    wherever a message or log line might repeat them."""
    found: list[str] = []
    match = _SCHEME.fullmatch(url)
    if match is None:
        return found
    rest = match.group(2)
    found += [m.group(0).split("=", 1)[1] for m in _SECRET_QUERY.finditer(rest)]
    rest = _SECRET_QUERY.sub(lambda m: m.group(1), rest)
    if not rest.startswith("/") and "@" in rest:
        userinfo = rest.rpartition("@")[0]
        if ":" in userinfo:
            found.append(userinfo.split(":", 1)[1])
    found += [unquote(secret) for secret in found]
    return [secret for secret in found if secret]


def environment_secrets(env: Mapping[str, str] | None = None) -> list[str]:
    """The secrets the environment holds, for messages written before (or
    without) a loaded config: a bad setting, a server down mid-command."""
    env = os.environ if env is None else env
    found = [env.get("TQ_HISTORY_PASSWORD", ""), env.get("TQ_SECRET", "")]
    for name in ("TQ_QUEUE_URL", "TQ_HISTORY_URL"):
        found += url_secrets(env.get(name, ""))
    # API tokens (tq/tokens.py): the text between the first and second ":" of each entry.
    for item in env.get("TQ_API_TOKENS", "").split(","):
        parts = item.split(":")
        if len(parts) >= 2:
            found.append(parts[1].strip())
    return [secret for secret in found if secret]


def mask_secrets(text: str, secrets: list[str] | tuple[str, ...]) -> str:
    """`text` with every occurrence of every secret replaced by ***."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        if len(secret) >= 3:  # shorter, it would garble every word; URLs mask it anyway
            text = text.replace(secret, MASK)
    return text


class SecretFilter:
    """A logging filter masking `secrets` in every record's message."""

    def __init__(self, secrets: list[str]) -> None:
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            masked = mask_secrets(message, self.secrets)
            if masked != message:
                record.msg, record.args = masked, None
        return True


def _shown(section: str, key: str, raw: Any) -> str:
    """A setting's value as an error message may show it: secrets masked,
    URLs redacted, control characters visible, and cut short."""
    from tq.text import visible  # local: text imports rich, config stays light

    if (section, key) in SECRET_KEYS:
        return MASK
    text = str(raw)
    if key == "url":
        text = redact_url(text)
    text = visible(text)
    return text if len(text) <= 80 else text[:77] + "..."


def _q(value: Any) -> str:
    """Outside text quoted for a one-line error: control characters visible, cut short."""
    from tq.text import visible  # local: text imports rich, config stays light

    text = visible(value)
    return "'" + (text if len(text) <= 80 else text[:77] + "...") + "'"


def parse_route(key: str, value: str) -> Route:
    parts = [p.strip() for p in value.split(":")]
    if len(parts) not in (2, 3) or not all(parts[:2]):
        raise ConfigError(f"[routes] {_q(key)}: expected QUEUE:TASK[:PRIORITY], got {_q(value)}")
    priority = None
    if len(parts) == 3 and parts[2]:
        priority = _parse_priority(f"[routes] {_q(key)}", parts[2])
    return Route(parts[0], parts[1], priority)


def parse_periodic(key: str, value: str) -> Periodic:
    """`name = SCHEDULE TASK [@QUEUE]`; SCHEDULE is `@every 30s` or five cron fields."""
    from tq.schedule import parse_schedule  # local: schedule imports nothing of ours

    tokens = value.split()
    queue = None
    if tokens and tokens[-1].startswith("@") and not tokens[-1].startswith("@every"):
        queue = tokens.pop()[1:]
    if len(tokens) >= 3 and tokens[0] == "@every":
        schedule, rest = " ".join(tokens[:2]), tokens[2:]
    else:
        schedule, rest = " ".join(tokens[:5]), tokens[5:]
    if len(rest) != 1:
        raise ConfigError(f"[periodic] {_q(key)}: expected 'SCHEDULE TASK [@QUEUE]', "
                          f"got {_q(value)}")
    try:
        parse_schedule(schedule)
    except (ValueError, OverflowError) as exc:
        raise ConfigError(f"[periodic] {_q(key)} = {_q(value)}: {_q(exc)[1:-1]}") from None
    return Periodic(key, schedule, rest[0], queue)


def _parse_priority(where: str, raw: str) -> int:
    low, high = PRIORITY_RANGE
    text = raw.strip()
    priority = PRIORITY_NAMES.get(text.lower()) if text.isascii() else None
    if priority is None and _WHOLE.fullmatch(text):  # no "1e3", "0x10", "١٢"
        priority = int(text)
    if priority is None or not low <= priority <= high:
        raise ConfigError(f"{where}: priority must be a whole number from {low} to {high} "
                          f"or low, medium, high, got {_q(raw)}")
    return priority


def _check_name(where: str, name: str, kind: str, limit: int) -> None:
    """A name that is stored in a history column must fit it: a longer one
    would be accepted here and then refused by every history write."""
    if len(name) > limit:
        raise ConfigError(f"{where}: {kind} {_q(name)} is {len(name)} characters long; "
                          f"history stores at most {limit}")


MAX_FILE_BYTES = 1024 * 1024


class _CaseKeepingParser(configparser.ConfigParser):
    def optionxform(self, optionstr: str) -> str:
        return optionstr  # event types and queue names are case-sensitive


def _read_file(path: Path) -> dict[str, dict[str, str]]:
    """The file's sections; anything that keeps it from being read is one ConfigError."""
    parser = _CaseKeepingParser(interpolation=None, delimiters=("=",))
    shown = _q(path)
    try:
        if path.is_dir():
            raise ConfigError(f"config file {shown} is a folder, not a file")
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)  # bounded: --config /dev/zero must end
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {shown}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {shown}: "
                          f"{(exc.strerror or 'unreadable').lower()}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"config file {shown} is larger than {MAX_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ConfigError(f"config file {shown} is not UTF-8 text "
                          f"(byte 0x{data[exc.start]:02x} on line {line})") from None
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as exc:
        raise ConfigError(f"{shown}: cannot parse: {_q(first_line(exc))[1:-1]}") from None
    return {section: dict(parser.items(section)) for section in parser.sections()}


def _env_values(env: Mapping[str, str]) -> dict[str, dict[str, str]]:
    values: dict[str, dict[str, str]] = {}
    sections = sorted(list(SCHEMA) + list(OPEN_SECTIONS), key=len, reverse=True)
    for name, value in env.items():
        if not name.startswith("TQ_") or name in ("TQ_CONFIG", "TQ_SECRET"):
            continue
        rest = name[3:].lower()
        for section in sections:
            if rest.startswith(section + "_"):
                values.setdefault(section, {})[rest[len(section) + 1:]] = value
                break
    return values


def load_config(path: str | os.PathLike | None = None, env: Mapping[str, str] | None = None,
                overrides: Mapping[str, Mapping[str, Any]] | None = None) -> Config:
    """Build the effective settings. `overrides` are CLI flags: {section: {key: value}}."""
    env = os.environ if env is None else env
    source: Path | None = None
    if path is not None:
        source = Path(path)
    elif env.get("TQ_CONFIG"):
        source = Path(env["TQ_CONFIG"])
    elif Path("tq.ini").is_file():
        source = Path("tq.ini")
    file_values = _read_file(source) if source is not None else {}

    for section, items in file_values.items():
        if section not in SCHEMA and section not in OPEN_SECTIONS:
            raise ConfigError(f"{_q(source)}: unknown section [{_q(section)[1:-1]}]")
        for key in items:
            if (section, key) in SECRET_KEYS:
                raise ConfigError(f"{_q(source)}: [{section}] {key} must come from the "
                                  f"environment (TQ_{section.upper()}_{key.upper()}), not a file")

    env_values = _env_values(env)
    merged: dict[str, dict[str, Any]] = {}
    for section in list(SCHEMA) + list(OPEN_SECTIONS):
        merged[section] = {**file_values.get(section, {}), **env_values.get(section, {})}
        for key, value in (overrides or {}).get(section, {}).items():
            if value is not None:
                merged[section][key] = value

    typed: dict[str, dict[str, Any]] = {}
    for section, keys in SCHEMA.items():
        typed[section] = {}
        for key in merged[section]:
            if key not in keys:
                raise ConfigError(f"unknown setting [{section}] {_q(key)[1:-1]}"
                                  f" (known: {', '.join(sorted(keys))})")
        for key, (parse, default) in keys.items():
            if key not in merged[section]:
                typed[section][key] = default
                continue
            raw = merged[section][key]
            try:  # CLI flags come typed; they get the same checks as text
                typed[section][key] = parse(raw if isinstance(raw, str) else str(raw))
            except (ValueError, OverflowError) as exc:
                raise ConfigError(_bad(section, key, raw, _q(exc)[1:-1])) from None
    _cross_check(typed)

    data_dir = Path(typed["tq"]["data_dir"])
    if typed["queue"]["path"] is None:
        typed["queue"]["path"] = str(data_dir / "queue.db")
    if typed["history"]["url"] is None:
        typed["history"]["url"] = f"sqlite:///{data_dir / 'history.db'}"
    _check_history_url(typed["history"]["url"], from_file="url" in file_values.get("history", {})
                       and "url" not in env_values.get("history", {}))
    if typed["queue"]["backend"] == "redis":
        _check_redis_url(typed["queue"]["url"])
    prefix = typed["queue"]["prefix"]
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", prefix):
        raise ConfigError(_bad("queue", "prefix", prefix,
                               "use 1 to 64 letters, digits, '_' and '-'"))
    for folder in ("inbox", "processing", "history", "rejected"):
        if typed["ingest"][folder] is None:
            typed["ingest"][folder] = str(data_dir / folder)

    from tq.models import Event, Job  # local: the column sizes, without a database

    queues = dict(DEFAULT_QUEUES) if not merged["queues"] else {}
    for name, raw in merged["queues"].items():
        if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
            raise ConfigError(f"bad queue name [queues] {_q(name)}: "
                              "use letters, digits, '_' and '-'")
        _check_name("[queues]", name, "queue name", Job.queue.max_length)
        queues[name] = _parse_priority(f"[queues] {name}", str(raw) or "0")

    if merged["routes"]:
        routes = {key: parse_route(key, value) for key, value in merged["routes"].items()}
    else:  # built-in: every event is stored, on `events` if there is such a queue
        routes = {"*": Route("events" if "events" in queues else next(iter(queues)),
                             DEFAULT_ROUTE_TASK)}
    for key, route in routes.items():
        if route.queue not in queues:
            raise ConfigError(f"[routes] {_q(key)}: unknown queue {_q(route.queue)} "
                              f"(configured: {', '.join(queues)})")
        _check_name(f"[routes] {_q(key)}", key, "event type", Event.type.max_length)
        _check_name(f"[routes] {_q(key)}", route.task, "task name", Job.task.max_length)
    periodic = {key: parse_periodic(key, value) for key, value in merged["periodic"].items()}
    for key, spec in periodic.items():
        if spec.queue is not None and spec.queue not in queues:
            raise ConfigError(f"[periodic] {_q(key)}: unknown queue {_q(spec.queue)}")
        _check_name(f"[periodic] {_q(key)}", spec.task, "task name", Job.task.max_length)
    for module in typed["tasks"]["modules"]:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", module):
            raise ConfigError(_bad("tasks", "modules", module,
                                   "expected dotted module names, separated by commas"))

    return Config(
        source=source,
        data_dir=data_dir,
        log_level=typed["tq"]["log_level"],
        queue=QueueSettings(**typed["queue"]),
        history=HistorySettings(**typed["history"]),
        consumer=ConsumerSettings(**typed["consumer"]),
        task_modules=list(typed["tasks"]["modules"]),
        ingest=IngestSettings(**typed["ingest"]),
        http=HttpSettings(**typed["http"]),
        queues=queues,
        routes=routes,
        periodic=periodic,
        secret=env.get("TQ_SECRET", ""),
        huey_apps=tuple(typed["huey"]["apps"]),
    )


def _bad(section: str, key: str, raw: Any, why: str) -> str:
    """The one shape of a bad-value error: names the key and shows the value."""
    return f"bad value for [{section}] {key} = '{_shown(section, key, raw)}': {why}"


# Cross-checks between settings; each (why it matters) in tq.example.ini too.
LEASE_HEARTBEATS = 3


def _cross_check(typed: dict[str, dict[str, Any]]) -> None:
    consumer = typed["consumer"]
    if consumer["lease"] < LEASE_HEARTBEATS * consumer["heartbeat"]:
        # One late heartbeat (a slow Redis, a busy machine) must not make a
        # live consumer look dead: its running jobs would be started again.
        raise ConfigError(_bad("consumer", "lease", f"{consumer['lease']:g}",
                               f"must be at least {LEASE_HEARTBEATS} x [consumer] heartbeat "
                               f"({consumer['heartbeat']:g} s), or a live consumer's jobs "
                               "are taken over and run twice"))
    history = typed["history"]
    if history["buffer_rows"] < history["flush_rows"]:
        raise ConfigError(_bad("history", "buffer_rows", history["buffer_rows"],
                               f"must be at least [history] flush_rows "
                               f"({history['flush_rows']})"))


def _check_port(section: str, url: str, parts: SplitResult) -> None:
    try:
        port = parts.port  # raises ValueError past 65535 or for text
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535:
        raise ConfigError(_bad(section, "url", url, "the port must be a number from 1 to 65535"))


def _check_userinfo(section: str, url: str, parts: SplitResult) -> None:
    # An unencoded `/`, `?` or `#` in a password ends the host part early:
    # the driver would then read part of the password as a host or port.
    after_host = _SECRET_QUERY.sub("", url.partition("://")[2])[len(parts.netloc):]
    if "@" in after_host:
        raise ConfigError(_bad(section, "url", url, "a password holding '/', '?' or '#' "
                               "must be percent-encoded (%2F, %3F, %23)"))


def _split(section: str, url: str) -> SplitResult:
    try:
        return urlsplit(url)
    except ValueError:  # an unencoded '[' or ']' reads as an IPv6 host; its text quotes it
        raise ConfigError(_bad(section, "url", url, "not a URL tq can read (a '[' or ']' "
                               "outside an IPv6 host: in a password, '[', ']', '/', '?' and "
                               "'#' must be percent-encoded as %5B, %5D, %2F, %3F, %23)")
                          ) from None


def _check_history_url(url: str, from_file: bool) -> None:
    parts = _split("history", url)
    if parts.scheme not in ("sqlite", "mysql", "mysql+pymysql", "mariadb"):
        raise ConfigError(_bad("history", "url", url,
                               "expected sqlite:///PATH or mysql://USER@HOST:PORT/DATABASE"))
    if parts.scheme == "sqlite":
        return
    _check_userinfo("history", url, parts)
    _check_port("history", url, parts)
    database = parts.path.strip("/")
    if not database:
        raise ConfigError(_bad("history", "url", url, "the database name is missing"))
    if len(database) > 64 or not re.fullmatch(r"[A-Za-z0-9_$-]+", database):
        raise ConfigError(_bad("history", "url", url, "the database name must be 1 to 64 "
                               "letters, digits, '_', '$' or '-'"))
    if parts.password and from_file:
        raise ConfigError("[history] url in a file must not hold a password: "
                          "set TQ_HISTORY_PASSWORD in the environment")


def _check_redis_url(url: str) -> None:
    parts = _split("queue", url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(_bad("queue", "url", url, "expected redis://HOST:PORT/DB"))
    if parts.scheme != "unix":
        _check_userinfo("queue", url, parts)
        _check_port("queue", url, parts)
        db = parts.path.strip("/")
        if db and not (db.isdigit() and int(db) <= 1_000_000):
            raise ConfigError(_bad("queue", "url", url, "the database must be a number, "
                                   "e.g. redis://HOST:PORT/0"))

