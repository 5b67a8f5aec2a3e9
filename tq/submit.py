"""`tq.submit`: the one way jobs enter the queues (CLI, ingest and Python alike).

A job is checked completely before anything is enqueued: the task exists, the
queue exists, the arguments are JSON, fit the function's signature and the size
limit, the priority is in range, the eta parses. Then one pipeline or
transaction per queue writes the messages together with their `queued` history
records, which go to the queue backend's SUBMITTED outbox (see tq/storage/); a
consumer's history writer moves them into the history database within about
its flush interval. So submitting never waits for the history database, works
while it is down, and cannot enqueue a job whose record is then lost.

Ids from content. A job made from a file without an id of its own gets one
from the file: `content_prefix(kind, sha256)` + `position_id(prefix, position)`,
the file's SHA-256 and the job's line (or item) number. Ingest ("ev") and
`tq submit --file` ("ln") use this one rule, so the same line of the same
content always gets the same id and submitting it again is refused or skipped
by the id rule (see enqueue); "again" adds a fresh token, for new jobs.
`submit_lines` is a batch file's loop: every line on its own, in batches,
and an outage stops it at a known line (BatchReport).
"""
from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tq import jobspec, registry, strictjson
from tq.format import first_line
from tq.jobspec import SpecError
from tq.storage.contract import backend_unreachable

if TYPE_CHECKING:
    from tq.records import JobRecord
    from tq.runtime import Runtime

logger = logging.getLogger("tq.submit")
IF_EXISTS = ("error", "skip")
_SIMPLE_TYPES = {int: (int,), float: (int, float), str: (str,), bool: (bool,), list: (list,),
                 dict: (dict,)}
_SIMPLE_TYPES_BY_NAME = {kind.__name__: accepted for kind, accepted in _SIMPLE_TYPES.items()}

SubmitError = SpecError  # the name the Python API has always raised


class JobExists(SubmitError):
    """Jobs whose ids already exist were refused (if_exists="error"). `existing`
    names them; `submitted` holds the ids of the batch's other jobs, which went in."""

    def __init__(self, existing: list[str], submitted: list[str] | None = None) -> None:
        self.existing, self.submitted = existing, submitted or []
        more = f" (and {len(existing) - 1:,} more)" if len(existing) > 1 else ""
        super().__init__(f"job {jobspec.show(existing[0], 80)} already exists{more}; "
                         "give if_exists=\"skip\" (tq submit --if-exists skip) to skip it")


@dataclass
class Prepared:
    job_id: str
    queue: str
    priority: int
    data: bytes
    eta: datetime | None
    record: JobRecord
    explicit: bool = False  # the id came with the spec: enqueued at most once
    # History was already asked about this id (submit_lines asks once for a
    # file's whole id range), so enqueue does not ask again.
    history_checked: bool = False


def content_prefix(kind: str, sha256: str, again: str | None = None) -> str:
    """The id prefix of the jobs made from one file's content: `kind` names the
    source ("ev" ingest, "ln" tq submit --file), `again` a fresh token when the
    same content is deliberately made into new jobs (--again)."""
    prefix = f"{kind}-{sha256[:24]}"
    return f"{prefix}-{again[:8]}" if again else prefix


def position_id(prefix: str, position: int) -> str:
    """The id of the job at `position` (line or item number) of a file."""
    return f"{prefix}-{position}"


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
                              f"got {jobspec.show(value, 60)}")


