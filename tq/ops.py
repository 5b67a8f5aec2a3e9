"""Operator actions: pause, resume, cancel, requeue, purge, run now.

The CLI verbs and the console's keys both call these functions; neither has an
action of its own, nor a rule of its own about which jobs an action touches.
That rule is one row of RULES per action (the history states it changes, what a
filter naming no state acts on, what it acts on for a whole queue, why a job
given by id is skipped); `scope` applies it to what the operator selected (ids,
a filter, a failure group's filter, a queue's filter), and both `preview` (the
exact count, a few ids and a sentence naming the states, tasks, queues and
failure group, asked before acting, or printed by `--dry-run`) and the action
itself select through that one scope, so the count asked is the count touched.

Every bulk action returns an ActionResult that says what happened: done,
partly done (with counts) or failed (with the reason: a server that went away
mid-way is caught and reported, not raised, so no caller can mistake it for
success). Every action is audited (tq/audit.py): who, where, when, the filter
or group as text, the count, the outcome and every id it touched; the entry
goes through the queue backend's outbox, so it survives a history outage.

Requeue retires its source: the original becomes `requeued` (models.state_seq
puts that above every other state, so no late record brings it back to
`failed`) and its copy has a deterministic id, copy_id(original). The copy is
enqueued first, with the queue backend's once-only dedupe on that id, then the
original is retired. Two requeues of one job at once make one copy (the
backend lets one enqueue through); a crash between the two steps leaves the
original failed, and the next requeue finds its copy (in history or by the
dedupe) and only retires it: at least once, never twice.
"""
from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from tq import audit as audit_trail
from tq import records as history_record
from tq.attach import apps as attached_apps
from tq.attach import attachment
from tq.format import first_line
from tq.history import write_records
from tq.models import REQUEUABLE, Job, bound
from tq.queries import catch_up, exact_rows, history_unreachable, queue_unreachable
from tq.queues import host_name
from tq.registry import task_meta
from tq.serializer import loads_json
from tq.submit import SubmitError, enqueue, prepare
from tq.where import Filter, condition

if TYPE_CHECKING:
    from tq.runtime import Runtime

logger = logging.getLogger("tq.ops")
COPY_NAMESPACE = uuid.UUID("6f1d3c1e-6a57-4f3b-9c43-2f2d1f8e7a10")
SAMPLE = 10  # ids a preview names (the confirm dialog, --dry-run)


class ActionError(ValueError):
    pass


def copy_id(original: str) -> str:
    """The id of `original`'s requeued copy: the same for every requeue of it."""
    return str(uuid.uuid5(COPY_NAMESPACE, original))


def reason(exc: BaseException) -> str:
    """One line for an error that stopped an action (which server, what it said)."""
    import peewee
    import redis

    from tq.config import BackendUnavailable

    text = first_line(str(exc), 200)
    if isinstance(exc, BackendUnavailable):  # its line names the server already
        return text
    name = type(exc).__name__
    if isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
        return f"queue backend unreachable ({name}: {text})"
    if isinstance(exc, (peewee.OperationalError, peewee.InterfaceError)):
        return f"history database unreachable ({name}: {text})"
    return f"{name}: {text}" if text else name


# --- which jobs each action touches: the one place this is written -------------------

WAITING = ("queued", "scheduled", "running", "retrying")
DEAD_LETTER_STATES = ("failed", "canceled", "expired")


@dataclass(frozen=True)
class Rule:
    """Which jobs one action touches.

    `states`: the history states it changes; a job given by id in another state
    is skipped, and `skip` says why (by state, "*" for the rest). `default`: what
    a filter naming no state (or no filter) acts on. `queue`: what it acts on for
    a whole queue (the Queues screen's keys; () where it is not offered).
    `refuse`: set, a filter naming a state outside `states` is refused with this
    text instead of narrowed (purge deletes on purpose only). `source`: where the
    jobs it moves are: "history", or "schedule" (run now moves what is on the
    schedule; history, with a filter, only says which ones)."""
    verb: str
    past: str  # ActionResult.line(): "requeued {what}"
    states: tuple[str, ...]
    default: tuple[str, ...]
    queue: tuple[str, ...]
    skip: dict[str, str]
    refuse: str = ""
    source: str = "history"

    def why(self, state: str) -> str:
        """Why a job in `state` was skipped."""
        return self.skip.get(state, self.skip["*"]).format(state=state)


RULES: dict[str, Rule] = {
    "requeue": Rule("Requeue", "requeued {what}", states=REQUEUABLE, default=("failed",),
                    queue=("failed",),
                    skip={"requeued": "already requeued", "*": "still {state}"}),
    # A whole queue's cancel takes its waiting jobs: the running ones are left to finish.
    "cancel": Rule("Cancel", "canceled {what}", states=WAITING, default=WAITING,
                   queue=("queued", "scheduled", "retrying"),
                   skip={"*": "already finished ({state}); unchanged"}),
    "run_now": Rule("Run now", "moved {what} from the schedule to the queue",
                    states=("scheduled", "retrying"), default=("scheduled", "retrying"),
                    queue=(), skip={"*": "not on the schedule ({state})"},
                    source="schedule"),
    "purge": Rule("Purge", "purged {what} from history", states=DEAD_LETTER_STATES,
                  default=("failed",), queue=("failed",),
                  skip={"*": "{state}, not a dead letter"},
                  refuse="purge deletes dead letters only"),
}


