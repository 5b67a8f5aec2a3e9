"""Operator actions: pause, resume, cancel, requeue, purge, run now.

The CLI verbs and the console's keys both call these functions; neither has an
action of its own. Every action is written to the audit table (when, OS user,
host, action, target, count).
"""
from __future__ import annotations

import getpass
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from tq.history import write_records
from tq.models import TERMINAL, Audit, Job, state_seq
from tq.queries import catch_up
from tq.queues import host_name, utc_timestamp
from tq.submit import SubmitError, enqueue, prepare
from tq.where import Filter, condition

logger = logging.getLogger("tq.ops")
DEAD_LETTER_STATES = ("failed", "canceled", "expired")


class ActionError(ValueError):
    pass


def audit(runtime, action: str, target: str, count: int) -> None:
    try:
        user = getpass.getuser()
    except Exception:
        user = "?"
    try:
        runtime.database
        Audit.create(at=time.time(), user=user[:64], host=host_name()[:128], action=action,
                     target=target[:5000], count=count)
    except Exception as exc:
        logger.warning("audit record not written: %s", exc)


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

def select_jobs(runtime, ids: Iterable[str] | None = None, flt: Filter | None = None,
                chunk: int = 1000) -> Iterator[list[Job]]:
    """Jobs by id or by filter, in chunks (keyset on id: bulk actions over a
    million rows never hold them all)."""
    catch_up(runtime)
    runtime.database
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
        yield rows
        last = rows[-1].id


def count_selected(runtime, ids: Iterable[str] | None = None, flt: Filter | None = None) -> int:
    from tq.queries import count_jobs
    if ids is not None:
        return sum(len(rows) for rows in select_jobs(runtime, ids))
    return count_jobs(runtime, flt)


# --- cancel -------------------------------------------------------------------------

@dataclass
class CancelResult:
    canceled: list[str] = field(default_factory=list)  # queued/scheduled/retrying: never runs
    requested: list[str] = field(default_factory=list)  # running: asked to stop
    finished: list[str] = field(default_factory=list)  # already had an outcome: unchanged
    unknown: list[str] = field(default_factory=list)  # not in history


def cancel(runtime, ids: Iterable[str] | None = None, flt: Filter | None = None) -> CancelResult:
    result = CancelResult()
    wanted = list(ids) if ids is not None else None
    seen: set[str] = set()
    now = time.time()
    for rows in select_jobs(runtime, wanted, flt):
        records, requests = [], []
        for job in rows:
            seen.add(job.id)
            if job.state in TERMINAL:
                result.finished.append(job.id)
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
            records.append({"kind": "job", "id": job.id, "state": "canceled",
                            "seq": state_seq("canceled", job.attempts), "finished_at": now,
                            "updated_at": now, "error_type": "Canceled",
                            "error_message": "canceled by operator"})
            result.canceled.append(job.id)
        if requests:
            runtime.control.request_cancel(requests)
        if records:
            write_records(runtime.database, records)
    if wanted is not None:
        result.unknown = [job_id for job_id in wanted if job_id not in seen]
    count = len(result.canceled) + len(result.requested)
    audit(runtime, "cancel", _target(wanted, flt), count)
    return result


# --- requeue ------------------------------------------------------------------------

@dataclass
class RequeueResult:
    new_ids: dict[str, str] = field(default_factory=dict)  # original id -> new id
    skipped: dict[str, str] = field(default_factory=dict)  # original id -> why


