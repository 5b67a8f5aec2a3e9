"""Operator actions: pause, resume, cancel, requeue, purge, run now.

The CLI verbs and the console's keys both call these functions; neither has an
action of its own, nor a rule of its own about which jobs an action touches:
`eligible_states` and `preview` (the exact count and a sentence naming the
states, tasks, queues and failure group, asked before acting) live here.

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
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from tq import audit as audit_trail
from tq.format import first_line
from tq.history import write_records
from tq.models import bound, REQUEUABLE, TERMINAL, Job
from tq.queries import catch_up
from tq import records as history_record
from tq.queues import host_name, utc_timestamp
from tq.registry import task_meta
from tq.serializer import loads_json
from tq.submit import SubmitError, enqueue, prepare
from tq.where import Filter, condition

logger = logging.getLogger("tq.ops")
DEAD_LETTER_STATES = ("failed", "canceled", "expired")
WAITING = ("queued", "scheduled", "running", "retrying")
# Which history states each action can change: the one place this is written.
ACTION_STATES = {
    "requeue": REQUEUABLE,
    "cancel": WAITING,
    "run_now": ("scheduled", "retrying"),
    "purge": DEAD_LETTER_STATES,
}
# A filter naming no state acts on these (the failed set, for the actions that clean it).
DEFAULT_STATES = {"requeue": ("failed",), "purge": ("failed",)}
VERBS = {"requeue": "Requeue", "cancel": "Cancel", "run_now": "Run now", "purge": "Purge"}
COPY_NAMESPACE = uuid.UUID("6f1d3c1e-6a57-4f3b-9c43-2f2d1f8e7a10")


class ActionError(ValueError):
    pass


def copy_id(original: str) -> str:
    """The id of `original`'s requeued copy: the same for every requeue of it."""
    return str(uuid.uuid5(COPY_NAMESPACE, original))


def reason(exc: BaseException) -> str:
    """One line for an error that stopped an action (which server, what it said)."""
    import peewee
    import redis

    text = first_line(str(exc), 200)
    name = type(exc).__name__
    if isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
        return f"queue backend unreachable ({name}: {text})"
    if isinstance(exc, (peewee.OperationalError, peewee.InterfaceError)):
        return f"history database unreachable ({name}: {text})"
    return f"{name}: {text}" if text else name


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
        past = PAST[self.action].format(what=noun)
        skipped = f"; {len(self.skipped):,} skipped" if self.skipped else ""
        if self.outcome == "failed":
            return f"{VERBS.get(self.action, self.action)} failed: {self.error}; nothing changed"
        if self.outcome == "partly":
            return f"{past}, then stopped: {self.error}{skipped}"
        if self.outcome == "nothing":
            return f"nothing to {self.action.replace('_', ' ')}: no job it applies to{skipped}"
        return past + skipped

    def as_dict(self) -> dict:
        return dict(self.__dict__, outcome=self.outcome, count=self.count)


PAST = {"requeue": "requeued {what}", "cancel": "canceled {what}",
        "run_now": "moved {what} from the schedule to the queue",
        "purge": "purged {what} from history"}


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

def audit(runtime, action: str, target: str, count: int, ids: Iterable[str] = (),
          outcome: str = "done", detail: str | None = None, user: str | None = None) -> None:
    """Record an action (tq/audit.py) through the outbox; never raises."""
    try:
        publish(runtime, audit_trail.records(action, target, count, ids, outcome=outcome,
                                             detail=detail, user=user, host=host_name()))
    except Exception as exc:
        logger.warning("audit record of %s %s not written: %s", action, target, reason(exc))


def publish(runtime, records: list[dict]) -> None:
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
        write_records(runtime.history_db(), records)
        return
    catch_up(runtime)  # now, if the database answers; else a consumer does it later


def _audit_result(runtime, result: ActionResult) -> None:
    audit(runtime, result.action.replace("_", "-"), result.target, result.count, result.done,
          outcome=result.outcome, detail=result.error)


def describe_target(ids: list[str] | None, flt: Filter | None) -> str:
    """The audit's text for what an action was asked to act on (the ids are kept apart)."""
    if ids is not None:
        return f"{len(ids):,} id{'' if len(ids) == 1 else 's'} given"
    return flt.describe() if flt is not None else "all jobs"


