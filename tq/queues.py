"""One Huey instance per named queue, and how tq hooks into Huey.

TqHuey changes four things about Huey and nothing else:
  - messages are JSON (signed when TQ_SECRET is set), never pickle;
  - `dequeue` claims a message with a durable in-flight record, honours pause,
    and moves aside a message it cannot read instead of crashing a worker;
  - `execute` releases the in-flight record once the job has an outcome (in a
    consumer worker: together with its next claim, see `settle_with_claims`);
  - every state change is sent to the history writer through Huey's signals.
"""
from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
import traceback
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from huey import Huey
from huey import signals as S
from huey.exceptions import HueyException
from huey.registry import Message, Registry

from tq import jobspec, registry
from tq.format import first_line
from tq.models import state_seq
from tq.serializer import JsonSerializer, MessageRefused, dumps_json, exception_text
from tq.storage import Finished

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
    return value.replace(tzinfo=timezone.utc).timestamp()


class TqRegistry(Registry):
    """Learns tasks from tq's registry the first time a queue meets them."""

    def __init__(self, huey: "TqHuey") -> None:
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


def _message_to_dict(message: Message | None) -> dict | None:
    if message is None:
        return None
    data = message._asdict()
    data["on_complete"] = _message_to_dict(message.on_complete)
    data["on_error"] = _message_to_dict(message.on_error)
    return data


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
    def __init__(self, queue_name: str, runtime: "Runtime", storage_class,
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

    # --- messages -----------------------------------------------------------
    def serialize_task(self, task) -> bytes:
        data = _message_to_dict(self._registry.create_message(task))
        data["tq"] = {"attempt": getattr(task, "tq_attempt", 0),
                      "max_retries": getattr(task, "tq_max_retries", task.retries),
                      "enqueued_at": getattr(task, "tq_enqueued_at", None),
                      "requeued_from": getattr(task, "tq_requeued_from", None)}
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
        task.tq_attempt = int(meta.get("attempt") or 0)
        task.tq_max_retries = meta.get("max_retries", task.retries)
        task.tq_enqueued_at = meta.get("enqueued_at")
        task.tq_requeued_from = meta.get("requeued_from")
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
        task.tq_token = token
        task.tq_no_flags = not claimed.flags
        return task

    def is_revoked(self, task, timestamp=None, peek=True) -> bool:
        # The claim that handed out this task saw no flag at all: no lookup.
        if getattr(task, "tq_no_flags", False):
            task.tq_no_flags = False
            return False
        return super().is_revoked(task, timestamp, peek)

    def delete(self, key):
        finished = getattr(self._worker, "finished", None)
        if finished is not None and key == getattr(self._worker, "revoke_id", None):
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

    def execute(self, task, timestamp=None):
        registry._current.job_id = task.id
        registry._current.task = task
        registry._current.runtime = self.runtime
        registry._current.checker = self.runtime.cancel_checker
        self._worker.revoke_id = task.revoke_id
        self._worker.executing = task
        escaped = None
        try:
            return super().execute(task, timestamp)
        except BaseException as exc:  # sys.exit() in a job, Ctrl-C in a hook, a bug
            escaped = exc
            raise
        finally:
            registry._current.job_id = registry._current.task = None
            registry._current.runtime = None
            self._worker.revoke_id = None
            self._worker.executing = None
            if getattr(task, "tq_started", None) is not None and \
                    not getattr(task, "tq_settled", False):
                # Started, yet no signal gave it an outcome: history must not
                # say `running` for ever (see _unsettled).
                self._record_signal(UNSETTLED, task, escaped)
            token = getattr(task, "tq_token", None)
            if token is not None:
                self._release(task, token)

    def enqueue(self, task):
        executing = getattr(self._worker, "executing", None)
        if executing is None or task is executing:
            return super().enqueue(task)  # a submit, a retry, the scheduler
        # A follow-up of the running job (its `.error()` handler or `.then()`
        # task): if it cannot be enqueued, the job still keeps its outcome and
        # its retries, and the follow-up's history says why it never ran.
        try:
            return super().enqueue(task)
        except Exception as exc:
            logger.error("queue %s: follow-up %s of job %s not enqueued: %s", self.queue,
                         task.id, executing.id, first_line(exc))
            try:
                record = self.job_record(task, "failed", finished_at=time.time(),
                                         error_type="NotEnqueued",
                                         error_message=f"follow-up of job {executing.id} "
                                                       f"could not be enqueued: "
                                                       f"{type(exc).__name__}: "
                                                       f"{first_line(exc)}")
                self.runtime.writer.record(record)
            except Exception:
                logger.exception("could not build history record for %s", task.id)
            return None

    def _release(self, task, token) -> None:
        records = getattr(task, "tq_outbox", [])
        task.tq_outbox = []
        encoded = [self.runtime.records.seal(record) for record in records]
        finished = getattr(self._worker, "finished", None)
        if finished is not None and not getattr(task, "tq_interrupted", False):
            finished.tokens.append(token)
            finished.records += encoded
            return
        owner = self.runtime.worker_name()
        try:
            if getattr(task, "tq_interrupted", False):
                self.storage.put_back(token, outbox=owner, records=encoded)
            else:
                self.storage.release(token, outbox=owner, records=encoded)
        except Exception:
            # The in-flight record stays, so recovery puts the job back later;
            # the outcome is still worth recording from memory.
            logger.exception("queue %s: could not release job %s", self.queue, task.id)
            for record in records:
                self.runtime.writer.record(record)

    # --- history ----------------------------------------------------------------
    def job_record(self, task, state: str, **columns: Any) -> dict:
        attempt = getattr(task, "tq_attempt", 0)
        encoded = getattr(task, "tq_encoded", None)
        if encoded is None:  # once per job, not once per record
            encoded = task.tq_encoded = (_recordable(list(task.args)),
                                         _recordable(task.kwargs))
        record = {
            "kind": "job", "id": task.id, "state": state, "seq": state_seq(state, attempt),
            "queue": self.queue, "task": self._registry.task_to_string(type(task)),
            "args": encoded[0], "kwargs": encoded[1],
            "priority": task.priority or 0,
            "max_retries": getattr(task, "tq_max_retries", task.retries),
            "enqueued_at": getattr(task, "tq_enqueued_at", None),
            "requeued_from": getattr(task, "tq_requeued_from", None),
            "attempts": attempt, "updated_at": time.time(),
        }
        record.update(columns)
        return record

    def _record_signal(self, signal: str, task, *args) -> None:
        try:
            records = self._records_for(signal, task, *args)
        except Exception:
            logger.exception("could not build history record for %s", task.id)
            return
        if signal != S.SIGNAL_EXECUTING and getattr(task, "tq_token", None) is not None:
            # An outcome of a claimed job: handed over durably when the claim is
            # released (see execute), not kept in this process's memory.
            task.tq_outbox = getattr(task, "tq_outbox", []) + records
            return
        writer = self.runtime.writer
        for record in records:
            writer.record(record)

    def _records_for(self, signal: str, task, *args) -> list[dict]:
        """A signal's history records. Every Huey signal that ends an attempt
        gives an outcome (or says which signal will: RETRYING follows ERROR,
        TIMEOUT, LOCKED, RATE_LIMITED and CANCELED when retries are left)."""
        now = time.time()
        if signal == S.SIGNAL_EXECUTING:
            task.tq_attempt = getattr(task, "tq_attempt", 0) + 1
            task.tq_started = now
            worker = f"{self.runtime.worker_name()}/{threading.current_thread().name}"
            task.tq_worker = worker
            return [self.job_record(task, "running", started_at=now, worker=worker),
                    {"kind": "attempt", "job_id": task.id, "attempt": task.tq_attempt,
                     "worker": worker, "started_at": now}]
        if signal == S.SIGNAL_SCHEDULED:
            # A retry with a delay is scheduled too: it stays `retrying` with its eta.
            state = "retrying" if getattr(task, "tq_attempt", 0) else "scheduled"
            return [self.job_record(task, state, eta=utc_timestamp(task.eta))]
        if signal in (S.SIGNAL_ERROR, S.SIGNAL_TIMEOUT):
            exc = args[0] if args else sys.exc_info()[1]
            task.tq_error = {
                "error_type": "TaskTimeout" if signal == S.SIGNAL_TIMEOUT else type(exc).__name__,
                "error_message": exception_text(exc) if exc is not None else f"timed out after "
                                                                   f"{task.timeout}s",
                "traceback": traceback.format_exc(),
            }
            if task.retries:
                return []  # SIGNAL_RETRYING follows
            return self._outcome(task, "failed", now)
        if signal in (S.SIGNAL_LOCKED, S.SIGNAL_RATE_LIMITED):
            # Huey sends these from inside its `except`: the exception is at hand.
            exc = sys.exc_info()[1]
            task.tq_error = {"error_type": "TaskLocked" if signal == S.SIGNAL_LOCKED
                             else "RateLimited",
                             "error_message": exception_text(exc) if exc is not None
                             else signal,
                             "traceback": ""}
            if task.retries:
                return []  # SIGNAL_RETRYING follows
            return self._outcome(task, "failed", now)
        if signal == S.SIGNAL_RETRYING:
            if not getattr(task, "tq_error", None):  # the task raised RetryTask
                task.tq_error = {"error_type": "Retry", "traceback": "",
                                 "error_message": "the task asked to be retried"}
            return self._outcome(task, "retrying", now)
        if signal == S.SIGNAL_COMPLETE:
            task.tq_error = {"error_type": "", "error_message": "", "traceback": ""}
            return self._outcome(task, "succeeded", now)
        if signal == S.SIGNAL_CANCELED:
            task.tq_error = {"error_type": "Canceled", "error_message": "canceled by request",
                             "traceback": ""}
            if task.retries:
                # RETRYING follows, unless a pre-execute hook canceled the job:
                # then nothing does, and the job ends canceled (see _unsettled).
                task.tq_canceled = True
                return []
            return self._outcome(task, "canceled", now)
        if signal == S.SIGNAL_REVOKED:
            return [self.job_record(task, "canceled", finished_at=now, error_type="Revoked",
                                    error_message="revoked before it could run")]
        if signal == S.SIGNAL_EXPIRED:
            return [self.job_record(task, "expired", finished_at=now, error_type="Expired",
                                    error_message=f"expired at {task.expires_resolved} UTC "
                                                  "before it could run")]
        if signal == S.SIGNAL_INTERRUPTED:
            return self._interrupted(task, now)
        if signal == UNSETTLED:
            return self._unsettled(task, args[0] if args else None, now)
        return []

    def _interrupted(self, task, now: float) -> list[dict]:
        task.tq_interrupted = True
        task.tq_error = {"error_type": "Interrupted", "traceback": "",
                         "error_message": "consumer stopped; job put back on the queue"}
        return self._outcome(task, "retrying", now)

    def _unsettled(self, task, escaped: BaseException | None, now: float) -> list[dict]:
        """The outcome of a job Huey started but gave none: canceled by a
        pre-execute hook, interrupted outside the task's own code, or ended by
        an exception Huey does not catch (SystemExit, an error in Huey)."""
        if isinstance(escaped, KeyboardInterrupt):
            return self._interrupted(task, now)
        if getattr(task, "tq_canceled", False):
            return self._outcome(task, "canceled", now)
        if escaped is not None:
            task.tq_error = {"error_type": type(escaped).__name__,
                             "error_message": exception_text(escaped)[:10_000],
                             "traceback": "".join(traceback.format_exception(
                                 type(escaped), escaped, escaped.__traceback__))}
        elif not getattr(task, "tq_error", None) or not task.tq_error.get("error_type"):
            task.tq_error = {"error_type": "NoOutcome", "traceback": "",
                             "error_message": "Huey ended the job without an outcome"}
        return self._outcome(task, "failed", now)

    def _outcome(self, task, state: str, now: float) -> list[dict]:
        task.tq_settled = True
        error = getattr(task, "tq_error", None) or {}
        started = getattr(task, "tq_started", None)
        job_columns = dict(error, finished_at=now if state != "retrying" else None,
                           started_at=started)
        if state == "retrying":
            job_columns["finished_at"] = None
        attempt_outcome = {"succeeded": "succeeded", "failed": "failed", "canceled": "canceled",
                           "retrying": "failed"}[state]
        if error.get("error_type") == "Interrupted":
            attempt_outcome = "interrupted"
        return [self.job_record(task, state, **job_columns),
                {"kind": "attempt", "job_id": task.id, "attempt": getattr(task, "tq_attempt", 0),
                 "worker": getattr(task, "tq_worker", None), "started_at": started,
                 "finished_at": now, "outcome": attempt_outcome, **error}]


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
