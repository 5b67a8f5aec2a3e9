"""The one validation of job specs: what a job may say, checked before it is enqueued
and again when a consumer reads its message.

Every way a job enters tq (`tq submit`, `tq submit --file`, ingest, `tq.submit`,
`tq.submit_many`, requeue) hands its spec to `check`; every message a consumer
takes off a queue goes through `check_message`. Both use the same field rules
below, so a value refused at submit is also refused when it was written
straight into Redis or SQLite (it is quarantined there, see queues.py).

The rules, and why:
  - text (id, task, queue, requeued_from) is a str of 1..N characters, N the
    width of its history column (read from the peewee model, so the check
    follows the schema), with no control characters, and encodable as UTF-8
    (a lone surrogate like "\\ud800" is refused: no database or terminal can
    store or show it);
  - numbers are int/float, never bool or a numeric string, finite, and inside
    the ranges below. Every range keeps the times Huey computes from them
    (eta, retry eta, expiry) far inside what a datetime and a DOUBLE column
    hold, so no value can make a worker raise OverflowError and strand a job
    "retrying" with nothing in any queue:
        priority      whole number in PRIORITY_RANGE (0..1000), or a name of
                      config.PRIORITY_NAMES in any case (low 0, medium 500,
                      high 1000), kept as its number; "1e3", "urgent", True,
                      NaN are refused
        delay         0 .. MAX_SECONDS (10 years)
        eta           ETA_MIN (1970-01-01) .. ETA_MAX (9000-01-01, exclusive) UTC
        expires       above 0 .. MAX_SECONDS
        timeout       above 0 .. MAX_SECONDS
        retries       whole number 0..MAX_RETRIES (1000)
        retry_delay   0 .. MAX_SECONDS
        retry_backoff 0 (none) .. MAX_BACKOFF (10)
    and, together, a job's whole retry schedule (the sum of its retry delays,
    each the previous one times the backoff) stays within MAX_SECONDS;
  - arguments are JSON (args an array, kwargs an object with string keys),
    numbers finite, nested at most MAX_DEPTH (100) levels below args/kwargs
    (an ingested event of 100 levels fits),
    and at most `[queue] max_arg_bytes` UTF-8 bytes together.

Reasons are one line, name the field, show the value (repr, cut short), and
never carry a Python exception name.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tq.config import PRIORITY_NAMES, PRIORITY_RANGE
from tq.models import Job
from tq.serializer import dumps_json
from tq.strictjson import depth_exceeds

MAX_DEPTH = 100
MAX_SECONDS = 10 * 365 * 86400
MAX_RETRIES = 1000
MAX_BACKOFF = 10
ETA_MIN = datetime(1970, 1, 1)
ETA_MAX = datetime(9000, 1, 1)
# History column widths: a longer value would be refused by MySQL ("Data too long").
ID_MAX = Job.id.max_length
QUEUE_MAX = Job.queue.max_length
TASK_MAX = Job.task.max_length

SPEC_KEYS = frozenset({"task", "args", "kwargs", "queue", "priority", "delay", "eta",
                       "expires", "retries", "retry_delay", "retry_backoff", "timeout", "id",
                       "requeued_from"})
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


class SpecError(ValueError):
    """A job spec (or message) that breaks a rule; the message says which, in one line."""


def show(value: Any, width: int = 40) -> str:
    """A value as it appears in a reason: repr, cut to `width` characters."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # an int too long to print, a cycle
        text = f"<{type(value).__name__}>"
    return text if len(text) <= width else text[:width - 3] + "..."


# --- fields ---------------------------------------------------------------------

def text(name: str, value: Any, max_length: int) -> str:
    if not isinstance(value, str):
        raise SpecError(f"{name} must be a string, got {_kind(value)}")
    if not value:
        raise SpecError(f"{name} must not be empty")
    if len(value) > max_length:
        raise SpecError(f"{name} is {len(value):,} characters, over the limit of {max_length}")
    if _CONTROL.search(value):
        raise SpecError(f"{name} {show(value)} contains control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise SpecError(f"{name} {show(value)} is not valid UTF-8 text "
                        "(it holds a lone surrogate)") from None
    return value


def number(name: str, value: Any, low: float, high: float, *, above: bool = False) -> float:
    """`value` if it is a finite number in [low, high] ((low, high] with above=True)."""
    return _in_range(name, value, low, high, integer=False, above=above)