@dataclass(frozen=True)
class Scope:
    """A selection with its action's rule applied: the ids given (None: by
    filter), or the filter (its states those the action acts on), and the states
    a selected job must be in to be touched (() with a filter: none is)."""
    action: str
    ids: list[str] | None
    flt: Filter | None
    states: tuple[str, ...]

    @property
    def rule(self) -> Rule:
        return RULES[self.action]

    def target(self) -> str:
        """The audit's text for what the action acts on (the ids are kept apart)."""
        if self.ids is not None:
            return f"{len(self.ids):,} id{'' if len(self.ids) == 1 else 's'} given"
        return self.flt.describe() if self.flt is not None else "all jobs"


def scope(action: str, ids: Iterable[str] | None = None, flt: Filter | None = None) -> Scope:
    """What `action` acts on, given ids (then a filter is ignored) or a filter
    (None: every job, as its rule's `default` narrows it). ActionError for a
    filter its rule refuses."""
    rule = RULES[action]
    if ids is not None:
        return Scope(action, list(dict.fromkeys(ids)), None, rule.states)
    flt = flt if flt is not None else Filter()
    if not flt.states:
        states = rule.default
    else:
        outside = [state for state in flt.states if state not in rule.states]
        if outside and rule.refuse:
            raise ActionError(f"{rule.refuse} ({', '.join(rule.states)}), "
                              f"not {', '.join(outside)}")
        states = tuple(state for state in flt.states if state in rule.states)
    return Scope(action, None, flt.merged(states=states) if states else flt, states)


def queue_filter(action: str, queue: str) -> Filter | None:
    """What `action` acts on for all of `queue` (None: not offered for a queue)."""
    states = RULES[action].queue
    return Filter(queues=(queue,), states=states) if states else None


def select_jobs(runtime: Runtime, selected: Scope, chunk: int = 1000) -> Iterator[list[Job]]:
    """The jobs a scope selects, in chunks: by id (any state: the action skips,
    and says why), or by filter exactly (a group term too; keyset on id, so bulk
    actions over a million rows never hold them all)."""
    _history(runtime)
    if selected.ids is not None:
        for start in range(0, len(selected.ids), chunk):
            yield list(Job.select().where(Job.id.in_(selected.ids[start:start + chunk])))
        return
    if selected.states and selected.flt is not None:
        yield from exact_rows(selected.flt, ALL_FIELDS, chunk)


ALL_FIELDS = tuple(Job._meta.sorted_fields)


# --- previews ---------------------------------------------------------------------

@dataclass
class Preview:
    """What an action would touch, counted before the operator confirms."""
    action: str
    count: int
    text: str  # "Requeue 3 failed jobs of task x in queue default?"
    counts: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (state, queue, task)
    sample: list[str] = field(default_factory=list)  # a few of the ids, first by id

    def line(self) -> str:
        """The dry run's line: what the action would do (and the group's error)."""
        question, newline, rest = self.text.partition("\n")
        what = question.removesuffix("?")
        return (f"would {what[:1].lower()}{what[1:]} (dry run: nothing changed)"
                + newline + rest)

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "dry_run": True, "count": self.count,
                "counts": [{"state": s, "queue": q, "task": t, "count": n}
                           for (s, q, t), n in sorted(self.counts.items())],
                "sample": self.sample}


def preview(runtime: Runtime, action: str, ids: Iterable[str] | None = None,
            flt: Filter | None = None, sample: int = SAMPLE) -> Preview:
    """The exact count `action` would touch now (as scope() selects it and the
    action's rule admits each job), a few of their ids, and the question to ask."""
    selected = scope(action, ids, flt)
    counts: Counter[tuple[str, str, str]] = Counter()
    ids_seen: list[str] = []
    if selected.rule.source == "schedule":
        wanted = set(selected.ids if selected.ids is not None else
                     (job.id for rows in select_jobs(runtime, selected) for job in rows))
        for huey, _, task, own in _on_schedule(runtime, wanted):
            counts[_scheduled_row(huey, task, own)] += 1
            ids_seen.append(task.id)
    elif selected.ids is not None or (selected.flt is not None and selected.flt.exact):
        for rows in select_jobs(runtime, selected):
            for job in rows:
                if job.state in selected.states:
                    counts[(job.state, job.queue or "?", job.task or "?")] += 1
                    ids_seen.append(job.id)
    elif selected.states and selected.flt is not None:
        counts, ids_seen = _count(runtime, selected.flt, sample)
    group = flt.group if flt is not None and selected.ids is None else None
    return Preview(action, sum(counts.values()),
                   sentence(selected.rule.verb, counts, group), dict(counts),
                   sorted(ids_seen)[:sample])