def prepare(runtime: Runtime, spec: Mapping[str, Any], *, now: float | None = None) -> Prepared:
    """Check one job (tq.jobspec) and turn it into a queue message plus its history record."""
    checked = jobspec.check(spec, max_arg_bytes=runtime.config.queue.max_arg_bytes)
    name = checked.task
    definition = registry.TASKS.get(name)
    if definition is None:
        raise SubmitError(f"unknown task {jobspec.show(name, 80)} "
                          "(is its module in [tasks] modules?)")

    queue = checked.queue or definition.queue or (
        "default" if "default" in runtime.queues else next(iter(runtime.queues)))
    if queue not in runtime.queues:
        raise SubmitError(f"unknown queue {jobspec.show(queue, 80)} "
                          f"(configured: {', '.join(runtime.queues)})")
    huey = runtime.queues[queue]

    priority = checked.priority
    if priority is None:
        priority = jobspec.priority(definition.priority) if definition.priority is not None \
            else runtime.config.queues[queue]
    args, kwargs = checked.args, checked.kwargs
    _check_arguments(definition, args, kwargs)
    # The task's own defaults count too: together they must not strand a job.
    jobspec.retry_schedule(
        checked.retries if checked.retries is not None else definition.retries,
        checked.retry_delay if checked.retry_delay is not None else definition.retry_delay,
        checked.retry_backoff if checked.retry_backoff is not None
        else definition.retry_backoff)

    eta = checked.eta
    job_id = checked.id or str(uuid.uuid4())
    task_class = huey._registry.string_to_task(name)
    task = task_class(args=tuple(args), kwargs=dict(kwargs), id=job_id, eta=eta,
                      retries=checked.retries, retry_delay=checked.retry_delay,
                      retry_backoff=checked.retry_backoff, priority=priority,
                      expires=checked.expires, timeout=checked.timeout)
    if task.expires:
        task.resolve_expires(True)
    now = time.time() if now is None else now
    registry.set_meta(task, registry.TaskMeta(
        max_retries=task.retries, enqueued_at=now, requeued_from=checked.requeued_from,
        encoded=(checked.encoded_args, checked.encoded_kwargs)))
    scheduled = eta is not None and eta > datetime.utcnow()
    record = huey.job_record(task, "scheduled" if scheduled else "queued",
                             eta=eta.replace(tzinfo=UTC).timestamp() if eta else None)
    return Prepared(job_id, queue, priority, huey.serialize_task(task),
                    eta if scheduled else None, record, explicit=checked.id is not None)


def enqueue(runtime: Runtime, jobs: list[Prepared]) -> list[Prepared]:
    """Write prepared jobs, with their history records, to their queues; returns
    the jobs enqueued.

    A job whose id came with its spec (`explicit`) is enqueued at most once:
    one that exists is left out of the result (the caller refuses or skips it).
    "Exists" is decided atomically by the queue backend, in the same step that
    enqueues the message and its record (`submit_once`: a dedupe marker kept
    DEDUPE_TTL past the job's eta), so two submitters racing with one id
    enqueue it once. Ids older than that are looked up in history first (see
    `_in_history`; not for `history_checked` jobs, whose caller asked). Jobs
    with generated ids (UUIDs) take the plain path, which on Redis costs about
    8 us a job less (the once-script's SET per marker and its arguments)."""
    by_queue: dict[str, list[Prepared]] = defaultdict(list)
    seal = runtime.records.seal  # signed with TQ_SECRET, like the messages
    for job in jobs:
        by_queue[job.queue].append(job)
    known = _in_history(runtime, [job.job_id for job in jobs
                                  if job.explicit and not job.history_checked])
    accepted: list[Prepared] = []
    for queue, group in by_queue.items():
        storage = runtime.queues[queue].storage
        once = [job for job in group if job.explicit and job.job_id not in known]
        ready = [job for job in group if not job.explicit and job.eta is None]
        later = [job for job in group if not job.explicit and job.eta is not None]
        if once:
            flags = storage.submit_once([(job.job_id, job.data, job.priority, job.eta,
                                          seal(job.record)) for job in once])
            accepted += [job for job, ok in zip(once, flags) if ok]
        if ready:
            storage.enqueue_many([(job.data, job.priority) for job in ready], None,
                                 [seal(job.record) for job in ready])
            accepted += ready
        if later:
            storage.schedule_many([(job.data, job.eta) for job in later],
                                  [seal(job.record) for job in later])
            accepted += later
    return accepted


_history_warned = False


def _in_history(runtime: Runtime, ids: list[str]) -> set[str]:
    """Which of these ids history already holds. The queue backend's markers
    cover a week past a job's eta; a row older than that is found here. While
    the history database is unreachable this says "none" (logged once): submits
    work through a history outage, with the week's markers as the guard."""
    from tq.models import Job

    return _ask_history(runtime, [Job.id.in_(ids[start:start + 500])
                                  for start in range(0, len(ids), 500)])