def whole(name: str, value: Any, low: int, high: int) -> int:
    """`value` as an int if it is a whole number in [low, high] (2.0 is 2; 2.5 is refused)."""
    return int(_in_range(name, value, low, high, integer=True, above=False))


def _in_range(name: str, value: Any, low: float, high: float, *, integer: bool,
              above: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(f"{name} must be a {'whole ' if integer else ''}number, "
                        f"got {_kind(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise SpecError(f"{name} is not a finite number")
    if integer and not isinstance(value, int):
        if not value.is_integer():
            raise SpecError(f"{name} must be a whole number, got {show(value)}")
        value = int(value)
    if value < low or value > high or (above and value == low):
        low_text = f"above {_fmt(low)}" if above else f"from {_fmt(low)}"
        raise SpecError(f"{name} must be {'a whole number' if integer else 'a number'} "
                        f"{low_text} to {_fmt(high)}, got {show(value)}")
    return value


def priority(value: Any) -> int:
    """A priority as its number: a whole number in PRIORITY_RANGE, or a name of
    PRIORITY_NAMES in any case ("high", "High" -> 1000)."""
    if isinstance(value, str):
        number = PRIORITY_NAMES.get(value.lower()) if value.isascii() else None
        if number is None:
            names = ", ".join(f"{name} ({_fmt(n)})" for name, n in PRIORITY_NAMES.items())
            raise SpecError(f"priority must be a whole number from {_fmt(PRIORITY_RANGE[0])} "
                            f"to {_fmt(PRIORITY_RANGE[1])} or one of {names}, "
                            f"got {show(value)}")
        return number
    return whole("priority", value, *PRIORITY_RANGE)


def eta(value: Any) -> datetime:
    """ISO 8601 (naive means UTC) or a datetime -> naive UTC datetime, as Huey keeps it."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise SpecError(f"eta {show(value)} is not an ISO 8601 time "
                            "(e.g. 2026-11-23T18:00:00Z)") from None
    else:
        raise SpecError(f"eta must be an ISO 8601 string, got {_kind(value)}")
    try:
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:  # 9999-12-31T23:00-05:00 is past year 9999 in UTC
        moment = ETA_MAX
    if not ETA_MIN <= moment < ETA_MAX:
        raise SpecError(f"eta {show(value if isinstance(value, str) else str(value))} is "
                        f"outside {ETA_MIN.year} to {ETA_MAX.year - 1} (UTC)")
    return moment


def retry_schedule(retries: int | None, retry_delay: float | None,
                   retry_backoff: float | None) -> None:
    """The sum of a job's retry delays stays within MAX_SECONDS (see the module doc)."""
    if not retries or not retry_delay:
        return
    backoff = retry_backoff or 1
    if backoff == 1:
        total = retries * retry_delay
    elif backoff < 1:
        total = retry_delay / (1 - backoff)  # bounds the geometric sum
    elif retries * math.log(backoff) > math.log(MAX_SECONDS / retry_delay * (backoff - 1) + 1):
        total = math.inf
    else:
        total = retry_delay * (backoff ** retries - 1) / (backoff - 1)
    if total > MAX_SECONDS:
        raise SpecError(f"retries {retries} with retry_delay {_fmt(retry_delay)}"
                        + (f" and retry_backoff {_fmt(backoff)}" if backoff != 1 else "")
                        + f" wait more than {MAX_SECONDS // (365 * 86400)} years in all")


def arguments(args: Any, kwargs: Any, max_bytes: int) -> tuple[list, dict, str, str]:
    """args and kwargs checked and encoded once: (args, kwargs, args JSON, kwargs JSON)."""
    if args is None:
        args = []
    if kwargs is None:
        kwargs = {}
    if not isinstance(args, (list, tuple)):
        raise SpecError(f"args must be a JSON array, got {_kind(args)}")
    if not isinstance(kwargs, dict):
        raise SpecError(f"kwargs must be a JSON object, got {_kind(kwargs)}")
    for key in kwargs:
        if not isinstance(key, str):
            raise SpecError(f"kwargs keys must be strings, got {show(key)}")
    args = list(args)
    try:
        encoded_args, encoded_kwargs = dumps_json(args), dumps_json(kwargs)
    except RecursionError:
        raise SpecError(f"arguments are nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        # allow_nan=False: NaN/Infinity; also ints past Python's digit limit.
        if "float" in str(exc):
            raise SpecError("arguments hold a number that is not finite (NaN or Infinity)"
                            ) from None
        raise SpecError("arguments hold a number too long to encode") from None
    except TypeError:
        raise SpecError("arguments must be JSON values (strings, numbers, true/false/null, "
                        "arrays, objects)") from None
    # The args array / kwargs object itself is not a level: an ingested event
    # nested MAX_DEPTH deep fits as kwargs {"event": ...}.
    if depth_exceeds(encoded_args, MAX_DEPTH + 1) or depth_exceeds(encoded_kwargs,
                                                                   MAX_DEPTH + 1):
        raise SpecError(f"arguments are nested deeper than {MAX_DEPTH} levels")
    try:
        size = len(encoded_args.encode("utf-8")) + len(encoded_kwargs.encode("utf-8"))
    except UnicodeEncodeError:
        raise SpecError("arguments are not valid UTF-8 text (they hold a lone surrogate)"
                        ) from None
    if size > max_bytes:
        raise SpecError(f"arguments are {size:,} bytes, over the limit of {max_bytes:,} "
                        "([queue] max_arg_bytes)")
    return args, kwargs, encoded_args, encoded_kwargs


# --- a whole spec -----------------------------------------------------------------

@dataclass(slots=True)
class Spec:
    """A checked spec. None means "not given" (the task's or queue's default applies)."""
    task: str
    args: list
    kwargs: dict
    encoded_args: str
    encoded_kwargs: str
    queue: str | None = None
    priority: int | None = None
    eta: datetime | None = None  # naive UTC; from delay or eta
    expires: float | None = None
    retries: int | None = None
    retry_delay: float | None = None
    retry_backoff: float | None = None
    timeout: float | None = None
    id: str | None = None
    requeued_from: str | None = None


def check(spec: Any, *, max_arg_bytes: int, now: datetime | None = None) -> Spec:
    """Check one job spec (a mapping of SPEC_KEYS); raise SpecError with the reason."""
    if not isinstance(spec, Mapping):
        raise SpecError("a job must be a JSON object with at least a \"task\" key")
    for key in spec:
        if key not in SPEC_KEYS:
            unknown = sorted(show(k, 30) if not isinstance(k, str) else k
                             for k in spec if k not in SPEC_KEYS)
            raise SpecError(f"unknown job field(s): {', '.join(unknown)[:200]}")
    get = spec.get
    name = get("task")
    if name is None or name == "":
        raise SpecError("missing \"task\": the dotted name of a task, e.g. tq.tasks.demo.echo")
    name = text("task", name, TASK_MAX)
    args, kwargs, encoded_args, encoded_kwargs = arguments(get("args"), get("kwargs"),
                                                           max_arg_bytes)
    checked = Spec(name, args, kwargs, encoded_args, encoded_kwargs)
    value = get("queue")
    if value is not None and value != "":
        checked.queue = text("queue", value, QUEUE_MAX)
    value = get("priority")
    if value is not None:
        checked.priority = priority(value)
    delay, when = get("delay"), get("eta")
    if delay is not None and when is not None:
        raise SpecError("give either delay or eta, not both")
    if delay is not None:
        delay = number("delay", delay, 0, MAX_SECONDS)
        checked.eta = (now or datetime.utcnow()) + timedelta(seconds=delay)
    elif when is not None:
        checked.eta = eta(when)
    value = get("expires")
    if value is not None:
        checked.expires = number("expires", value, 0, MAX_SECONDS, above=True)
    value = get("timeout")
    if value is not None:
        checked.timeout = number("timeout", value, 0, MAX_SECONDS, above=True)
    value = get("retries")
    if value is not None:
        checked.retries = whole("retries", value, 0, MAX_RETRIES)
    value = get("retry_delay")
    if value is not None:
        checked.retry_delay = number("retry_delay", value, 0, MAX_SECONDS)
    value = get("retry_backoff")
    if value is not None:
        checked.retry_backoff = number("retry_backoff", value, 0, MAX_BACKOFF)
    value = get("id")
    if value is not None:
        checked.id = text("id", value, ID_MAX)
    value = get("requeued_from")
    if value is not None:
        checked.requeued_from = text("requeued_from", value, ID_MAX)
    return checked


# Fields given on the command line arrive as text; these parse it for `check`.
_INTEGER_FIELDS = {"priority", "retries"}
_NUMBER_FIELDS = {"delay", "expires", "timeout", "retry_delay", "retry_backoff"}


def from_text(field: str, value: str) -> Any:
    """A command-line value as the type `check` expects ("5" -> 5 for priority)."""
    if field == "priority":
        # Digits are a number; NaN and Infinity are refused as such; anything
        # else is text for `check`: a name ("high"), or refused ("1e3", "2.5").
        if re.fullmatch(r"\s*[+-]?[0-9]{1,30}\s*", value):
            return int(value)
        try:
            parsed = float(value)
        except ValueError:
            return value
        return value if math.isfinite(parsed) else parsed
    if field in _INTEGER_FIELDS or field in _NUMBER_FIELDS:
        stripped = value.strip()
        try:
            return int(stripped)
        except ValueError:
            pass
        try:
            parsed = float(stripped)
        except ValueError:
            raise SpecError(f"{field} must be a {'whole ' if field in _INTEGER_FIELDS else ''}"
                            f"number, got {show(value)}") from None
        return parsed
    return value


# --- a queue message, when a consumer reads it --------------------------------------

_MESSAGE_NUMBERS = (
    # field, low, high, integer, above
    ("priority", PRIORITY_RANGE[0], PRIORITY_RANGE[1], True, False),
    ("retries", 0, MAX_RETRIES, True, False),
    ("retry_delay", 0, MAX_SECONDS, False, False),
    ("retry_backoff", 0, MAX_BACKOFF, False, False),
    ("timeout", 0, MAX_SECONDS, False, True),
)


def _moment(name: str, value: Any) -> None:
    if not isinstance(value, datetime) or value.tzinfo is not None \
            or not ETA_MIN <= value < ETA_MAX:
        raise SpecError(f"{name} must be a time from {ETA_MIN.year} to {ETA_MAX.year - 1}, "
                        f"got {show(value)}")


def check_message(payload: Any) -> None:
    """The same rules for a decoded queue message (Huey's Message fields plus
    tq's "tq" meta). Raise SpecError naming the first field that breaks them."""
    if not isinstance(payload, dict):
        raise SpecError("not a tq message")
    text("task", payload.get("name"), TASK_MAX)
    text("id", payload.get("id"), ID_MAX)
    args, kwargs = payload.get("args"), payload.get("kwargs")
    if args is not None and not isinstance(args, list):
        raise SpecError(f"args must be an array, got {_kind(args)}")
    if kwargs is not None and (not isinstance(kwargs, dict)
                               or not all(isinstance(key, str) for key in kwargs)):
        raise SpecError(f"kwargs must be an object, got {_kind(kwargs)}")
    for name, low, high, integer, above in _MESSAGE_NUMBERS:
        value = payload.get(name)
        if value is not None:
            _in_range(name, value, low, high, integer=integer, above=above)
    for name in ("eta", "expires_resolved"):
        if payload.get(name) is not None:
            _moment(name, payload[name])
    expires = payload.get("expires")
    if expires is not None and not isinstance(expires, datetime):
        number("expires", expires, 0, MAX_SECONDS, above=True)
    elif expires is not None:
        _moment("expires", expires)
    # A follow-up job (`.then()`, `.error()`) travels inside its parent's message
    # and runs as a job of its own: the same rules, checked with the parent. The
    # message's nesting bound (checked before decoding) bounds this recursion.
    for name in ("on_complete", "on_error"):
        follow_up = payload.get(name)
        if follow_up is not None:
            try:
                check_message(follow_up)
            except SpecError as exc:
                raise SpecError(f"{name}: {exc}") from None
    meta = payload.get("tq")
    if meta is None:
        return
    if not isinstance(meta, dict):
        raise SpecError(f"tq meta must be an object, got {_kind(meta)}")
    for name, high in (("attempt", MAX_RETRIES * 1000), ("max_retries", MAX_RETRIES)):
        if meta.get(name) is not None:
            whole(f"tq.{name}", meta[name], 0, high)
    if meta.get("enqueued_at") is not None:
        number("tq.enqueued_at", meta["enqueued_at"], 0, ETA_MAX.replace(
            tzinfo=UTC).timestamp())
    if meta.get("requeued_from") is not None:
        text("tq.requeued_from", meta["requeued_from"], ID_MAX)


def _kind(value: Any) -> str:
    kind = {str: "a string", bool: "true/false", int: "a number", float: "a number",
            list: "an array", tuple: "a tuple", dict: "an object",
            type(None): "null"}.get(type(value))
    return f"{kind} {show(value)}" if kind and value is not None else (kind or type(value).__name__)


def _fmt(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) or float(value).is_integer() and \
        abs(value) < 1e15 else f"{value:g}"