def _count(runtime: Runtime, flt: Filter, sample: int
           ) -> tuple[Counter[tuple[str, str, str]], list[str]]:
    """Counts by (state, queue, task) in SQL, and the first ids: a filter with no
    group term needs no row brought back to be counted exactly."""
    from peewee import fn

    _history(runtime)
    expression = condition(flt)
    counts: Counter[tuple[str, str, str]] = Counter()
    query = Job.select(Job.state, Job.queue, Job.task, fn.COUNT(Job.id))
    if expression is not None:
        query = query.where(expression)
    grouped = cast(Iterable[tuple[str, str | None, str | None, int]],
                   query.group_by(Job.state, Job.queue, Job.task).tuples())
    for state, queue, task, n in grouped:
        counts[(state, queue or "?", task or "?")] += n
    first = Job.select(Job.id)
    if expression is not None:
        first = first.where(expression)
    return counts, [job.id for job in first.order_by(Job.id).limit(sample)]


def _history(runtime: Runtime) -> None:
    """Before a history read: what was submitted written (queries.catch_up), and the
    models bound to this runtime's database."""
    catch_up(runtime)
    runtime.history_db()


def sentence(verb: str, counts: dict[tuple[str, str, str], int],
             group: tuple[str, str] | None = None) -> str:
    """"Requeue 3 failed jobs of task x in queue default?" (and the group's error)."""
    total = sum(counts.values())
    by_state: Counter[str] = Counter()
    for (state, _, _), n in counts.items():
        by_state[state] += n
    noun = "job" if total == 1 else "jobs"
    if len(by_state) == 1:
        what = f"{total:,} {next(iter(by_state))} {noun}"
    else:
        parts = ", ".join(f"{n:,} {s}" for s, n in sorted(by_state.items()))
        what = f"{total:,} {noun}" + (f" ({parts})" if parts else "")
    tasks = sorted({task for _, _, task in counts})
    queues = sorted({queue for _, queue, _ in counts})
    where = ""
    if tasks:
        where += " of " + _names("task", tasks)
    if queues:
        where += " in " + _names("queue", queues)
    text = f"{verb} {what}{where}?"
    if group is not None:
        text += f"\nError: {group[0] or '?'}: {group[1]}"
    return text


def _names(kind: str, names: list[str], shown: int = 3) -> str:
    if len(names) == 1:
        return f"{kind} {names[0]}"
    if len(names) <= shown:
        return f"{kind}s {', '.join(names)}"
    return f"{len(names)} {kind}s ({', '.join(names[:shown])}, …)"


# --- results ----------------------------------------------------------------------

@dataclass
class ActionResult:
    """What an action did. `done` ids were changed; `skipped` (id -> why) were not;
    `error` says why it stopped (None: it ran to its end)."""
    action: str = ""
    target: str = ""
    done: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    # Whether what stopped it was a server that did not answer (try again later)
    # rather than a defect: HTTP answers 503 for the one, 500 for the other.
    outage: bool = False

    def stopped(self, exc: BaseException) -> None:
        """It stopped on `exc`: the reason kept in one line, and what kind it was."""
        self.error = reason(exc)
        self.outage = queue_unreachable(exc) or history_unreachable(exc)

    @property
    def count(self) -> int:
        return len(self.done)

    @property
    def outcome(self) -> str:
        """done, partly (some done, then an error), failed (an error, nothing done)
        or nothing (no job it applies to)."""
        if self.error:
            return "partly" if self.done else "failed"
        return "done" if self.done else "nothing"

    def line(self) -> str:
        """One line for the operator: what happened, with counts and the reason."""
        n = self.count
        noun = f"{n:,} job{'' if n == 1 else 's'}"
        past = RULES[self.action].past.format(what=noun)
        skipped = f"; {len(self.skipped):,} skipped" if self.skipped else ""
        if self.outcome == "failed":
            return f"{RULES[self.action].verb} failed: {self.error}; nothing changed"
        if self.outcome == "partly":
            return f"{past}, then stopped: {self.error}{skipped}"
        if self.outcome == "nothing":
            return f"nothing to {self.action.replace('_', ' ')}: no job it applies to{skipped}"
        return past + skipped

    def as_dict(self) -> dict:
        return dict(self.__dict__, outcome=self.outcome, count=self.count)


@dataclass
class RequeueResult(ActionResult):
    new_ids: dict[str, str] = field(default_factory=dict)  # original id -> its copy's id
    # Requeued before (a crash between copy and retire, or a concurrent requeue):
    # retired now, no second copy. original id -> copy id.
    already: dict[str, str] = field(default_factory=dict)