# --- pause / resume --------------------------------------------------------------

def pause(runtime, queue: str, task: str | None = None) -> None:
    """Stop handing out jobs of `queue` (or of one task type in it). Running jobs
    finish; jobs submitted meanwhile wait; nothing is dropped."""
    runtime.queue(queue)
    target = f"{queue}/{task}" if task else queue
    runtime.control.set_paused(target, True, {"at": time.time(), "by": host_name()})
    audit(runtime, "pause", target, 1)


def resume(runtime, queue: str, task: str | None = None) -> int:
    """Undo pause; returns how many held jobs of a paused task type went back."""
    huey = runtime.queue(queue)
    target = f"{queue}/{task}" if task else queue
    runtime.control.set_paused(target, False)
    moved = huey.storage.unhold(task) if task else 0
    huey.storage.wake_workers()  # idle workers start at once, not at their next poll
    audit(runtime, "resume", target, 1)
    return moved


# --- selecting jobs ----------------------------------------------------------------

def eligible_states(action: str, ids: list[str] | None = None,
                    flt: Filter | None = None) -> tuple[str, ...]:
    """The states of the jobs `action` will change, given what it was asked to act on."""
    allowed = ACTION_STATES[action]
    if ids is not None or flt is None or not flt.states:
        return DEFAULT_STATES.get(action, allowed) if ids is None else allowed
    if action == "purge":
        bad = [s for s in flt.states if s not in allowed]
        if bad:
            raise ActionError(f"purge deletes dead letters only ({', '.join(allowed)}), "
                              f"not {', '.join(bad)}")
    return tuple(s for s in flt.states if s in allowed)


def select_jobs(runtime, ids: Iterable[str] | None = None, flt: Filter | None = None,
                chunk: int = 1000) -> Iterator[list[Job]]:
    """Jobs by id or by filter (exactly: a group term too), in chunks (keyset on
    id: bulk actions over a million rows never hold them all)."""
    catch_up(runtime)
    runtime.history_db()
    if ids is not None:
        id_list = list(dict.fromkeys(ids))
        for start in range(0, len(id_list), chunk):
            yield list(Job.select().where(Job.id.in_(id_list[start:start + chunk])))
        return
    expression = condition(flt) if flt is not None else None
    last = ""
    while True:
        query = Job.select().where(Job.id > last)
        if expression is not None:
            query = query.where(expression)
        rows = list(query.order_by(Job.id).limit(chunk))
        if not rows:
            return
        last = rows[-1].id
        if flt is not None and flt.exact:
            rows = [job for job in rows if flt.accepts(job.error_type, job.error_message)]
        if rows:
            yield rows


@dataclass
class Preview:
    """What an action would touch, counted before the operator confirms."""
    action: str
    count: int
    text: str  # "Requeue 3 failed jobs of task x in queue default?"
    counts: dict = field(default_factory=dict)  # (state, queue, task) -> jobs


def preview(runtime, action: str, ids: list[str] | None = None,
            flt: Filter | None = None) -> Preview:
    """The exact count `action` would touch now, and the question to ask."""
    from peewee import fn

    states = eligible_states(action, ids, flt)
    counts: Counter = Counter()
    if ids is not None or (flt is not None and flt.exact):
        wanted = None if ids is None else list(dict.fromkeys(ids))
        for rows in select_jobs(runtime, wanted, flt):
            counts.update((job.state, job.queue or "?", job.task or "?") for job in rows
                          if job.state in states)
    else:
        catch_up(runtime)
        runtime.history_db()
        where = Job.state.in_(states)
        expression = condition(flt) if flt is not None else None
        if expression is not None:
            where &= expression
        for state, queue, task, n in (Job.select(Job.state, Job.queue, Job.task,
                                                 fn.COUNT(Job.id)).where(where)
                                      .group_by(Job.state, Job.queue, Job.task).tuples()):
            counts[(state, queue or "?", task or "?")] += n
    return Preview(action, sum(counts.values()),
                   sentence(VERBS[action], counts, flt.group if flt is not None else None),
                   dict(counts))


def sentence(verb: str, counts: dict, group: tuple[str, str] | None = None) -> str:
    """"Requeue 3 failed jobs of task x in queue default?" (and the group's error)."""
    total = sum(counts.values())
    by_state: Counter = Counter()
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


