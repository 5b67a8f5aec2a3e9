"""The small job-filter language shared by `tq jobs --where`, bulk actions and the console.

    task:send_email state:failed queue:events args:customer=42 since:1h error:Timeout

Terms are ANDed. `since:`/`before:` take a duration (30s, 5m, 1h, 2d) or an ISO
time and compare with the enqueue time. `args:KEY=VALUE` matches a keyword or
dict argument (a dict at any depth of args or kwargs) whose whole value has that
JSON text (`customer=42` is not `"customer": 420`). A bare word matches a job id
exactly or a task name by substring. `task:` also matches by substring, `error:`
the exception type or message by substring. These text matches (args, task,
error, words on task names) ignore ASCII case, as SQL LIKE does on both backends. `group:TYPE: MESSAGE`
matches exactly the failure group of that exception type and normalised message
(see tq/groups.py; quote it: `'group:RuntimeError: gateway returned <n>'`); SQL
narrows it, `Filter.accepts` decides. A term that looks like
`word:value` with a word that is not a key is an error, never a bare word: a
mistyped key (`tsk:`) would otherwise silently match nothing.
"""
from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from tq import groups
from tq.config import PRIORITY_NAMES, PRIORITY_RANGE
from tq.models import STATES, Job
from tq.serializer import dumps_json

KEYS = ("task", "state", "queue", "args", "since", "before", "error", "id", "priority", "group")
_KEYLIKE = re.compile(r"[A-Za-z_]+")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class FilterError(ValueError):
    pass


@dataclass(frozen=True)
class Filter:
    states: tuple[str, ...] = ()
    queues: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()
    ids: tuple[str, ...] = ()
    args: tuple[tuple[str, str], ...] = ()
    errors: tuple[str, ...] = ()
    words: tuple[str, ...] = ()
    since: float | None = None
    before: float | None = None
    priority: int | None = None
    group: tuple[str, str] | None = None  # (exception type, normalised message)
    text: str = field(default="", compare=False)

    def merged(self, **changes: Any) -> Filter:
        return replace(self, **changes)

    def is_empty(self) -> bool:
        return not (self.states or self.queues or self.tasks or self.ids or self.args
                    or self.errors or self.words or self.since or self.before
                    or self.priority is not None or self.group is not None)

    @property
    def exact(self) -> bool:
        """Whether rows from `condition()` still need `accepts` (a group term)."""
        return self.group is not None

    def accepts(self, error_type: str | None, error_message: str | None) -> bool:
        """The part of the filter SQL cannot decide (see condition())."""
        return self.group is None or groups.matches(self.group, error_type, error_message)

    def render(self) -> str:
        """The filter as filter text that parses back to an equal Filter (times
        as ISO UTC, to the microsecond). Values holding the separators of their
        term (a `,` in a queue name or id, `=` in an argument name) cannot be
        written as filter text, so they never come from `parse` either."""
        terms = [f"state:{','.join(self.states)}"] if self.states else []
        terms += [f"queue:{','.join(self.queues)}"] if self.queues else []
        terms += [f"task:{task}" for task in self.tasks]
        terms += [f"id:{','.join(self.ids)}"] if self.ids else []
        terms += [f"args:{name}={raw}" for name, raw in self.args]
        terms += [f"error:{error}" for error in self.errors]
        for key, moment in (("since", self.since), ("before", self.before)):
            if moment is not None:
                terms.append(f"{key}:{datetime.fromtimestamp(moment, UTC).isoformat()}")
        terms += [f"priority:{self.priority}"] if self.priority is not None else []
        terms += ["group:" + groups.key_text(*self.group)] if self.group is not None else []
        return " ".join(shlex.quote(term) for term in [*terms, *self.words])

    def describe(self) -> str:
        """The filter as an audit and a confirmation name it: its text as the
        operator wrote it (`since:1h` stays), led by the states and queues it has
        when the text does not say them (an action's rule set them)."""
        said = Filter()
        if self.text:
            try:
                said = parse(self.text)
            except FilterError:
                pass
        parts = [f"state:{','.join(self.states)}"] if self.states != said.states else []
        parts += [f"queue:{','.join(self.queues)}"] if self.queues != said.queues else []
        if self.group is not None and not self.text:
            parts.append(shlex.quote("group:" + groups.key_text(*self.group)))
        if self.text:
            parts.append(self.text)
        return " ".join(parts) or "all jobs"