@dataclass
class CancelResult(ActionResult):
    canceled: list[str] = field(default_factory=list)  # queued/scheduled/retrying: never runs
    requested: list[str] = field(default_factory=list)  # running: asked to stop
    finished: list[str] = field(default_factory=list)  # already had an outcome: unchanged
    unknown: list[str] = field(default_factory=list)  # not in history


# --- the audit --------------------------------------------------------------------

def audit(runtime: Runtime, action: str, target: str, count: int, ids: Iterable[str] = (),
          outcome: str = "done", detail: str | None = None, user: str | None = None) -> None:
    """Record an action (tq/audit.py) through the outbox; never raises."""
    try:
        publish(runtime, audit_trail.records(action, target, count, ids, outcome=outcome,
                                             detail=detail, user=user, host=host_name()))
    except Exception as exc:
        logger.warning("audit record of %s %s not written: %s", action, target, reason(exc))


def publish(runtime: Runtime, records: Sequence[Mapping[str, Any]]) -> None:
    """History records (job, audit) to the queue backend's SUBMITTED outbox, which
    consumers' history writers and the next catch_up write to history; with the
    queue backend down, straight to the history database. Raises if neither takes them."""
    if not records:
        return
    encoded = [runtime.records.seal(record) for record in records]
    try:
        storage = next(iter(runtime.queues.values())).storage
        storage.schedule_many([], records=encoded)  # no message: the records alone
    except Exception as exc:
        logger.debug("outbox unreachable (%s); writing to history directly", exc)
        write_records(runtime.history_db(), [dict(record) for record in records])
        return
    catch_up(runtime)  # now, if the database answers; else a consumer does it later


def _audit_result(runtime: Runtime, result: ActionResult) -> None:
    audit(runtime, result.action.replace("_", "-"), result.target, result.count, result.done,
          outcome=result.outcome, detail=result.error)


# --- pause / resume --------------------------------------------------------------

def _attached_targets(runtime: Runtime, queue: str, task: str | None) -> list[Any] | None:
    """An attached Huey app's task classes a pause or resume acts on (all of
    them without `task`), or None when `queue` is not an attached app."""
    app = attached_apps(runtime).get(queue)
    if app is None:
        return None
    classes: dict[str, Any] = app._registry._registry
    if task is None:
        return list(classes.values())
    if task not in classes:
        raise ActionError(f"unknown task {task!r} of attached app {queue!r}")
    return [classes[task]]


def pause(runtime: Runtime, queue: str, task: str | None = None) -> None:
    """Stop handing out jobs of `queue` (or of one task type in it). Running jobs
    finish; jobs submitted meanwhile wait; nothing is dropped. An attached Huey
    app is paused with Huey's own revoke_all: its consumer DROPS (as revoked,
    recorded canceled) the jobs of a paused type it dequeues meanwhile."""
    attached = _attached_targets(runtime, queue, task)
    if attached is not None:
        for task_class in attached:
            attached_apps(runtime)[queue].revoke_all(task_class)
    else:
        runtime.queue(queue)
    target = f"{queue}/{task}" if task else queue
    runtime.control.set_paused(target, True, {"at": time.time(), "by": host_name()})
    audit(runtime, "pause", target, 1)


def resume(runtime: Runtime, queue: str, task: str | None = None) -> int:
    """Undo pause; returns how many held jobs of a paused task type went back
    (none on an attached Huey app: Huey dropped them; restore_all here)."""
    attached = _attached_targets(runtime, queue, task)
    target = f"{queue}/{task}" if task else queue
    if attached is not None:
        for task_class in attached:
            attached_apps(runtime)[queue].restore_all(task_class)
        runtime.control.set_paused(target, False)
        audit(runtime, "resume", target, 1)
        return 0
    huey = runtime.queue(queue)
    runtime.control.set_paused(target, False)
    moved = huey.storage.unhold(task) if task else 0
    huey.storage.wake_workers()  # idle workers start at once, not at their next poll
    audit(runtime, "resume", target, 1)
    return moved


# --- cancel -------------------------------------------------------------------------

def cancel(runtime: Runtime, ids: Iterable[str] | None = None, flt: Filter | None = None
           ) -> CancelResult:
    selected = scope("cancel", ids, flt)
    result = CancelResult("cancel", selected.target())
    seen: set[str] = set()
    now = time.time()
    try:
        for rows in select_jobs(runtime, selected):
            records, requests = [], []
            for job in rows:
                seen.add(job.id)
                if job.state not in selected.states:
                    result.finished.append(job.id)
                    result.skipped[job.id] = selected.rule.why(job.state)
                    continue
                # tq's queue or an attached Huey app's (the same revoke_by_id).
                huey = (runtime.queues.get(job.queue or "")
                        or attached_apps(runtime).get(job.queue or ""))
                # Ask a running job to stop (cooperatively) in every case: history
                # may not show `running` yet for a job a worker has just taken.
                requests.append(job.id)
                if job.state == "running":
                    result.requested.append(job.id)
                    continue
                if huey is not None:
                    # Huey drops a revoked job when it is next dequeued or comes due.
                    huey.revoke_by_id(job.id, revoke_once=True)
                records.append(history_record.canceled(job.id, job.attempts or 0, now))
                result.canceled.append(job.id)
            if requests:
                runtime.control.request_cancel(requests)
            if records:
                write_records(runtime.history_db(), [dict(record) for record in records])
            result.done = result.canceled + result.requested
    except Exception as exc:
        result.stopped(exc)
    if selected.ids is not None and result.error is None:
        result.unknown = [job_id for job_id in selected.ids if job_id not in seen]
        result.skipped.update({job_id: "not in history" for job_id in result.unknown})
    _audit_result(runtime, result)
    return result