# --- cancel -------------------------------------------------------------------------

def cancel(runtime, ids: Iterable[str] | None = None, flt: Filter | None = None
           ) -> CancelResult:
    wanted = list(ids) if ids is not None else None
    result = CancelResult("cancel", describe_target(wanted, flt))
    seen: set[str] = set()
    now = time.time()
    try:
        for rows in select_jobs(runtime, wanted, flt):
            records, requests = [], []
            for job in rows:
                seen.add(job.id)
                if job.state in TERMINAL:
                    result.finished.append(job.id)
                    result.skipped[job.id] = f"already finished ({job.state}); unchanged"
                    continue
                huey = runtime.queues.get(job.queue)
                # Ask a running job to stop (cooperatively) in every case: history
                # may not show `running` yet for a job a worker has just taken.
                requests.append(job.id)
                if job.state == "running":
                    result.requested.append(job.id)
                    continue
                if huey is not None:
                    # Huey drops a revoked job when it is next dequeued or comes due.
                    huey.revoke_by_id(job.id, revoke_once=True)
                records.append(history_record.canceled(job.id, job.attempts, now))
                result.canceled.append(job.id)
            if requests:
                runtime.control.request_cancel(requests)
            if records:
                write_records(runtime.history_db(), records)
            result.done = result.canceled + result.requested
    except Exception as exc:
        result.error = reason(exc)
    if wanted is not None and result.error is None:
        result.unknown = [job_id for job_id in wanted if job_id not in seen]
        result.skipped.update({job_id: "not in history" for job_id in result.unknown})
    _audit_result(runtime, result)
    return result


# --- requeue ------------------------------------------------------------------------

def requeue(runtime, ids: Iterable[str] | None = None, flt: Filter | None = None
            ) -> RequeueResult:
    """Run finished jobs again: each gets one copy (same task and arguments, id
    copy_id(original), linked by `requeued_from`) and is retired as `requeued`."""
    wanted = list(ids) if ids is not None else None
    if wanted is None and (flt is None or not flt.states):
        flt = (flt or Filter()).merged(states=DEFAULT_STATES["requeue"])
    result = RequeueResult("requeue", describe_target(wanted, flt))
    seen: set[str] = set()
    try:
        for rows in select_jobs(runtime, wanted, flt):
            seen.update(job.id for job in rows)
            _requeue_chunk(runtime, rows, result)
    except Exception as exc:
        result.error = reason(exc)
    if wanted is not None and result.error is None:
        for job_id in wanted:
            if job_id not in seen:
                result.skipped[job_id] = "not in history"
    _audit_result(runtime, result)
    return result


def _requeue_chunk(runtime, rows: list[Job], result: RequeueResult) -> None:
    candidates = []
    for job in rows:
        if job.state == "requeued":
            result.skipped[job.id] = "already requeued"
        elif job.state not in REQUEUABLE:
            result.skipped[job.id] = f"still {job.state}"
        else:
            candidates.append(job)
    if not candidates:
        return
    copies = {job.id: copy_id(job.id) for job in candidates}
    # A copy already in history: an earlier requeue made it, then stopped before retiring.
    copied = {original for original, in Job.select(Job.requeued_from)
              .where(Job.id.in_(list(copies.values()))).tuples()}
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


# --- purge --------------------------------------------------------------------------

def purge(runtime, flt: Filter, ids: Iterable[str] | None = None) -> ActionResult:
    """Delete dead letters (failed, canceled or expired jobs) from history, on purpose only."""
    from tq.models import Attempt

    states = flt.states or DEFAULT_STATES["purge"]
    bad = [state for state in states if state not in DEAD_LETTER_STATES]
    if bad:
        raise ActionError(f"purge deletes dead letters only ({', '.join(DEAD_LETTER_STATES)}),"
                          f" not {', '.join(bad)}")
    flt = flt.merged(states=tuple(states))
    wanted = list(ids) if ids is not None else None
    result = ActionResult("purge", describe_target(wanted, flt))
    try:
        for rows in select_jobs(runtime, wanted, flt):
            id_list = [job.id for job in rows if job.state in states]
            result.skipped.update({job.id: f"{job.state}, not a dead letter" for job in rows
                                   if job.state not in states})
            if id_list:
                with runtime.history_db().atomic():
                    Attempt.delete().where(Attempt.job_id.in_(id_list)).execute()
                    Job.delete().where(Job.id.in_(id_list)).execute()
                result.done += id_list
    except Exception as exc:
        result.error = reason(exc)
    _audit_result(runtime, result)
    return result