def parse_time(value: str, now: float | None = None) -> float:
    now = time.time() if now is None else now
    match = re.fullmatch(r"(\d{1,12}(?:\.\d{1,9})?)([smhdw])", value.strip())  # finite
    if match:
        return now - float(match.group(1)) * _UNITS[match.group(2)]
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise FilterError(f"time {value!r}: use a duration like 30m, 2h, 7d or an ISO time") \
            from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.timestamp()
    except (OverflowError, ValueError):  # year 1 or 9999 moved past the calendar's ends
        raise FilterError(f"time {value!r} is out of range") from None


def parse(text: str, now: float | None = None) -> Filter:
    try:
        tokens = shlex.split(text or "")
    except ValueError as exc:
        raise FilterError(f"filter: {exc}") from None
    values: dict[str, list] = {key: [] for key in ("states", "queues", "tasks", "ids", "args",
                                                   "errors", "words")}
    since = before = priority = group = None
    for token in tokens:
        key, sep, value = token.partition(":")
        if sep and key not in KEYS and _KEYLIKE.fullmatch(key):
            raise FilterError(f"unknown filter key {key!r} (keys: {', '.join(KEYS)})")
        if not sep or key not in KEYS:
            values["words"].append(token)
            continue
        if not value:
            raise FilterError(f"filter term {token!r} has no value")
        if key == "state":
            for state in value.split(","):
                if state not in STATES:
                    raise FilterError(f"unknown state {state!r} (states: {', '.join(STATES)})")
                values["states"].append(state)
        elif key == "queue":
            values["queues"] += value.split(",")
        elif key == "task":
            values["tasks"].append(value)
        elif key == "id":
            values["ids"] += value.split(",")
        elif key == "error":
            values["errors"].append(value)
        elif key == "args":
            name, eq, raw = value.partition("=")
            if not eq or not name:
                raise FilterError(f"args filter {value!r}: use args:KEY=VALUE")
            values["args"].append((name, raw))
        elif key == "since":
            since = parse_time(value, now)
        elif key == "before":
            before = parse_time(value, now)
        elif key == "group":
            group = groups.parse_key(value)
        elif key == "priority":
            named = PRIORITY_NAMES.get(value.lower()) if value.isascii() else None
            try:
                priority = named if named is not None else int(value)
            except ValueError:
                raise FilterError(f"priority {value!r} is not a whole number nor one of "
                                  f"{', '.join(PRIORITY_NAMES)}") from None
            low, high = PRIORITY_RANGE  # what a job can have (tq/jobspec.py); SQL
            if not low <= priority <= high:  # drivers refuse integers past 64 bits
                raise FilterError(f"priority {value!r} is not from {low} to {high}")
    return Filter(**{key: tuple(items) for key, items in values.items()}, since=since,
                  before=before, priority=priority, group=group, text=text.strip())


def group_filter(error_type: str | None, message: str, states: tuple[str, ...] = ("failed",)
                 ) -> Filter:
    """Exactly one failure group (its jobs in `states`), with its text for the filter line."""
    flt = Filter(states=states, group=(error_type or "", message))
    return flt.merged(text=flt.render())


def _json_fragment(name: str, raw: str) -> str:
    value: object
    try:
        value = int(raw)
    except ValueError:
        try:
            value = float(raw)
        except ValueError:
            value = {"true": True, "false": False, "null": None}.get(raw, raw)
    return dumps_json({name: value})[1:-1]  # '"customer":42'


def condition(flt: Filter) -> Any:
    """The filter as a peewee expression on Job (None for "everything")."""
    terms = []
    if flt.states:
        terms.append(Job.state.in_(flt.states))
    if flt.queues:
        terms.append(Job.queue.in_(flt.queues))
    for task in flt.tasks:
        terms.append(Job.task.contains(task))
    if flt.ids:
        terms.append(Job.id.in_(flt.ids))
    for name, raw in flt.args:
        # The whole value: in compact JSON a value ends at `,` or `}`, so
        # `"customer":42` followed by one of them is never `"customer":420`.
        fragment = _json_fragment(name, raw)
        terms.append(Job.kwargs.contains(fragment + ",") | Job.kwargs.contains(fragment + "}")
                     | Job.args.contains(fragment + ",") | Job.args.contains(fragment + "}"))
    for error in flt.errors:
        terms.append(Job.error_type.contains(error) | Job.error_message.contains(error))
    for word in flt.words:
        terms.append((Job.id == word) | Job.task.contains(word))
    if flt.since is not None:
        terms.append(Job.enqueued_at >= flt.since)
    if flt.before is not None:
        terms.append(Job.enqueued_at < flt.before)
    if flt.priority is not None:
        terms.append(Job.priority == flt.priority)
    if flt.group is not None:
        terms.append(groups.prefilter(flt.group))  # then Filter.accepts on each row
    if not terms:
        return None
    expression = terms[0]
    for term in terms[1:]:
        expression &= term
    return expression
