"""One Huey instance per named queue, and how tq hooks into Huey.

TqHuey changes five things about Huey and nothing else:
  - messages are JSON (signed when TQ_SECRET is set), never pickle;
  - `dequeue` claims a message with a durable in-flight record, honours pause,
    and moves aside a message it cannot read instead of crashing a worker;
  - `execute` releases the in-flight record once the job has an outcome (in a
    consumer worker: together with its next claim, see `settle_with_claims`);
  - every state change is sent to the history writer through Huey's signals;
  - Huey keeps no results (results=False): a task's return value travels in its
    job's `succeeded` record to history (records.result_json), and one history
    will not keep (not JSON, too large) fails the job instead.

Huey's API on these instances still hands back result handles: `enqueue` (a
task called, `huey.enqueue`, a `.then()` pipeline, a `group`) returns
tq.results.JobHandle objects, Huey's Result reading history, and
`huey.result(id)` reads one. Chords are refused by `enqueue` before any of
their members is (ChordRefused): their callback waits on a counter in Huey's
result store, which tq's queues do not keep.
"""
from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from huey import Huey
from huey import signals as S
from huey.api import ResultGroup, Task, TaskWrapper, chord, group
from huey.exceptions import HueyException
from huey.registry import Message, Registry

from tq import jobspec, records, registry
from tq.format import first_line
from tq.records import AttemptRecord, Error, JobRecord, Record
from tq.registry import TaskMeta, set_meta, task_meta
from tq.results import JobHandle
from tq.serializer import JsonSerializer, MessageRefused, dumps_json, exception_text
from tq.storage import Finished, Token

if TYPE_CHECKING:
    from tq.runtime import Runtime

logger = logging.getLogger("tq.queues")
PAUSE_CACHE_SECONDS = 0.5
# Not a Huey signal: sent by TqHuey.execute for a started job that no signal settled.
UNSETTLED = "tq-unsettled"
MESSAGE_OVERHEAD = 65536  # a message's own fields, beside its arguments


def utc_timestamp(value: datetime | None) -> float | None:
    """Huey keeps naive UTC datetimes; history keeps epoch seconds."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC).timestamp()


class TqRegistry(Registry):
    """Learns tasks from tq's registry the first time a queue meets them."""

    def __init__(self, huey: TqHuey) -> None:
        super().__init__()
        self.huey = huey

    def string_to_task(self, task_str: str):
        if task_str not in self._registry:
            definition = registry.TASKS.get(task_str)
            if definition is None:
                raise HueyException(f"{task_str} not found in TaskRegistry")
            self.huey.task(retries=definition.retries, retry_delay=definition.retry_delay,
                           retry_backoff=definition.retry_backoff, timeout=definition.timeout,
                           name=definition.func.__name__)(definition.func)
        return self._registry[task_str]

    def create_message(self, task):
        self.string_to_task(self.task_to_string(type(task)))
        return super().create_message(task)


@dataclass
class JobRun:
    """This process's state of one attempt of a job, on its Huey task as
    `tq_run` (`_run`): what the claim handed out, and what the signals of the
    attempt have said so far. Never in a message."""
    token: Token | None = None  # its in-flight record; None: not claimed by a worker
    no_flags: bool = False  # the claim saw no Huey flag at all: no revocation lookup
    started: float | None = None
    worker: str | None = None  # "<consumer>/<thread>"
    error: Error | None = None  # how the attempt failed (empty error: it did not)
    canceled: bool = False  # canceled with retries left: RETRYING may follow
    interrupted: bool = False  # the consumer stopped it: put back, not released
    settled: bool = False  # a signal gave it its outcome
    result: str | None = None  # records.result_json of what the task returned
    result_refused: Error | None = None  # why history will not keep it: the job fails
    skipped: Any = None  # the `.then()` follow-ups a refused result keeps from running
    outbox: list[Record] = field(default_factory=list)  # outcomes, handed over at release


def _run(task: Any) -> JobRun:
    run = task.__dict__.get("tq_run")
    if run is None:
        run = task.tq_run = JobRun()
    return run


def _message_to_dict(message: Message | None) -> dict[str, Any] | None:
    return None if message is None else _message_fields(message)


