"""`tq.submit`: the one way jobs enter the queues (CLI, ingest and Python alike).

A job is checked completely before anything is enqueued: the task exists, the
queue exists, the arguments are JSON, fit the function's signature and the size
limit, the priority is in range, the eta parses. Then one pipeline or
transaction per queue writes the messages together with their `queued` history
records, which go to the queue backend's SUBMITTED outbox (see storage.py); a
consumer's history writer moves them into the history database within about
its flush interval. So submitting never waits for the history database, works
while it is down, and cannot enqueue a job whose record is then lost.
"""
from __future__ import annotations

import json
import logging
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping

from tq import registry
from tq.config import PRIORITY_RANGE
from tq.serializer import dumps_json

logger = logging.getLogger("tq.submit")
SPEC_KEYS = {"task", "args", "kwargs", "queue", "priority", "delay", "eta", "expires",
             "retries", "retry_delay", "timeout", "id", "requeued_from"}
_SIMPLE_TYPES = {int: (int,), float: (int, float), str: (str,), bool: (bool,), list: (list,),
                 dict: (dict,)}
_SIMPLE_TYPES_BY_NAME = {kind.__name__: accepted for kind, accepted in _SIMPLE_TYPES.items()}


class SubmitError(ValueError):
    """A job that cannot be submitted; the message says why in one line."""


@dataclass
class Prepared:
    job_id: str
    queue: str
    priority: int
    data: bytes
    eta: datetime | None
    record: dict