# --- requeue ------------------------------------------------------------------------

def requeue(runtime: Runtime, ids: Iterable[str] | None = None, flt: Filter | None = None
            ) -> RequeueResult:
    """Run finished jobs again: each gets one copy (same task and arguments, id
    copy_id(original), linked by `requeued_from`) and is retired as `requeued`."""
    selected = scope("requeue", ids, flt)
    result = RequeueResult("requeue", selected.target())
    seen: set[str] = set()
    try:
        for rows in select_jobs(runtime, selected):
            seen.update(job.id for job in rows)
            _requeue_chunk(runtime, selected, rows, result)
    except Exception as exc:
        result.stopped(exc)
    if selected.ids is not None and result.error is None:
        for job_id in selected.ids:
            if job_id not in seen:
                result.skipped[job_id] = "not in history"
    _audit_result(runtime, result)
    return result


def _requeue_chunk(runtime: Runtime, selected: Scope, rows: list[Job],
                   result: RequeueResult) -> None:
    candidates = []
    for job in rows:
        if job.state in selected.states:
            candidates.append(job)
        else:
            result.skipped[job.id] = selected.rule.why(job.state)
    apps = attached_apps(runtime)
    if apps:  # jobs of attached Huey apps: re-enqueued through the app itself
        own = [job for job in candidates if (job.queue or "") not in apps]
        for job in candidates:
            if (job.queue or "") in apps:
                _requeue_attached(runtime, apps[job.queue or ""], job, result)
        candidates = own
    if not candidates:
        return
    copies = {job.id: copy_id(job.id) for job in candidates}
    # A copy already in history: an earlier requeue made it, then stopped before retiring.
    copied = {copy.requeued_from for copy in Job.select(Job.requeued_from)
              .where(Job.id.in_(list(copies.values())))}
    prepared = []
    for job in candidates:
        if job.id in copied:
            continue
        try:
            spec = {"task": job.task, "args": loads_json(job.args or "[]"),
                    "kwargs": loads_json(job.kwargs or "{}"), "queue": job.queue,
                    "priority": job.priority, "retries": job.max_retries,
                    "requeued_from": job.id, "id": copies[job.id]}
            prepared.append((job.id, prepare(runtime, {k: v for k, v in spec.items()
                                                       if v is not None})))
        except (SubmitError, ValueError) as exc:
            result.skipped[job.id] = str(exc)
    # Once only per copy id: of two requeues at once, one enqueues the copy.
    enqueued = {job.job_id for job in enqueue(runtime, [p for _, p in prepared])}
    retire = []
    for job in candidates:
        if job.id in result.skipped:
            continue
        if copies[job.id] in enqueued:
            result.new_ids[job.id] = copies[job.id]
            result.done.append(job.id)
        else:
            result.already[job.id] = copies[job.id]
        retire.append(history_record.requeued(job.id, job.attempts or 0))
    publish(runtime, retire)


def _requeue_attached(runtime: Runtime, app: Any, job: Job, result: RequeueResult) -> None:
    """A copy of an attached app's job, enqueued with Huey's own enqueue (the
    app's serializer, its storage): possible when history holds its arguments
    as JSON (not as the repr of what JSON cannot carry) and the app has its task."""
    copy = copy_id(job.id)
    if Job.select().where(Job.id == copy).exists():
        result.already[job.id] = copy
        publish(runtime, [history_record.requeued(job.id, job.attempts or 0)])
        return
    args, kwargs = loads_json(job.args or "[]"), loads_json(job.kwargs or "{}")
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        result.skipped[job.id] = ("its arguments are not JSON (history holds their repr): "
                                  "enqueue it again from the app")
        return
    task_class = app._registry._registry.get(job.task or "")
    if task_class is None:
        result.skipped[job.id] = f"attached app {job.queue!r} has no task {job.task!r}"
        return
    found = attachment(app)
    if found is not None:
        found.requeued_from[copy] = job.id
    app.enqueue(task_class(args=tuple(args), kwargs=kwargs, id=copy,
                           priority=job.priority or None))
    result.new_ids[job.id] = copy
    result.done.append(job.id)
    publish(runtime, [history_record.requeued(job.id, job.attempts or 0)])