def _message_fields(message: Message) -> dict[str, Any]:
    data = message._asdict()
    # The positional arguments are the message's array, never a tagged tuple
    # (tq.serializer tags tuples inside them).
    data["args"] = list(message.args or ())
    data["on_complete"] = _message_to_dict(message.on_complete)
    data["on_error"] = _message_to_dict(message.on_error)
    return data


class ChordRefused(HueyException, ValueError):
    """A chord (or `group(...).then(...)`) enqueued on a tq queue."""


CHORD_REFUSED = ("chords are not supported on tq's queues: enqueue the group, wait for its "
                 "results (ResultGroup.get(blocking=True)), then enqueue the callback with "
                 "them")


def _refuse_chords(task: Any) -> None:
    """ChordRefused if `task` is, holds or belongs to a chord, checked whole
    before anything is enqueued: a refused chord enqueues none of its members."""
    if isinstance(task, chord):
        raise ChordRefused(CHORD_REFUSED)
    if isinstance(task, group):
        for member in task.tasks:
            _refuse_chords(member)
        return
    while task is not None:  # a pipeline: the task and its `.then()` follow-ups
        if getattr(task, "chord_config", None) is not None:
            raise ChordRefused(CHORD_REFUSED)
        task = getattr(task, "on_complete", None)


def _handles(huey: TqHuey, task: Any) -> JobHandle | ResultGroup:
    """What Huey's enqueue returns with results on: one handle, or a pipeline's."""
    handles = []
    while task is not None:
        handles.append(JobHandle(huey, task))
        task = task.on_complete
    return ResultGroup(handles) if len(handles) > 1 else handles[0]


class TqTaskWrapper(TaskWrapper):
    """Huey's task wrapper; `map` returns its handles (Huey's only does with results on)."""

    def map(self, it):
        return ResultGroup([self.huey.enqueue(task) for task in self._apply(it)])


def _dict_to_message(data: dict | None) -> Message | None:
    if data is None:
        return None
    fields = {name: data.get(name) for name in Message._fields}
    fields["args"] = tuple(fields["args"] or ())
    fields["kwargs"] = dict(fields["kwargs"] or {})
    fields["on_complete"] = _dict_to_message(fields["on_complete"])
    fields["on_error"] = _dict_to_message(fields["on_error"])
    if fields["chord_config"] is not None:
        raise MessageRefused("chords are not supported by tq")
    return Message(**fields)