def requeue(runtime, ids: Iterable[str] | None = None, flt: Filter | None = None
            ) -> RequeueResult:
    """Run finished jobs again: each becomes a new job with the same task and
    arguments, linked to the original by `requeued_from`."""
    result = RequeueResult()
    wanted = list(ids) if ids is not None else None
    if wanted is None and (flt is None or not flt.states):
        flt = (flt or Filter()).merged(states=("failed",))
    for rows in select_jobs(runtime, wanted, flt):
        prepared = []
        for job in rows:
            if job.state not in TERMINAL:
                result.skipped[job.id] = f"still {job.state}"
                continue
            try:
                spec = {"task": job.task, "args": json.loads(job.args or "[]"),
                        "kwargs": json.loads(job.kwargs or "{}"), "queue": job.queue,
                        "priority": job.priority, "retries": job.max_retries,
                        "requeued_from": job.id}
                prepared.append((job.id, prepare(runtime, {k: v for k, v in spec.items()
                                                           if v is not None})))
            except (SubmitError, ValueError) as exc:
                result.skipped[job.id] = str(exc)
        for original, job in zip([p[0] for p in prepared],
                                 enqueue(runtime, [p[1] for p in prepared])):
            result.new_ids[original] = job.job_id
    if wanted is not None:
        for job_id in wanted:
            if job_id not in result.new_ids and job_id not in result.skipped:
                result.skipped[job_id] = "not in history"
    audit(runtime, "requeue", _target(wanted, flt), len(result.new_ids))
    return result


# --- purge --------------------------------------------------------------------------

def purge(runtime, flt: Filter, ids: Iterable[str] | None = None) -> int:
    """Delete dead letters (failed, canceled or expired jobs) from history, on purpose only."""
    states = flt.states or ("failed",)
    bad = [state for state in states if state not in DEAD_LETTER_STATES]
    if bad:
        raise ActionError(f"purge deletes dead letters only ({', '.join(DEAD_LETTER_STATES)}),"
                          f" not {', '.join(bad)}")
    flt = flt.merged(states=tuple(states))
    deleted = 0
    wanted = list(ids) if ids is not None else None
    for rows in select_jobs(runtime, wanted, flt):
        id_list = [job.id for job in rows if job.state in DEAD_LETTER_STATES]
        if id_list:
            from tq.models import Attempt
            with runtime.database.atomic():
                Attempt.delete().where(Attempt.job_id.in_(id_list)).execute()
                deleted += Job.delete().where(Job.id.in_(id_list)).execute()
    audit(runtime, "purge", _target(wanted, flt), deleted)
    return deleted


# --- run now ------------------------------------------------------------------------

def run_now(runtime, ids: Iterable[str]) -> list[str]:
    """Move scheduled or retrying jobs from the schedule to the front of their work:
    they are enqueued now instead of at their eta."""
    wanted = set(ids)
    moved: list[str] = []
    for huey in runtime.queues.values():
        storage = huey.storage
        for raw in storage.scheduled_items():
            try:
                task = huey.deserialize_task(raw)
            except Exception:
                continue
            if task.id not in wanted or not storage.remove_scheduled(raw):
                continue
            eta = task.eta
            task.eta = None
            state = "retrying" if task.tq_attempt else "queued"
            record = huey.job_record(task, state, eta=None if eta is None else
                                     utc_timestamp(eta))
            storage.enqueue_many([(huey.serialize_task(task), task.priority or 0)],
                                 records=[runtime.records.seal(record)])
            moved.append(task.id)
    audit(runtime, "run-now", ",".join(sorted(wanted))[:5000], len(moved))
    return moved


def _target(ids: list[str] | None, flt: Filter | None) -> str:
    if ids is not None:
        return ",".join(ids)
    return flt.describe() if flt is not None else "all jobs"


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
            result.skipped[entry_id] = f"still not valid: {str(exc).splitlines()[0][:300]}"
            continue
        record = huey.job_record(task, "retrying" if task.tq_attempt else "queued")
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
        database = runtime.database
        with database.bind_ctx([DeadRecord]):
            query = DeadRecord.delete()
            if records is not None:
                query = query.where(DeadRecord.id.in_(records))
            deleted += query.execute()
    audit(runtime, "quarantine-purge",
          "all" if entry_ids is None else ",".join(entry_ids)[:5000], deleted)
    return deleted