def in_history_with_prefix(runtime: Runtime, prefix: str) -> set[str]:
    """The ids history holds that start with `prefix` + "-": one index range
    for a whole file's content-derived ids ("-" < "." in every collation used)."""
    from tq.models import Job

    return _ask_history(runtime, [(Job.id >= f"{prefix}-") & (Job.id < f"{prefix}.")])


def _ask_history(runtime: Runtime, conditions: list[Any]) -> set[str]:
    global _history_warned
    if not conditions:
        return set()
    from tq.models import Job

    found: set[str] = set()
    try:
        runtime.history_db()  # binds the models to this runtime's history
        for condition in conditions:
            found.update(row.id for row in Job.select(Job.id).where(condition))
    except Exception as exc:
        if not _history_warned:
            logger.warning("history unreachable, ids checked against the queue backend only "
                           "(%s)", first_line(exc))
            _history_warned = True
        return set()
    _history_warned = False
    return found


def submit(task: str | Any, *args: Any, queue: str | None = None,
           priority: int | str | None = None,
           delay: float | None = None, eta: datetime | str | None = None,
           expires: float | None = None, retries: int | None = None,
           retry_delay: float | None = None, retry_backoff: float | None = None,
           timeout: float | None = None, job_id: str | None = None,
           if_exists: str = "error", runtime: Runtime | None = None, **kwargs: Any) -> str:
    """Enqueue one job; returns its id. `task` is a dotted name or a @tq.task function.

    A `job_id` that exists raises JobExists, or with if_exists="skip" is left
    as it is (the id is returned: submitting it again is idempotent)."""
    from tq.runtime import current

    _check_if_exists(if_exists)
    runtime = runtime or current()
    name = getattr(task, "tq_name", task)
    spec = {"task": name, "args": list(args), "kwargs": kwargs, "queue": queue,
            "priority": priority, "delay": delay, "eta": eta, "expires": expires,
            "retries": retries, "retry_delay": retry_delay, "retry_backoff": retry_backoff,
            "timeout": timeout, "id": job_id}
    job = prepare(runtime, {k: v for k, v in spec.items() if v is not None})
    if not enqueue(runtime, [job]) and if_exists == "error":
        raise JobExists([job.job_id])
    return job.job_id


def submit_many(specs: Iterable[Mapping[str, Any]], *, runtime: Runtime | None = None,
                if_exists: str = "error",
                dedupe: bool = False) -> list[str]:
    """Enqueue a batch in one pipeline per queue; returns the ids enqueued.

    Every job is checked first, so an invalid one raises SubmitError (naming
    its position) and nothing is enqueued. Jobs whose ids exist are left out;
    with if_exists="error" (the default) JobExists is raised after the rest of
    the batch went in (its `submitted` lists them), with "skip" they are only
    left out of the result. `dedupe=True` is the old spelling of "skip"."""
    from tq.runtime import current

    if dedupe:
        if_exists = "skip"
    _check_if_exists(if_exists)
    runtime = runtime or current()
    now = time.time()
    prepared = []
    for index, spec in enumerate(specs):
        try:
            prepared.append(prepare(runtime, spec, now=now))
        except SubmitError as exc:
            raise SubmitError(f"job {index + 1}: {exc}") from None
    accepted = enqueue(runtime, prepared)
    ids = [job.job_id for job in accepted]
    if if_exists == "error" and len(accepted) < len(prepared):
        went_in = {id(job) for job in accepted}
        raise JobExists([job.job_id for job in prepared if id(job) not in went_in], ids)
    return ids


@dataclass
class BatchReport:
    """What submit_lines did, by line number (1-based; blank lines count)."""

    jobs: int = 0  # lines that made a job
    submitted: int = 0
    skipped: int = 0  # their id existed, with if_exists="skip"
    # Refused (if_exists="error"): the content-derived id existed, so the line
    # was submitted before from the same content.
    before: list[int] = field(default_factory=list)
    bad: list[tuple[int, str]] = field(default_factory=list)  # with the reason
    settled: int = 0  # every line up to this one is in, skipped, refused or bad
    # An outage stopped the batch: its error, and the lines being written then
    # (first, last), which may or may not be in. Nothing after them was read.
    outage: str | None = None
    unsure: tuple[int, int] | None = None