# --- purge --------------------------------------------------------------------------

def purge(runtime: Runtime, ids: Iterable[str] | None = None, flt: Filter | None = None
          ) -> ActionResult:
    """Delete dead letters (failed, canceled or expired jobs) from history, on
    purpose only: ActionError for a filter naming another state."""
    from tq.models import Attempt

    selected = scope("purge", ids, flt)
    result = ActionResult("purge", selected.target())
    try:
        for rows in select_jobs(runtime, selected):
            id_list = [job.id for job in rows if job.state in selected.states]
            result.skipped.update({job.id: selected.rule.why(job.state) for job in rows
                                   if job.state not in selected.states})
            if id_list:
                with runtime.history_db().atomic():
                    Attempt.delete().where(Attempt.job_id.in_(id_list)).execute()
                    Job.delete().where(Job.id.in_(id_list)).execute()
                result.done += id_list
    except Exception as exc:
        result.stopped(exc)
    _audit_result(runtime, result)
    return result


# --- run now ------------------------------------------------------------------------

def run_now(runtime: Runtime, ids: Iterable[str] | None = None, flt: Filter | None = None
            ) -> ActionResult:
    """Move scheduled or retrying jobs from the schedule to the front of their work:
    they are enqueued now instead of at their eta. By filter, history says which
    jobs; only those on the schedule move. Each is taken off its schedule in one
    atomic step first (a scheduler racing us, or a second run-now, gets it or we
    do: it runs once), then enqueued with its `records.run_now` record. An
    attached Huey app's job is taken from the app's own storage
    (tq.attached_schedule) and enqueued with Huey's own enqueue; one Huey has
    revoked (canceled, or its task type paused) is left where it is. A job
    given by id and not moved is skipped with why, and its state in history."""
    selected = scope("run_now", ids, flt)
    result = ActionResult("run_now", selected.target())
    wanted: list[str] = selected.ids or []
    reasons: dict[str, str] = {}
    try:
        if selected.ids is None:
            wanted = [job.id for rows in select_jobs(runtime, selected) for job in rows]
        remaining = set(wanted)
        for huey, raw, task, own in _on_schedule(runtime, remaining):
            if task.id not in remaining:
                continue
            why = (_move_own(runtime, huey, raw, task) if own
                   else _move_attached(runtime, huey, raw, task))
            if why is None:
                remaining.discard(task.id)
                reasons.pop(task.id, None)
                result.done.append(task.id)
            elif why:
                reasons[task.id] = why
    except Exception as exc:
        result.stopped(exc)
    if result.error is None:
        moved = set(result.done)
        left = [job_id for job_id in wanted if job_id not in moved]
        states = _history_states(runtime, left) if left else {}
        result.skipped = {job_id: reasons.get(job_id) or selected.rule.why(
            f"history: {states[job_id]}" if job_id in states else "not in history")
            for job_id in left}
    _audit_result(runtime, result)
    return result


def _move_own(runtime: Runtime, huey: Any, raw: bytes, task: Any) -> str | None:
    """A tq queue's job off its schedule and onto its queue, with its record in
    the same step. None: moved; "": not there any more (taken first)."""
    storage = huey.storage
    if not storage.remove_scheduled(raw):
        return ""
    attempt = task_meta(task).attempt
    task.eta = None
    record = {**huey.job_record(task, _scheduled_state(task)),
              **history_record.run_now(task.id, attempt, bool(attempt), time.time())}
    storage.enqueue_many([(huey.serialize_task(task), task.priority or 0)],
                         records=[runtime.records.seal(record)])
    return None


def _move_attached(runtime: Runtime, huey: Any, raw: bytes, task: Any) -> str | None:
    """An attached app's job off the app's schedule and onto its queue, by
    Huey's own enqueue (the app's serializer and storage, its signals: tq's
    listener's `queued` record ranks below ours, and the job's running record
    above it, whichever history gets first). An enqueue that fails puts the
    message back on the schedule, as it was, and raises. None: moved; "":
    taken first; else why it stays."""
    from tq.attached_schedule import Unsupported, take

    if huey.is_revoked(task):  # peeking: the revocation stays for the consumer
        return "revoked in Huey (canceled, or its task type paused): left on the schedule"
    try:
        if not take(huey, raw):
            return ""
    except Unsupported as exc:
        return str(exc)
    found = attachment(huey)
    attempt = found.attempts_started(task) if found is not None else 0
    eta, task.eta = task.eta, None
    try:
        huey.enqueue(task)
    except Exception:
        huey.storage.add_to_schedule(raw, eta or datetime.fromtimestamp(0))
        raise
    moved: dict[str, Any] = dict(history_record.run_now(task.id, attempt, bool(attempt),
                                                        time.time()))
    if found is not None:  # the whole record: history may not have the job's row yet
        moved = {**found.job(task, moved["state"], attempt, enqueued_at=None), **moved}
    try:
        publish(runtime, [moved])
    except Exception as exc:  # history and outbox both down: the job runs all the same
        logger.warning("run now of %s: record not written: %s", task.id, reason(exc))
    return None