# --- run now ------------------------------------------------------------------------

def run_now(runtime, ids: Iterable[str]) -> ActionResult:
    """Move scheduled or retrying jobs from the schedule to the front of their work:
    they are enqueued now instead of at their eta."""
    wanted = list(dict.fromkeys(ids))
    result = ActionResult("run_now", describe_target(wanted, None))
    remaining = set(wanted)
    try:
        for huey in runtime.queues.values():
            storage = huey.storage
            for raw in storage.scheduled_items():
                try:
                    task = huey.deserialize_task(raw)
                except Exception:
                    continue
                if task.id not in remaining or not storage.remove_scheduled(raw):
                    continue
                eta = task.eta
                task.eta = None
                state = "retrying" if task_meta(task).attempt else "queued"
                record = huey.job_record(task, state, eta=None if eta is None else
                                         utc_timestamp(eta))
                storage.enqueue_many([(huey.serialize_task(task), task.priority or 0)],
                                     records=[runtime.records.seal(record)])
                remaining.discard(task.id)
                result.done.append(task.id)
    except Exception as exc:
        result.error = reason(exc)
    if result.error is None:
        result.skipped = {job_id: "not on the schedule" for job_id in wanted
                          if job_id in remaining}
    _audit_result(runtime, result)
    return result


# --- consumers ---------------------------------------------------------------------

def forget_worker(runtime, worker_id: str) -> dict:
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


def quarantine_requeue(runtime, entry_ids: Iterable[str]) -> QuarantineRequeueResult:
    """Put quarantined messages back on their queue, if they are valid after
    all (say, their task module was missing on the consumer that set them
    aside). Each is read exactly as a consumer reads it -- signature, message
    checks, the task known here -- and written again, signed with this
    TQ_SECRET, with its `queued` record. A history record (r<n>) is evidence,
    not work: it is not requeued (the job's next record brings its row up to date)."""
    from tq.queries import parse_quarantine_id

    result = QuarantineRequeueResult()
    for entry_id in entry_ids:
        try:
            kind, number = parse_quarantine_id(entry_id)
        except ValueError as exc:
            result.skipped[str(entry_id)] = str(exc)
            continue
        if kind != "message":
            result.skipped[entry_id] = ("a history record is not requeued; purge it once "
                                        "read (tq quarantine purge)")
            continue
        entry = runtime.control.quarantine_get(number)
        if entry is None:
            result.skipped[entry_id] = "not in quarantine"
            continue
        if entry["size"] > len(entry["data"]):
            result.skipped[entry_id] = (f"only the first {len(entry['data']):,} of its "
                                        f"{entry['size']:,} bytes were kept")
            continue
        huey = runtime.queues.get(entry["queue"])
        if huey is None:
            result.skipped[entry_id] = f"queue {entry['queue']!r} is not configured here"
            continue
        try:
            task = huey.deserialize_task(entry["data"])
            data = huey.serialize_task(task)
        except Exception as exc:
            result.skipped[entry_id] = f"still not valid: {first_line(exc, 300)}"
            continue
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


def quarantine_purge(runtime, entry_ids: Iterable[str] | None = None) -> int:
    """Delete quarantine entries for good (all of both kinds with None); returns how many."""
    from tq.history import DeadRecord
    from tq.queries import parse_quarantine_id

    messages: list[int] | None = None
    records: list[int] | None = None
    if entry_ids is not None:
        messages, records = [], []
        for entry_id in entry_ids:
            kind, number = parse_quarantine_id(entry_id)  # ValueError: nothing deleted
            (messages if kind == "message" else records).append(number)
    deleted = 0
    if messages is None or messages:
        deleted += runtime.control.quarantine_drop(messages)
    if records is None or records:
        database = runtime.history_db()
        with bound(database, [DeadRecord]):
            query = DeadRecord.delete()
            if records is not None:
                query = query.where(DeadRecord.id.in_(records))
            deleted += query.execute()
    audit(runtime, "quarantine-purge",
          "all" if entry_ids is None else ",".join(entry_ids)[:5000], deleted)
    return deleted