def submit_lines(runtime: Runtime, lines: Iterable[tuple[int, bytes]], *,
                 prefix: str | None = None, if_exists: str = "error",
                 batch_size: int = 1000, batch_seconds: float = 0.2) -> BatchReport:
    """Submit a batch file's (line number, raw line) pairs, each line on its own:
    a bad line is reported with its number and reason and the others go in, in
    batches of `batch_size` (or sooner, once the first job of a batch is
    `batch_seconds` old: its enqueue time is stamped when its line is read, so
    a slow source must not hold it back behind other submitters' jobs).

    With `prefix` (content_prefix of the file), a line without an id gets
    position_id(prefix, line number), so a re-run of the same content finds
    its lines: skipped with if_exists="skip", else refused and listed in
    `before`. History is asked once for the file's whole id range; the queue
    backend's markers decide the rest in the enqueue step itself, so this costs
    no more round trips than generated ids do.

    A failure of the queue backend stops the batch (`outage`, `unsure`); one
    reading `lines` (OSError) is raised."""
    _check_if_exists(if_exists)
    report = BatchReport()
    batch: list[tuple[int, Prepared, bool]] = []  # (line, job, id derived from content)
    known: set[str] | None = None  # derived ids history holds

    def send() -> bool:
        nonlocal batch, known
        if known is None:
            known = in_history_with_prefix(runtime, prefix) if prefix else set()
        fresh = [job for _, job, derived in batch if not (derived and job.job_id in known)]
        try:
            accepted = {id(job) for job in enqueue(runtime, fresh)}
        except Exception as exc:
            if not backend_unreachable(exc):
                raise  # a defect, not an outage: never reported as one
            report.outage = first_line(exc) or "connection lost"
            report.unsure = (batch[0][0], batch[-1][0])
            return False
        for number, job, derived in batch:
            if id(job) in accepted:
                report.submitted += 1
            elif if_exists == "skip":
                report.skipped += 1
            elif derived:
                report.before.append(number)
            else:
                report.bad.append((number, f"job {jobspec.show(job.job_id, 80)} already "
                                           "exists (--if-exists skip skips it)"))
        report.settled = batch[-1][0]
        batch = []
        return True

    number = 0
    for number, raw in lines:
        if not raw.strip():
            continue
        try:
            spec = parse_spec_line(raw)
        except SubmitError as exc:
            report.bad.append((number, str(exc)))
            continue
        derived = prefix is not None and spec.get("id") is None
        if prefix is not None and derived:
            spec["id"] = position_id(prefix, number)
        try:
            job = prepare(runtime, spec)
        except SubmitError as exc:
            report.bad.append((number, str(exc)))
            continue
        job.history_checked = derived
        report.jobs += 1
        batch.append((number, job, derived))
        # A batch is sent when full, or once its first job has waited batch_seconds.
        first_at = batch[0][1].record.get("enqueued_at") or time.time()
        if len(batch) >= batch_size or time.time() - first_at >= batch_seconds:
            if not send():
                return report
    if batch and not send():
        return report
    report.settled = number
    return report


def _check_if_exists(value: str) -> None:
    if value not in IF_EXISTS:
        raise SubmitError(f"if_exists must be one of {', '.join(IF_EXISTS)}, "
                          f"got {jobspec.show(value)}")


def parse_spec_line(line: bytes | str) -> dict:
    """One line of `tq submit --file` (or an HTTP batch item): a JSON object (see
    jobspec.SPEC_KEYS), strict JSON (tq.strictjson) whose arguments nest at most
    jobspec.MAX_DEPTH levels inside the spec object and its args array."""
    try:
        spec = strictjson.loads(line, jobspec.MAX_DEPTH, wrapper_levels=2)
    except strictjson.StrictJsonError as exc:
        raise SubmitError(str(exc)) from None
    if not isinstance(spec, dict):
        raise SubmitError("a job must be a JSON object with at least a \"task\" key")
    return spec