def _history_states(runtime: Runtime, ids: list[str], chunk: int = 500) -> dict[str, str]:
    """The history state of each of `ids` that history has (none when history
    does not answer: a skip's reason is then the rule's alone)."""
    states: dict[str, str] = {}
    ids = [job_id for job_id in ids if len(job_id) <= Job.id.max_length]  # none longer is
    try:
        runtime.history_db()
        for start in range(0, len(ids), chunk):
            rows = Job.select(Job.id, Job.state).where(Job.id.in_(ids[start:start + chunk]))
            states.update({job.id: job.state for job in rows})
    except Exception as exc:
        logger.debug("history states of skipped jobs not read: %s", reason(exc))
    return states


def _schedules(runtime: Runtime) -> Iterator[tuple[Any, bool]]:
    """Every queue whose schedule run-now reads: tq's own (True), then the
    attached Huey apps' (False)."""
    for huey in runtime.queues.values():
        yield huey, True
    for huey in attached_apps(runtime).values():
        yield huey, False


def _on_schedule(runtime: Runtime, wanted: set[str]
                 ) -> Iterator[tuple[Any, bytes, Any, bool]]:
    """(queue, message, task, tq's own) of each job of `wanted` on a queue's
    schedule. An attached app's message is unpickled here, as its own
    huey_consumer does: only a process that imports the app ([huey] apps) has
    one. A message that does not decode is left where it is and logged."""
    for huey, own in _schedules(runtime):
        undecodable = 0
        for raw in huey.storage.scheduled_items():
            try:
                task = huey.deserialize_task(raw)
            except Exception:  # not ours to judge here: a consumer quarantines it
                undecodable += 1
                continue
            if not isinstance(getattr(task, "id", None), str):  # a forged message
                undecodable += 1
                continue
            if task.id in wanted:
                yield huey, raw, task, own
        if undecodable:
            logger.warning("run now: %d message(s) on the schedule of queue %s do not "
                           "decode as a job; left as they are", undecodable, huey.name)


def _scheduled_state(task: Any) -> str:
    """A job on the schedule: waiting for its eta, or for its next attempt."""
    return "retrying" if task_meta(task).attempt else "scheduled"


def _scheduled_row(huey: Any, task: Any, own: bool) -> tuple[str, str, str]:
    """(state, queue, task) of a job on a schedule, for a preview."""
    if own:
        record = huey.job_record(task, _scheduled_state(task))
        return record["state"], record["queue"] or "?", record["task"] or "?"
    found = attachment(huey)
    attempt = found.attempts_started(task) if found is not None else 0
    return ("retrying" if attempt else "scheduled", huey.name,
            huey._registry.task_to_string(type(task)))


# --- consumers ---------------------------------------------------------------------

def forget_worker(runtime: Runtime, worker_id: str) -> dict:
    """Remove a dead consumer's registration (one killed with SIGKILL stays listed
    until then, or for an hour). A consumer still heartbeating within its lease is
    refused: it would only register again, and its jobs are its own. Recovery only
    takes over the in-flight jobs of a consumer that is registered, so the jobs the
    dead one was running are put back on their queues first (as recovery would,
    a lost attempt each); only then is it forgotten. Returns what was removed."""
    from tq.recovery import forget_if_idle, recover_lost
    lease = runtime.config.consumer.lease
    info = next((w for w in runtime.control.workers() if w.get("id") == worker_id), None)
    if info is None:
        raise ActionError(f"no consumer {worker_id!r} is registered")
    age = info["heartbeat_age"]  # by the queue backend's clock, like recovery's
    if age < lease:
        raise ActionError(f"consumer {worker_id!r} is alive (heartbeat {age:.0f}s ago, "
                          f"lease {lease:g}s): stop it first")
    recover_lost(runtime)
    if not forget_if_idle(runtime, worker_id):
        raise ActionError(f"consumer {worker_id!r} still holds jobs in flight that could "
                          "not be put back: try again")
    audit(runtime, "forget-worker", worker_id, 1)
    return info


# --- quarantine: acting on what was set aside (listing: queries.quarantine_list) --------

@dataclass
class QuarantineRequeueResult:
    requeued: dict[str, str] = field(default_factory=dict)  # quarantine id -> job id
    skipped: dict[str, str] = field(default_factory=dict)  # quarantine id -> why