class TqHuey(Huey):
    def __init__(self, queue_name: str, runtime: Runtime, storage_class,
                 **storage_kwargs) -> None:
        queue = self.queue = queue_name
        self.runtime = runtime
        config = runtime.config
        prefix = config.queue.prefix
        super().__init__(name=f"{prefix}.{queue}", results=False, utc=True,
                         serializer=JsonSerializer(config.secret), storage_class=storage_class,
                         queue=queue, **storage_kwargs)
        self._registry = TqRegistry(self)
        self._paused_checked = 0.0
        self._paused: dict[str, dict] = {}
        self._outage_logged = False
        self._worker = threading.local()  # per worker thread: its unsettled Finished
        self.signal()(self._record_signal)

    def get_task_wrapper_class(self):
        return TqTaskWrapper

    # --- messages -----------------------------------------------------------
    def serialize_task(self, task) -> bytes:
        data = _message_fields(self._registry.create_message(task))
        data["tq"] = task_meta(task).to_message(task)
        return self.serializer.serialize(data)

    def deserialize_task(self, data: bytes):
        """A message -> a task, or MessageRefused with the reason (the caller
        quarantines it). The job spec rules of tq.jobspec hold here again: a
        message written straight into the backend, even one signed with the
        secret, never reaches a worker or the history writer with a value
        submit would have refused."""
        limit = self.runtime.config.queue.max_arg_bytes + MESSAGE_OVERHEAD
        if len(data) > limit:
            raise MessageRefused(f"message is {len(data):,} bytes, over the limit of "
                                 f"{limit:,}")
        if jobspec.depth_exceeds(bytes(data).decode("utf-8", "replace"),
                                 jobspec.MAX_DEPTH + 2):  # the message and its args
            raise MessageRefused(f"arguments nested deeper than {jobspec.MAX_DEPTH} levels")
        payload = self.serializer.deserialize(data)
        if not isinstance(payload, dict) or not isinstance(payload.get("name"), str):
            raise MessageRefused("not a tq message")
        try:
            jobspec.check_message(payload)
        except jobspec.SpecError as exc:
            raise MessageRefused(str(exc)) from None
        meta = payload.pop("tq", None) or {}
        task = self._registry.create_task(_dict_to_message(payload))
        set_meta(task, TaskMeta.from_message(meta, task))
        return task

    # --- pause ----------------------------------------------------------------
    def paused_targets(self, fresh: bool = False) -> dict[str, dict]:
        """Pause flags from the backend, re-read at most every half second: a
        paused task type is set aside within a second on every consumer. (A
        paused queue needs no cache: `claim` checks it atomically.)"""
        now = time.monotonic()
        if fresh or now - self._paused_checked >= PAUSE_CACHE_SECONDS:
            self._paused = self.runtime.control.paused()
            self._paused_checked = now
        return self._paused

    # --- the worker's side ------------------------------------------------------
    def settle_with_claims(self) -> None:
        """From now on, in this worker thread (or process), a finished job is
        settled -- in-flight record dropped, outcome records to the outbox,
        its revocation flag cleared -- in the same atomic step as the next
        claim, which follows at once in a worker's loop (or at its shutdown:
        `settle_finished`). Outside a consumer each job is released at once."""
        self._worker.finished = Finished()

    def settle_finished(self) -> None:
        finished = getattr(self._worker, "finished", None)
        if not finished:
            return
        try:
            self.storage.settle(self.runtime.worker_name(), finished)
        except Exception:
            # As in _release: recovery puts the jobs back; outcomes from memory.
            logger.exception("queue %s: could not release finished jobs", self.queue)
            for record in finished.records:
                self.runtime.writer.record(self.runtime.records.open(record))
        finished.clear()

    def dequeue(self):
        finished = getattr(self._worker, "finished", None)
        try:
            # None while paused; settles `finished` even then.
            claimed = self.storage.claim(self.runtime.worker_name(), finished)
        except Exception as exc:
            if not self._outage_logged:
                logger.warning("queue %s: cannot reach the queue backend (%s); retrying",
                               self.queue, first_line(exc))
                self._outage_logged = True
            return None
        if self._outage_logged:
            logger.warning("queue %s: queue backend reachable again", self.queue)
            self._outage_logged = False
        if finished:
            finished.clear()
        if claimed is None:
            return None
        token, data = claimed.token, claimed.data
        try:
            task = self.deserialize_task(data)
        except Exception as exc:
            reason = str(exc) if isinstance(exc, MessageRefused) else \
                f"unreadable message: {first_line(exc)}"
            logger.error("queue %s: unreadable message moved aside (%s)", self.queue, reason)
            self.storage.quarantine(token, data, reason, worker=self.runtime.worker_name())
            return None
        name = self._registry.task_to_string(type(task))
        target = f"{self.queue}/{name}"
        # Re-read before setting a job aside: the cache may predate a resume.
        if target in self.paused_targets() and target in self.paused_targets(fresh=True):
            self.storage.hold(token, name)
            return None
        task.tq_run = JobRun(token=token, no_flags=not claimed.flags)
        return task

    def is_revoked(self, task, timestamp=None, peek=True) -> bool:
        # The claim that handed out this task saw no flag at all: no lookup.
        run = task.__dict__.get("tq_run")
        if run is not None and run.no_flags:
            run.no_flags = False
            return False
        return super().is_revoked(task, timestamp, peek)

    def delete(self, key):
        finished = getattr(self._worker, "finished", None)
        executing = getattr(self._worker, "executing", None)
        if finished is not None and executing is not None and key == executing.revoke_id:
            finished.flags.append(key)  # cleared with the next claim
            return True
        return super().delete(key)

    def _requeue_task(self, task, timestamp, retry_eta=None):
        # A retry must not meet the revocation flag of the attempt that just ran.
        finished = getattr(self._worker, "finished", None)
        if finished is not None and finished.flags:
            for key in finished.flags:
                super().delete(key)
            finished.flags.clear()
        return super()._requeue_task(task, timestamp, retry_eta)

    @contextmanager
    def _executing(self, task: Any) -> Iterator[None]:
        """The job this worker runs, for one `with`: what tq.current_job_id()
        and the cancel checks see (registry.running), and whose follow-ups
        and revocation flag this worker's hooks treat as the running job's.
        Reset on the way out however the job ends: nothing of one job is seen
        by the next on the same thread."""
        with registry.running(task, self.runtime):
            previous = getattr(self._worker, "executing", None)
            self._worker.executing = task
            try:
                yield
            finally:
                self._worker.executing = previous

    def execute(self, task, timestamp=None):
        escaped = None
        try:
            with self._executing(task):
                return super().execute(task, timestamp)
        except BaseException as exc:  # sys.exit() in a job, Ctrl-C in a hook, a bug
            escaped = exc
            raise
        finally:
            run = _run(task)
            if run.started is not None and not run.settled:
                # Started, yet no signal gave it an outcome: history must not
                # say `running` for ever (see _unsettled).
                self._record_signal(UNSETTLED, task, escaped)
            if run.token is not None:
                self._release(task, run.token)

    def _run_post_execute(self, task, task_value, exception):
        # Huey's one look at the return value, before SIGNAL_COMPLETE: tq's Huey
        # keeps no results (results=False); history does, with the job.
        if exception is None:
            run = _run(task)
            try:
                run.result = records.result_json(
                    task_value, self.runtime.config.history.result_limit)
            except records.ResultRefused as exc:
                run.result_refused = records.error("ResultRefused", str(exc))
                # The job fails: its `.then()` follow-up must not run as if it had not
                # (kept aside, to be recorded not run: _pipeline_not_run).
                run.skipped, task.on_complete = task.on_complete, None
        return super()._run_post_execute(task, task_value, exception)

    def result(self, id, blocking=False, timeout=None, backoff=1.15, max_delay=1.0,
               revoke_on_timeout=False, preserve=False):
        """Huey's `huey.result(id)`, read from history (see JobHandle)."""
        return JobHandle(self, Task(id=id)).get(blocking, timeout, backoff, max_delay,
                                                revoke_on_timeout, preserve)

    def enqueue(self, task):
        """Huey's enqueue, returning handles as Huey's does with results on."""
        _refuse_chords(task)
        if isinstance(task, group):
            return ResultGroup([self.enqueue(member) for member in task.tasks])
        if self._enqueue(task) is False:
            return None
        return _handles(self, task)

    def _enqueue(self, task) -> bool:
        executing = getattr(self._worker, "executing", None)
        if executing is None or task is executing:
            super().enqueue(task)  # a submit, a retry, the scheduler
            return True
        # A follow-up of the running job (its `.error()` handler or `.then()`
        # task): if it cannot be enqueued, the job still keeps its outcome and
        # its retries, and the follow-up's history says why it never ran.
        try:
            super().enqueue(task)
            return True
        except Exception as exc:
            logger.error("queue %s: follow-up %s of job %s not enqueued: %s", self.queue,
                         task.id, executing.id, first_line(exc))
            try:
                record = self.job_record(task, "failed", finished_at=time.time(),
                                         failure=records.error(
                                             "NotEnqueued", f"follow-up of job {executing.id} "
                                             f"could not be enqueued: {type(exc).__name__}: "
                                             f"{first_line(exc)}"))
                self.runtime.writer.record(_as_dict(record))
            except Exception:
                logger.exception("could not build history record for %s", task.id)
            return False

    def _release(self, task: Any, token: Token) -> None:
        run = _run(task)
        outcomes, run.outbox = run.outbox, []
        encoded = [self.runtime.records.seal(record) for record in outcomes]
        finished = getattr(self._worker, "finished", None)
        if finished is not None and not run.interrupted:
            finished.tokens.append(token)
            finished.records += encoded
            return
        owner = self.runtime.worker_name()
        try:
            if run.interrupted:
                self.storage.put_back(token, outbox=owner, records=encoded)
            else:
                self.storage.release(token, outbox=owner, records=encoded)
        except Exception:
            # The in-flight record stays, so recovery puts the job back later;
            # the outcome is still worth recording from memory.
            logger.exception("queue %s: could not release job %s", self.queue, task.id)
            for record in outcomes:
                self.runtime.writer.record(_as_dict(record))

    # --- history ----------------------------------------------------------------
    def job_record(self, task: Any, state: str, *, attempt: int | None = None,
                   eta: float | None = None, started_at: float | None = None,
                   finished_at: float | None = None, worker: str | None = None,
                   failure: Error | None = None, result: str | None = None) -> JobRecord:
        """The task's record in `state` after `attempt` attempts (default: the
        ones it has started)."""
        meta = task_meta(task)
        encoded = meta.encoded
        if encoded is None:  # once per job, not once per record
            encoded = (_recordable(list(task.args)), _recordable(task.kwargs))
            set_meta(task, replace(meta, encoded=encoded))
        return records.job(
            task.id, state, meta.attempt if attempt is None else attempt, queue=self.queue,
            task=self._registry.task_to_string(type(task)), args=encoded[0],
            kwargs=encoded[1], priority=task.priority or 0, max_retries=meta.retries_of(task),
            enqueued_at=meta.enqueued_at, requeued_from=meta.requeued_from,
            updated_at=time.time(), eta=eta, started_at=started_at, finished_at=finished_at,
            worker=worker, failure=failure, result=result)

    def _record_signal(self, signal: str, task, *args) -> None:
        try:
            outcomes = self._records_for(signal, task, *args)
        except Exception:
            logger.exception("could not build history record for %s", task.id)
            return
        run = _run(task)
        if signal != S.SIGNAL_EXECUTING and run.token is not None:
            # An outcome of a claimed job: handed over durably when the claim is
            # released (see execute), not kept in this process's memory.
            run.outbox += outcomes
            return
        writer = self.runtime.writer
        for record in outcomes:
            writer.record(_as_dict(record))

    def _records_for(self, signal: str, task, *args) -> list[Record]:
        """A signal's history records. Every Huey signal that ends an attempt
        gives an outcome (or says which signal will: RETRYING follows ERROR,
        TIMEOUT, LOCKED, RATE_LIMITED and CANCELED when retries are left)."""
        now = time.time()
        run = _run(task)
        if signal == S.SIGNAL_EXECUTING:
            meta = replace(task_meta(task), attempt=task_meta(task).attempt + 1)
            set_meta(task, meta)
            run.started = now
            run.worker = worker = (f"{self.runtime.worker_name()}/"
                                   f"{threading.current_thread().name}")
            return [self.job_record(task, "running", started_at=now, worker=worker),
                    records.attempt_started(task.id, meta.attempt, worker, now)]
        if signal == S.SIGNAL_SCHEDULED:
            # A retry with a delay is scheduled too: it stays `retrying` with its eta.
            state = "retrying" if task_meta(task).attempt else "scheduled"
            return [self.job_record(task, state, eta=utc_timestamp(task.eta))]
        if signal in (S.SIGNAL_ERROR, S.SIGNAL_TIMEOUT):
            exc = args[0] if args else sys.exc_info()[1]
            run.error = records.error(
                "TaskTimeout" if signal == S.SIGNAL_TIMEOUT else type(exc).__name__,
                exception_text(exc) if exc is not None else f"timed out after {task.timeout}s",
                traceback.format_exc())
            if task.retries:
                return []  # SIGNAL_RETRYING follows
            return self._outcome(task, "failed", now)
        if signal in (S.SIGNAL_LOCKED, S.SIGNAL_RATE_LIMITED):
            # Huey sends these from inside its `except`: the exception is at hand.
            exc = sys.exc_info()[1]
            run.error = records.error(
                "TaskLocked" if signal == S.SIGNAL_LOCKED else "RateLimited",
                exception_text(exc) if exc is not None else signal)
            if task.retries:
                return []  # SIGNAL_RETRYING follows
            return self._outcome(task, "failed", now)
        if signal == S.SIGNAL_RETRYING:
            if not run.error:  # the task raised RetryTask
                run.error = records.error("Retry", "the task asked to be retried")
            return self._outcome(task, "retrying", now)
        if signal == S.SIGNAL_COMPLETE:
            if run.result_refused is not None:
                # Not retried: the same code would return the same kind of value.
                run.error = run.result_refused
                return self._outcome(task, "failed", now)
            run.error = records.no_error()
            return self._outcome(task, "succeeded", now)
        if signal == S.SIGNAL_CANCELED:
            run.error = records.error("Canceled", "canceled by request")
            if task.retries:
                # RETRYING follows, unless a pre-execute hook canceled the job:
                # then nothing does, and the job ends canceled (see _unsettled).
                run.canceled = True
                return []
            return self._outcome(task, "canceled", now)
        if signal == S.SIGNAL_REVOKED:
            return [self.job_record(task, "canceled", finished_at=now, failure=records.error(
                "Revoked", "revoked before it could run", None))]
        if signal == S.SIGNAL_EXPIRED:
            return [self.job_record(task, "expired", finished_at=now, failure=records.error(
                "Expired", f"expired at {task.expires_resolved} UTC before it could run",
                None))]
        if signal == S.SIGNAL_INTERRUPTED:
            return self._interrupted(task, now)
        if signal == UNSETTLED:
            return self._unsettled(task, args[0] if args else None, now)
        return []

    def _interrupted(self, task, now: float) -> list[Record]:
        run = _run(task)
        run.interrupted = True
        run.error = records.error("Interrupted", "consumer stopped; job put back on the queue")
        return self._outcome(task, "retrying", now)

    def _unsettled(self, task, escaped: BaseException | None, now: float) -> list[Record]:
        """The outcome of a job Huey started but gave none: canceled by a
        pre-execute hook, interrupted outside the task's own code, or ended by
        an exception Huey does not catch (SystemExit, an error in Huey)."""
        run = _run(task)
        if isinstance(escaped, KeyboardInterrupt):
            return self._interrupted(task, now)
        if run.canceled:
            return self._outcome(task, "canceled", now)
        if escaped is not None:
            run.error = records.error(type(escaped).__name__,
                                      exception_text(escaped)[:10_000],
                                      "".join(traceback.format_exception(
                                          type(escaped), escaped, escaped.__traceback__)))
        elif not run.error or not run.error["error_type"]:
            run.error = records.error("NoOutcome", "Huey ended the job without an outcome")
        return self._outcome(task, "failed", now)

    def _outcome(self, task, state: str, now: float) -> list[Record]:
        run = _run(task)
        run.settled = True
        attempt_outcome: records.Outcome = {
            "succeeded": "succeeded", "failed": "failed", "canceled": "canceled",
            "retrying": "failed"}[state]  # type: ignore[assignment]
        if run.error is not None and run.error["error_type"] == "Interrupted":
            attempt_outcome = "interrupted"
        job: JobRecord = self.job_record(
            task, state, started_at=run.started,
            finished_at=now if state != "retrying" else None, failure=run.error,
            result=run.result if state == "succeeded" else None)
        attempt: AttemptRecord = records.attempt_ended(
            task.id, task_meta(task).attempt, run.worker, run.started, now, attempt_outcome,
            run.error)
        return [job, attempt, *self._pipeline_not_run(task, state, now)]

    def _pipeline_not_run(self, task, state: str, now: float) -> list[Record]:
        """The `.then()` follow-ups of a job that ended without a value never
        run: each is recorded failed, saying why, so their handles raise as
        Huey's do (Huey stores the first job's error for each) instead of
        waiting, and history shows the whole pipeline."""
        if state not in ("failed", "canceled"):
            return []
        follow_ups: list[Record] = []
        follow_up = task.on_complete or _run(task).skipped
        while follow_up is not None:
            follow_ups.append(self.job_record(
                follow_up, "failed", attempt=0, finished_at=now, failure=records.error(
                    "PipelineFailed", f"not run: job {task.id} before it in the pipeline "
                                      f"{state}", None)))
            follow_up = follow_up.on_complete
        return follow_ups


def _as_dict(record: Record) -> dict[str, Any]:
    # HistoryWriter.record is typed for a dict; a record is one (a TypedDict).
    return cast("dict[str, Any]", record)


def _recordable(value: Any) -> str:
    """Job arguments as history keeps them: the tagged JSON of the message. What
    no JSON can carry (NaN, a set, nesting too deep) is named, so the job still
    gets its history row."""
    try:
        return dumps_json(value)
    except (TypeError, ValueError, RecursionError) as exc:
        return dumps_json(f"<not recordable: {type(exc).__name__}: {first_line(exc)}>"[:500])


def host_name() -> str:
    return socket.gethostname()


def default_worker_name() -> str:
    return f"{host_name()}:{os.getpid()}"