def parse_eta(value: Any) -> datetime:
    """ISO 8601 (naive means UTC) or a datetime -> naive UTC datetime, as Huey keeps it."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise SubmitError(f"eta {value!r} is not an ISO 8601 time "
                              "(e.g. 2026-11-23T18:00:00Z)") from None
    else:
        raise SubmitError(f"eta must be an ISO 8601 string, got {type(value).__name__}")
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment


def _number(name: str, value: Any, minimum: float = 0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise SubmitError(f"{name} must be a number of at least {minimum}, got {value!r}")
    return float(value)


def _check_arguments(definition: registry.TaskDef, args: list, kwargs: dict) -> None:
    """Arity always; types where the function annotates a plain JSON type."""
    try:
        bound = definition.signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise SubmitError(f"arguments do not fit {definition.name}{definition.signature}: "
                          f"{exc}") from None
    for name, value in bound.arguments.items():
        parameter = definition.signature.parameters[name]
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        annotation = parameter.annotation
        expected = _SIMPLE_TYPES.get(annotation) or _SIMPLE_TYPES_BY_NAME.get(annotation)
        if expected is None:
            continue
        if not isinstance(value, expected) or (isinstance(value, bool) and bool not in expected):
            type_name = getattr(annotation, "__name__", annotation)
            raise SubmitError(f"argument {name!r} of {definition.name} must be {type_name}, "
                              f"got {dumps_json(value)[:60]}")


def prepare(runtime, spec: Mapping[str, Any], *, now: float | None = None) -> Prepared:
    """Check one job and turn it into a queue message plus its history record."""
    if not isinstance(spec, Mapping):
        raise SubmitError("a job must be a JSON object with at least a \"task\" key")
    unknown = set(spec) - SPEC_KEYS
    if unknown:
        raise SubmitError(f"unknown job field(s): {', '.join(sorted(unknown))}")
    name = spec.get("task")
    if not isinstance(name, str) or not name:
        raise SubmitError("missing \"task\": the dotted name of a task, e.g. tq.tasks.demo.echo")
    definition = registry.TASKS.get(name)
    if definition is None:
        raise SubmitError(f"unknown task {name!r} (is its module in [tasks] modules?)")

    queue = spec.get("queue") or definition.queue or (
        "default" if "default" in runtime.queues else next(iter(runtime.queues)))
    if queue not in runtime.queues:
        raise SubmitError(f"unknown queue {queue!r} (configured: {', '.join(runtime.queues)})")
    huey = runtime.queues[queue]

    priority = spec.get("priority")
    if priority is None:
        priority = definition.priority if definition.priority is not None else \
            runtime.config.queues[queue]
    low, high = PRIORITY_RANGE
    if isinstance(priority, bool) or not isinstance(priority, int) or not low <= priority <= high:
        raise SubmitError(f"priority must be a whole number from {low} to {high}, "
                          f"got {priority!r}")

    args = spec.get("args") if spec.get("args") is not None else []
    kwargs = spec.get("kwargs") if spec.get("kwargs") is not None else {}
    if not isinstance(args, (list, tuple)):
        raise SubmitError(f"args must be a JSON array, got {type(args).__name__}")
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise SubmitError("kwargs must be a JSON object")
    try:
        encoded_args, encoded_kwargs = dumps_json(list(args)), dumps_json(kwargs)
    except (TypeError, ValueError) as exc:
        raise SubmitError(f"arguments must be JSON-safe: {exc}") from None
    size = len(encoded_args.encode()) + len(encoded_kwargs.encode())
    limit = runtime.config.queue["max_arg_bytes"]
    if size > limit:
        raise SubmitError(f"arguments are {size:,} bytes, over the limit of {limit:,} "
                          "([queue] max_arg_bytes)")
    _check_arguments(definition, list(args), kwargs)

    eta = None
    if spec.get("delay") is not None and spec.get("eta") is not None:
        raise SubmitError("give either delay or eta, not both")
    if spec.get("delay") is not None:
        eta = datetime.utcnow() + timedelta(seconds=_number("delay", spec["delay"]))
    elif spec.get("eta") is not None:
        eta = parse_eta(spec["eta"])
    expires = spec.get("expires")
    if expires is not None:
        expires = _number("expires", expires, minimum=0.001)
    retries = spec.get("retries")
    if retries is not None and (isinstance(retries, bool) or not isinstance(retries, int)
                                or not 0 <= retries <= 1000):
        raise SubmitError(f"retries must be a whole number from 0 to 1000, got {retries!r}")
    retry_delay = spec.get("retry_delay")
    if retry_delay is not None:
        retry_delay = _number("retry_delay", retry_delay)
    timeout = spec.get("timeout")
    if timeout is not None:
        timeout = _number("timeout", timeout, minimum=0.001)

    job_id = spec.get("id") or str(uuid.uuid4())
    if not isinstance(job_id, str) or len(job_id) > 64:
        raise SubmitError("id must be a string of at most 64 characters")
    task_class = huey._registry.string_to_task(name)
    task = task_class(args=tuple(args), kwargs=dict(kwargs), id=job_id, eta=eta,
                      retries=retries, retry_delay=retry_delay, priority=priority,
                      expires=expires, timeout=timeout)
    if task.expires:
        task.resolve_expires(True)
    now = time.time() if now is None else now
    task.tq_enqueued_at = now
    task.tq_max_retries = task.retries
    task.tq_requeued_from = spec.get("requeued_from")
    task.tq_encoded = (encoded_args, encoded_kwargs)
    scheduled = eta is not None and eta > datetime.utcnow()
    record = huey.job_record(task, "scheduled" if scheduled else "queued",
                             eta=eta.replace(tzinfo=timezone.utc).timestamp() if eta else None)
    return Prepared(job_id, queue, priority, huey.serialize_task(task),
                    eta if scheduled else None, record)


def enqueue(runtime, jobs: list[Prepared], dedupe: bool = False) -> list[Prepared]:
    """Write prepared jobs, with their history records, to their queues.

    With dedupe=True a job id already enqueued (within a week) is skipped, so a
    source that re-sends after a crash cannot enqueue a job twice. Returns the
    jobs that were enqueued."""
    by_queue: dict[str, list[Prepared]] = defaultdict(list)
    seal = runtime.records.seal  # signed with TQ_SECRET, like the messages
    for job in jobs:
        by_queue[job.queue].append(job)
    accepted: list[Prepared] = []
    for queue, group in by_queue.items():
        storage = runtime.queues[queue].storage
        ready = [job for job in group if job.eta is None]
        later = [job for job in group if job.eta is not None]
        if ready:
            flags = storage.enqueue_many([(job.data, job.priority) for job in ready],
                                         [job.job_id for job in ready] if dedupe else None,
                                         [seal(job.record) for job in ready])
            accepted += [job for job, ok in zip(ready, flags) if ok]
        if later:
            storage.schedule_many([(job.data, job.eta) for job in later],
                                  [seal(job.record) for job in later])
            accepted += later
    return accepted


def submit(task: str | Any, *args: Any, queue: str | None = None, priority: int | None = None,
           delay: float | None = None, eta: datetime | str | None = None,
           expires: float | None = None, retries: int | None = None,
           retry_delay: float | None = None, timeout: float | None = None,
           job_id: str | None = None, runtime=None, **kwargs: Any) -> str:
    """Enqueue one job; returns its id. `task` is a dotted name or a @tq.task function."""
    from tq.runtime import current

    runtime = runtime or current()
    name = getattr(task, "tq_name", task)
    spec = {"task": name, "args": list(args), "kwargs": kwargs, "queue": queue,
            "priority": priority, "delay": delay, "eta": eta, "expires": expires,
            "retries": retries, "retry_delay": retry_delay, "timeout": timeout, "id": job_id}
    return enqueue(runtime, [prepare(runtime, {k: v for k, v in spec.items()
                                               if v is not None})])[0].job_id


def submit_many(specs: Iterable[Mapping[str, Any]], *, runtime=None,
                dedupe: bool = False) -> list[str]:
    """Enqueue a batch in one pipeline per queue; every job is checked first, so a
    bad one raises SubmitError (naming its position) and nothing is enqueued."""
    from tq.runtime import current

    runtime = runtime or current()
    now = time.time()
    prepared = []
    for index, spec in enumerate(specs):
        try:
            prepared.append(prepare(runtime, spec, now=now))
        except SubmitError as exc:
            raise SubmitError(f"job {index + 1}: {exc}") from None
    return [job.job_id for job in enqueue(runtime, prepared, dedupe=dedupe)]


def parse_spec_line(line: str) -> dict:
    """One line of `tq submit --file`: a JSON object (see SPEC_KEYS)."""
    try:
        spec = json.loads(line)
    except ValueError as exc:
        raise SubmitError(f"invalid JSON: {exc}") from None
    if not isinstance(spec, dict):
        raise SubmitError("a job must be a JSON object with at least a \"task\" key")
    return spec