def quarantine_requeue(runtime: Runtime, entry_ids: Iterable[str]) -> QuarantineRequeueResult:
    """Put quarantined messages back on their queue, if they are valid after
    all (say, their task module was missing on the consumer that set them
    aside). Each is read exactly as a consumer reads it -- signature, message
    checks, the task known here -- and written again, signed with this
    TQ_SECRET, with its `queued` record. A history record (r<n>) is evidence,
    not work: it is not requeued (the job's next record brings its row up to date)."""
    entry_ids = list(entry_ids)
    result = QuarantineRequeueResult()
    for entry_id, number, huey, task, data in _requeuable(runtime, entry_ids, result.skipped):
        record = huey.job_record(task, "retrying" if task_meta(task).attempt else "queued")
        huey.storage.enqueue_many([(data, task.priority or 0)],
                                  records=[runtime.records.seal(record)])
        # Enqueued first, dropped second: a crash between leaves a duplicate
        # entry to purge, never a lost job.
        runtime.control.quarantine_drop([number])
        result.requeued[entry_id] = task.id
    audit(runtime, "quarantine-requeue", ",".join(map(str, entry_ids))[:5000],
          len(result.requeued))
    return result


def quarantine_requeue_preview(runtime: Runtime, entry_ids: Iterable[str]
                               ) -> QuarantineRequeueResult:
    """What quarantine_requeue would do, by the same checks, nothing done:
    `requeued` names the job each entry would become."""
    result = QuarantineRequeueResult()
    for entry_id, _, _, task, _ in _requeuable(runtime, list(entry_ids), result.skipped):
        result.requeued[entry_id] = task.id
    return result


def _requeuable(runtime: Runtime, entry_ids: list[str], skipped: dict[str, str]
                ) -> Iterator[tuple[str, int, Any, Any, bytes]]:
    """(entry id, number, queue, task, message) of each entry that can go back on
    its queue; each other one into `skipped` with why not."""
    from tq.queries import parse_quarantine_id

    for entry_id in entry_ids:
        try:
            kind, number = parse_quarantine_id(entry_id)
        except ValueError as exc:
            skipped[str(entry_id)] = str(exc)
            continue
        if kind != "message":
            skipped[entry_id] = ("a history record is not requeued; purge it once "
                                 "read (tq quarantine purge)")
            continue
        entry = runtime.control.quarantine_get(number)
        if entry is None:
            skipped[entry_id] = "not in quarantine"
            continue
        if entry["size"] > len(entry["data"]):
            skipped[entry_id] = (f"only the first {len(entry['data']):,} of its "
                                 f"{entry['size']:,} bytes were kept")
            continue
        huey = runtime.queues.get(entry["queue"] or "")
        if huey is None:
            skipped[entry_id] = f"queue {entry['queue']!r} is not configured here"
            continue
        try:
            task = huey.deserialize_task(entry["data"])
            data = huey.serialize_task(task)
        except Exception as exc:
            skipped[entry_id] = f"still not valid: {first_line(exc, 300)}"
            continue
        yield entry_id, number, huey, task, data


def _quarantine_numbers(entry_ids: Iterable[str] | None
                        ) -> tuple[list[int] | None, list[int] | None]:
    """Message and record numbers of `entry_ids` (None, None: all of both);
    ValueError for one that is not a quarantine id."""
    from tq.queries import parse_quarantine_id

    if entry_ids is None:
        return None, None
    messages: list[int] = []
    records: list[int] = []
    for entry_id in entry_ids:
        kind, number = parse_quarantine_id(entry_id)
        (messages if kind == "message" else records).append(number)
    return list(dict.fromkeys(messages)), list(dict.fromkeys(records))


def quarantine_purge(runtime: Runtime, entry_ids: Iterable[str] | None = None) -> int:
    """Delete quarantine entries for good (all of both kinds with None); returns how many.
    ValueError for an id that is not a quarantine id: nothing is deleted."""
    from tq.history import DeadRecord

    entry_ids = None if entry_ids is None else list(entry_ids)
    messages, records = _quarantine_numbers(entry_ids)
    deleted = 0
    if messages is None or messages:
        deleted += runtime.control.quarantine_drop(messages)
    if records is None or records:
        with bound(runtime.history_db(), [DeadRecord]):
            deleted += _dead_records(DeadRecord.delete(), records).execute()
    audit(runtime, "quarantine-purge",
          "all" if entry_ids is None else ",".join(entry_ids)[:5000], deleted)
    return deleted


def quarantine_purge_preview(runtime: Runtime, entry_ids: Iterable[str] | None = None) -> int:
    """How many entries quarantine_purge would delete (the ones that exist), nothing done."""
    from tq.history import DeadRecord

    messages, records = _quarantine_numbers(entry_ids)
    count = 0
    if messages is None:
        count += runtime.control.quarantine_count()
    else:
        count += sum(runtime.control.quarantine_get(n) is not None for n in messages)
    if records is None or records:
        with bound(runtime.history_db(), [DeadRecord]):
            count += _dead_records(DeadRecord.select(), records).count()
    return count


def _dead_records(query: Any, records: list[int] | None) -> Any:
    """`query` (a select or delete of DeadRecord) narrowed to `records` (None: all):
    the one selection purge and its preview share, so the preview counts what goes."""
    from tq.history import DeadRecord

    return query if records is None else query.where(DeadRecord.id.in_(records))
