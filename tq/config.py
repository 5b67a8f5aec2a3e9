"""Settings: built-in embedded defaults < tq.ini < TQ_<SECTION>_<KEY> environment < CLI flags.

The defaults describe the embedded deployment (SQLite queue and history in a
data folder), so a fresh clone runs with no file at all. Every key tq reads is
declared in SCHEMA; anything else is a mistake we report by name, because a
misspelt key silently ignored is how production ends up on the embedded queue.
"""
from __future__ import annotations

import configparser
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit


class ConfigError(Exception):
    """A setting is missing, unknown or malformed; the message names it."""


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError("expected a whole number of at least 1")
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise ValueError("expected a number above 0")
    return number


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        value = value.strip().lower()
        if value not in choices:
            raise ValueError("expected one of " + ", ".join(choices))
        return value
    return parse


def _schedule_or_off(value: str) -> str:
    from tq.schedule import parse_schedule  # local: schedule imports nothing of ours

    value = " ".join(value.split())
    if value.lower() == "off":
        return "off"
    parse_schedule(value)  # its ValueError says what is wrong
    return value


def _names(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


# section -> key -> (parser, default). None as a default means "derived later".
SCHEMA: dict[str, dict[str, tuple[Callable[[str], Any], Any]]] = {
    "tq": {
        "data_dir": (str, "tq-data"),
        "log_level": (_choice("debug", "info", "warning", "error"), "info"),
    },
    "queue": {
        "backend": (_choice("sqlite", "redis"), "sqlite"),
        "path": (str, None),  # <data_dir>/queue.db
        "url": (str, "redis://127.0.0.1:6379/0"),
        "prefix": (str, "tq"),
        "max_arg_bytes": (_positive_int, 1_048_576),
        "connect_timeout": (_positive_float, 5.0),
    },
    "history": {
        "url": (str, None),  # sqlite:///<data_dir>/history.db
        "password": (str, ""),  # environment only: TQ_HISTORY_PASSWORD
        "flush_interval": (_positive_float, 0.2),
        "flush_rows": (_positive_int, 500),
        "buffer_rows": (_positive_int, 100_000),
        "keep_days": (_positive_int, 30),
        "keep_summary_days": (_positive_int, 400),
        "rollup_every": (_schedule_or_off, "@every 60s"),
    },
    "consumer": {
        "workers": (_positive_int, 2),
        "worker_type": (_choice("thread", "process"), "thread"),
        "heartbeat": (_positive_float, 2.0),
        "lease": (_positive_float, 15.0),
        "lost_retries": (int, 3),
        "grace": (_positive_float, 30.0),
        "poll_max": (_positive_float, 0.5),
        "on_shutdown": (_choice("finish", "requeue"), "finish"),
    },
    "tasks": {
        "modules": (_names, ["tq.tasks.demo", "tq.tasks.events", "tq.tasks.maintenance"]),
    },
    "ingest": {
        "inbox": (str, None),
        "processing": (str, None),
        "history": (str, None),
        "rejected": (str, None),
        "type_field": (str, "type"),
        "polling": (_bool, False),
        "poll_interval": (_positive_float, 1.0),
        "batch_size": (_positive_int, 500),
        "max_event_bytes": (_positive_int, 1_048_576),
        "settle_seconds": (float, 1.0),
    },
}
# Sections whose keys are names the operator chooses.
OPEN_SECTIONS = ("queues", "routes", "periodic")
SECRET_KEYS = {("history", "password")}
DEFAULT_QUEUES = {"default": 0, "events": 0, "reports": 0}
DEFAULT_ROUTE_TASK = "tq.tasks.events.store_event"
PRIORITY_RANGE = (0, 1000)


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


@dataclass
class Config:
    source: Path | None
    data_dir: Path
    log_level: str
    queue: dict[str, Any]
    history: dict[str, Any]
    consumer: dict[str, Any]
    task_modules: list[str]
    ingest: dict[str, Any]
    queues: dict[str, int]
    routes: dict[str, Route]
    periodic: dict[str, Periodic] = field(default_factory=dict)
    secret: str = ""

    @property
    def history_url_safe(self) -> str:
        """The history URL with any password masked, for status and logs."""
        return redact_url(self.history["url"])

    @property
    def queue_url_safe(self) -> str:
        if self.queue["backend"] == "sqlite":
            return f"sqlite:///{self.queue['path']}"
        return redact_url(self.queue["url"])


def redact_url(url: str) -> str:
    return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", url)


def parse_route(key: str, value: str) -> Route:
    parts = [p.strip() for p in value.split(":")]
    if len(parts) not in (2, 3) or not all(parts[:2]):
        raise ConfigError(f"[routes] {key}: expected QUEUE:TASK[:PRIORITY], got {value!r}")
    priority = None
    if len(parts) == 3 and parts[2]:
        priority = _parse_priority(f"[routes] {key}", parts[2])
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
        raise ConfigError(f"[periodic] {key}: expected 'SCHEDULE TASK [@QUEUE]', got {value!r}")
    try:
        parse_schedule(schedule)
    except ValueError as exc:
        raise ConfigError(f"[periodic] {key}: {exc}") from None
    return Periodic(key, schedule, rest[0], queue)


def _parse_priority(where: str, raw: str) -> int:
    try:
        priority = int(raw)
    except ValueError:
        raise ConfigError(f"{where}: priority must be a whole number, got {raw!r}") from None
    low, high = PRIORITY_RANGE
    if not low <= priority <= high:
        raise ConfigError(f"{where}: priority must be between {low} and {high}, got {priority}")
    return priority


def _read_file(path: Path) -> dict[str, dict[str, str]]:
    parser = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    parser.optionxform = str  # event types and queue names are case-sensitive
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (configparser.Error, UnicodeDecodeError) as exc:
        first_line = str(exc).splitlines()[0]
        raise ConfigError(f"{path}: cannot parse: {first_line}") from None
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
            raise ConfigError(f"{source}: unknown section [{section}]")
        for key in items:
            if (section, key) in SECRET_KEYS:
                raise ConfigError(f"{source}: [{section}] {key} must come from the environment "
                                  f"(TQ_{section.upper()}_{key.upper()}), not a file")

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
        for key, raw in merged[section].items():
            if key not in keys:
                raise ConfigError(f"unknown setting [{section}] {key}"
                                  f" (known: {', '.join(sorted(keys))})")
        for key, (parse, default) in keys.items():
            if key not in merged[section]:
                typed[section][key] = default
                continue
            raw = merged[section][key]
            try:
                typed[section][key] = parse(raw) if isinstance(raw, str) else raw
            except ValueError as exc:
                raise ConfigError(f"bad value for [{section}] {key} = {raw!r}: {exc}") from None

    data_dir = Path(typed["tq"]["data_dir"])
    if typed["queue"]["path"] is None:
        typed["queue"]["path"] = str(data_dir / "queue.db")
    if typed["history"]["url"] is None:
        typed["history"]["url"] = f"sqlite:///{data_dir / 'history.db'}"
    _check_history_url(typed["history"]["url"], from_file="url" in file_values.get("history", {})
                       and "url" not in env_values.get("history", {}))
    if typed["queue"]["backend"] == "redis":
        _check_redis_url(typed["queue"]["url"])
    if not re.fullmatch(r"[A-Za-z0-9_-]+", typed["queue"]["prefix"]):
        raise ConfigError(f"bad value for [queue] prefix = {typed['queue']['prefix']!r}: "
                          "use letters, digits, '_' and '-'")
    for folder in ("inbox", "processing", "history", "rejected"):
        if typed["ingest"][folder] is None:
            typed["ingest"][folder] = str(data_dir / folder)

    queues = dict(DEFAULT_QUEUES) if not merged["queues"] else {}
    for name, raw in merged["queues"].items():
        if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
            raise ConfigError(f"bad queue name [queues] {name!r}: use letters, digits, '_' and '-'")
        queues[name] = _parse_priority(f"[queues] {name}", str(raw) or "0")

    if merged["routes"]:
        routes = {key: parse_route(key, value) for key, value in merged["routes"].items()}
    else:  # built-in: every event is stored, on `events` if there is such a queue
        routes = {"*": Route("events" if "events" in queues else next(iter(queues)),
                             DEFAULT_ROUTE_TASK)}
    for key, route in routes.items():
        if route.queue not in queues:
            raise ConfigError(f"[routes] {key}: unknown queue {route.queue!r} "
                              f"(configured: {', '.join(queues)})")
    periodic = {key: parse_periodic(key, value) for key, value in merged["periodic"].items()}
    for key, spec in periodic.items():
        if spec.queue is not None and spec.queue not in queues:
            raise ConfigError(f"[periodic] {key}: unknown queue {spec.queue!r}")

    return Config(
        source=source,
        data_dir=data_dir,
        log_level=typed["tq"]["log_level"],
        queue=typed["queue"],
        history=typed["history"],
        consumer=typed["consumer"],
        task_modules=typed["tasks"]["modules"],
        ingest=typed["ingest"],
        queues=queues,
        routes=routes,
        periodic=periodic,
        secret=env.get("TQ_SECRET", ""),
    )


def _check_history_url(url: str, from_file: bool) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("sqlite", "mysql", "mysql+pymysql", "mariadb"):
        raise ConfigError(f"bad value for [history] url = {redact_url(url)!r}: "
                          "expected sqlite:///PATH or mysql://USER@HOST:PORT/DATABASE")
    if parts.scheme != "sqlite" and not parts.path.strip("/"):
        raise ConfigError("bad value for [history] url: the database name is missing")
    if parts.password and from_file:
        raise ConfigError("[history] url in a file must not hold a password: "
                          "set TQ_HISTORY_PASSWORD in the environment")


def _check_redis_url(url: str) -> None:
    if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(f"bad value for [queue] url = {redact_url(url)!r}: "
                          "expected redis://HOST:PORT/DB")

