"""Attaching tq to an existing Huey application: `tq.attach(huey)`.

One line after the app's `Huey(...)` line, nothing else changed: the app keeps
its own storage, serializer (pickle), results, chords and `huey_consumer`;
tq listens to Huey's signals and records every job in tq's history.

Where the records go (the invariants):
  - a job enqueued (SIGNAL_ENQUEUED, in any process: a web app, the
    consumer's scheduler, a retry) gets its `queued` record, with its
    enqueue time, put durably in the SUBMITTED outbox of tq's configured
    queue backend (tq.ini / TQ_*), sealed as every outbox record is; tq's
    history writers and every `tq jobs`/`tq status` read write it;
  - a job run by the stock `huey_consumer` (EXECUTING and every outcome
    signal) gets its records through the runtime's batched HistoryWriter,
    started lazily in that process: a slow or dead database never stalls a
    job, records are kept and spilled while it is down;
  - the consumer process (first worker start-up hook) registers itself for
    `tq workers` and heartbeats every [consumer] heartbeat seconds; its
    writer also drains the SUBMITTED outbox, so history is complete with no
    tq consumer running anywhere.
Arguments are recorded as JSON when JSON can carry them, else as their
`repr` (a JSON string): nothing is unpickled outside the app's processes.
A task's return value is kept with its `succeeded` record when it is exactly
JSON and within [history] result_limit (else history has none; Huey's own
result store keeps every value, as without tq).
A job's queue in history is the Huey app's name (`huey.name`); its task is
Huey's own task string (module.Name). Attempt numbers are counted per job
in the process that runs it (Huey keeps no attempt count of its own): a job
retried by another consumer process counts from its remaining retries.
A listener never raises into Huey: a record that cannot be built is logged.

A huey_consumer SIGKILLed mid-job: Huey's Redis delivery is at most once, so
the job is gone and no signal says so. Every attached huey_consumer, at start
and on each heartbeat, ends in history the `running` jobs of its app whose
worker is a registered huey_consumer silent for `[consumer] lease` seconds
(heartbeat age judged by the queue backend's clock, as tq/recovery.py does):
`failed`, WorkerLost, the attempt ended `lost`. History only: nothing is
put back. With `tq.attach(huey, durable=True)` (Redis apps) the consumer
claims each message as it takes it and the dead consumer's claims are put
back instead (tq/attached_claims.py); the history pass above is then off.
"""
from __future__ import annotations

import atexit
import json
import logging
import os
import sys
import threading
import time
import traceback
import uuid
import weakref
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from huey import signals as S

from tq import attached_claims, records
from tq.serializer import exception_text

if TYPE_CHECKING:
    from huey import Huey

    from tq.records import Error, Record
    from tq.runtime import Runtime

logger = logging.getLogger("tq.attach")

ARGS_LIMIT = 65_536  # characters of arguments kept as JSON; past it, the repr's start
REPR_LIMIT = 10_000
_attached: weakref.WeakKeyDictionary[Any, Attachment] = weakref.WeakKeyDictionary()
_attached_lock = threading.Lock()


def attach(huey: Huey, durable: bool = False, runtime: Runtime | None = None) -> Huey:
    """Record every job `huey` enqueues or runs in tq's history; returns `huey`.
    Attaching twice is attaching once (durable, once asked for, stays).
    `runtime`: the tq configuration to record with (default: the process's,
    from tq.ini and TQ_* variables). `durable`: at-least-once delivery for a
    stock huey_consumer of a Redis app (tq/attached_claims.py); other
    storages are refused with one line (ValueError)."""
    if durable and not attached_claims.supports(huey):
        raise ValueError(f"tq.attach(durable=True) needs a Redis app (RedisHuey, "
                         f"PriorityRedisHuey): {type(huey.storage).__name__} has no "
                         "durable claims")
    with _attached_lock:
        if huey not in _attached:
            _attached[huey] = Attachment(huey)
        if durable:
            _attached[huey].make_durable()
        if runtime is not None:
            _attached[huey].use(runtime)
    return huey


def attachment(huey: Huey) -> Attachment | None:
    return _attached.get(huey)


# Built once: json.dumps with options builds an encoder on every call.
_ENCODE = json.JSONEncoder(allow_nan=False, ensure_ascii=False, separators=(",", ":")).encode
_ENCODE_ASCII = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode
_DECODE = json.JSONDecoder().decode


def _json_or_repr(value: Any) -> str:
    """Strict JSON of `value` when it is JSON as it is (round-trips, at most
    ARGS_LIMIT characters), else its repr (cut at REPR_LIMIT) as a JSON string."""
    try:
        text = _ENCODE(value)
        if len(text) <= ARGS_LIMIT and _DECODE(text) == value:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate: escaped, so any database takes it
                text = _ENCODE_ASCII(value)
            return text
    except (TypeError, ValueError, RecursionError):
        pass
    try:
        shown = repr(value)
    except Exception as exc:  # a repr that raises is the app's bug, not a reason to lose the row
        shown = f"<unrepresentable: {type(exc).__name__}>"
    return json.dumps(shown[:REPR_LIMIT])


def _listed(args: Any) -> Any:
    """A task's args as the list history keeps; anything else (Huey does not check
    what a caller passes) is kept as it is, recorded as JSON or its repr."""
    if args is None:
        return []
    return list(args) if isinstance(args, (list, tuple)) else args


def _timestamp(value: datetime | None, utc: bool) -> float | None:
    """A Huey eta as a timestamp: naive UTC (Huey's default) or naive local time."""
    if value is None:
        return None
    if value.tzinfo is None and utc:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


class Attachment:
    """One attached Huey app: its signal listener and its consumer-side services."""

    def __init__(self, huey: Huey) -> None:
        self.huey = huey
        self.queue = huey.name
        self._lock = threading.RLock()  # the start-up hook holds it through recovery
        self._runtime: Runtime | None = None
        self._runtime_pid = 0
        # Per job id, in this process: attempts started, the running attempt's
        # start and worker, the error its failure signal carried.
        self._attempts: dict[str, int] = {}
        self._running: dict[str, tuple[float, str]] = {}
        self._errors: dict[str, Error] = {}
        self._results: dict[str, str] = {}  # a job's return value as history keeps it
        # A running job's args and kwargs as history keeps them: encoded when it
        # starts, reused by its outcome's record (the same values, encoded once).
        self._encoded: dict[str, tuple[str, str]] = {}
        # Copies made by `tq requeue` in this process: copy id -> original id.
        self.requeued_from: dict[str, str] = {}
        self._consumer_pid = 0
        self.workers = 0
        self.name: str | None = None
        # durable=True (tq/attached_claims.py): the claims, each claimed task's
        # (token, job id) by id(task) until its execute ends, and per job id the
        # attempts that ended with no outcome before this process took it.
        self.claims: attached_claims.Claims | None = None
        self._claimed: dict[int, tuple[str, str]] = {}
        self._unfinished: dict[str, int] = {}
        self._unreleased: list[tuple[str, str]] = []
        # In a huey_consumer, a worker thread's finished claim, by thread id:
        # released by the script of its next claim, or when the worker stops.
        self._pending: dict[int, tuple[str, str]] = {}
        huey._signal.connect(self._on_signal)
        huey.on_startup(f"tq-attach-{id(self)}")(self._on_worker_start)
        huey.on_shutdown(f"tq-attach-{id(self)}")(self._on_worker_stop)
        huey.post_execute(f"tq-attach-{id(self)}")(self._on_post_execute)

    # --- the runtime: tq's configuration in this process ----------------------------
    @property
    def runtime(self) -> Runtime:
        if self._runtime is None or self._runtime_pid != os.getpid():
            from tq.runtime import current  # not at import: `import tq` stays light
            self._runtime = current()
            self._runtime_pid = os.getpid()
        return self._runtime

    def use(self, runtime: Runtime) -> None:
        self._runtime, self._runtime_pid = runtime, os.getpid()

    # --- durable=True: claims around Huey's dequeue and execute ------------------------
    def make_durable(self) -> None:
        """Claim every message this process's huey_consumer takes (see
        tq/attached_claims.py): Huey's dequeue and execute, wrapped on the instance."""
        if self.claims is not None:
            return
        self.claims = attached_claims.Claims(self.huey)
        self.huey.dequeue = self._durable_dequeue
        self.huey.execute = self._durable_execute

    def _active_claims(self) -> attached_claims.Claims | None:
        # Huey's `immediate` mode swaps the storage for a memory one: no claims then.
        claims = self.claims
        if claims is None or claims.storage is not self.huey.storage:
            return None
        return claims

    def _claimer(self) -> str:
        if self.name is not None and self._consumer_pid == os.getpid():
            return self.name
        from tq.queues import host_name
        return f"unregistered:{host_name()}:{os.getpid()}"  # never taken over

    def _durable_dequeue(self) -> Any:
        claims = self._active_claims()
        if claims is None:
            return type(self.huey).dequeue(self.huey)
        me = threading.get_ident()
        with self._lock:
            release = self._pending.pop(me, None)
        try:
            taken = claims.wait_and_take(self._claimer(), release)
        except Exception:
            if release is not None:  # not released: the next try does it
                with self._lock:
                    self._pending[me] = release
            raise
        if taken is None:
            return None
        token, member, some_unfinished = taken
        try:
            task = self.huey.deserialize_task(claims.data(member))
        except Exception as exc:  # one bad message never stops a worker
            claims.set_aside(token, member, f"the app cannot read it: {str(exc)[:300]}",
                             self._claimer())
            return None
        if some_unfinished:
            unfinished = claims.unfinished(task.id)
            if unfinished:
                self._unfinished[task.id] = unfinished
        with self._lock:
            self._claimed[id(task)] = (token, task.id)
        return task

    def _durable_execute(self, task: Any, timestamp: Any = None) -> Any:
        try:
            return type(self.huey).execute(self.huey, task, timestamp)
        finally:
            with self._lock:
                claimed = self._claimed.pop(id(task), None)
                if claimed is not None and task.id in self._attempts:
                    # Retried (Huey re-enqueued it): the job's counts of lost and
                    # unfinished attempts stay for its next attempt's number.
                    claimed = (claimed[0], "")
                if claimed is not None and self._consumer_pid == os.getpid():
                    self._pending[threading.get_ident()] = claimed  # the next claim's
                    claimed = None
            if claimed is not None:
                self._release(*claimed)

    def _release(self, token: str, job_id: str) -> None:
        claims = self.claims
        assert claims is not None
        try:
            claims.release(token, job_id)
        except Exception as exc:  # kept, and tried again on each heartbeat
            logger.warning("tq: claim of job %s not released (%s); retrying", job_id,
                           str(exc)[:200])
            with self._lock:
                self._unreleased.append((token, job_id))

    def _release_pending(self) -> None:
        with self._lock:
            pending, self._unreleased = self._unreleased, []
        for token, job_id in pending:
            self._release(token, job_id)

    def _release_finished(self, every_thread: bool) -> None:
        """Release finished claims not yet released with a next claim: this worker
        thread's (its shutdown hook), or every thread's (at exit)."""
        if self.claims is None:
            return
        with self._lock:
            if every_thread:
                finished, self._pending = list(self._pending.values()), {}
            else:
                own = self._pending.pop(threading.get_ident(), None)
                finished = [own] if own is not None else []
        for token, job_id in finished:
            self._release(token, job_id)

    def _put_back_interrupted(self, task: Any) -> bool:
        """A stopping huey_consumer interrupted `task`: its message goes back
        at once (not a loss). True when it went back."""
        claims = self.claims
        with self._lock:
            claimed = self._claimed.pop(id(task), None) if claims is not None else None
        if claims is None or claimed is None:
            return False
        token, job_id = claimed
        try:
            found = {claim.token: claim for claim in claims.claims()[0]}
            claim = found.get(token)
            done = claims.put_back(claim, job_id, -1, "interrupted") if claim else None
        except Exception as exc:
            logger.warning("tq: interrupted job %s not put back (%s): a live consumer "
                           "recovers it after a lease", job_id, str(exc)[:200])
            return False
        return done is not None and done[1]

    def _recover_claims(self) -> int:
        """Put back the claimed messages of dead huey_consumers of this app and
        record it in history; returns how many claims were dealt with."""
        claims = self._active_claims()
        if claims is None:
            return 0
        runtime = self.runtime
        consumer = runtime.config.consumer
        try:
            self._release_pending()
            done = claims.recover(self._claimer(), runtime.control.workers(),
                                  consumer.lease, consumer.lost_retries)
        except Exception as exc:  # a server down: the next heartbeat tries again
            logger.debug("claim recovery failed: %s", exc)
            return 0
        now = time.time()
        for item in done:
            task = item.task
            attempt = max(0, self._max_retries(task) - (task.retries or 0)) + item.unfinished
            if item.put_back:
                state, finished = "retrying", None
                failure = records.error("WorkerLost", f"huey_consumer {item.claim.claimer} "
                                        "stopped heartbeating mid-job; put back on its queue")
            else:
                state, finished = "failed", now
                failure = records.error(
                    "WorkerLost", f"worker lost {item.losses} times; last: huey_consumer "
                    f"{item.claim.claimer} stopped heartbeating; the message is set aside "
                    f"in {claims.quarantine_key}")
            runtime.writer.record(dict(self.job(task, state, attempt, finished_at=finished,
                                                failure=failure)))
            runtime.writer.record(dict(records.attempt_ended(
                task.id, attempt, None, None, now, "lost", failure)))
        return len(done)

    # --- consumer-side services -------------------------------------------------------
    def _on_worker_start(self) -> None:
        # Every worker thread runs the hook; the first sets this process up, and
        # the others wait for it, so no job runs under a name not yet registered.
        with self._lock:
            if self._consumer_pid == os.getpid():
                self.workers += 1  # counted for `tq workers`: one hook call a worker
                return
            from tq.queues import host_name
            runtime = self.runtime
            self.name = f"{host_name()}:{os.getpid()}:huey-{uuid.uuid4().hex[:6]}"
            runtime.set_worker_name(self.name)
            self.started = time.time()
            self.workers = 1
            try:
                self._beat()
            except Exception as exc:
                logger.warning("tq: heartbeat failed (%s); retrying", exc)
            self._end_lost_runs()
            self._recover_claims()
            runtime.writer.attach_outbox(runtime.control, self.name)
            threading.Thread(target=self._heartbeat_loop, name="tq-attach-heartbeat",
                             daemon=True).start()
            threading.Thread(target=self._rollup_loop, name="tq-attach-rollup",
                             daemon=True).start()
            # Huey reports jobs interrupted by a stop after its workers' shutdown
            # hooks: what is recorded then is written at exit.
            atexit.register(self._on_worker_stop, every_thread=True)
            self._consumer_pid = os.getpid()

    def _on_worker_stop(self, every_thread: bool = False) -> None:
        if self._consumer_pid != os.getpid():
            return
        self._release_finished(every_thread)
        try:
            self.runtime.flush_history(timeout=10)
        except Exception as exc:
            logger.warning("tq history not flushed at shutdown: %s", exc)

    def _beat(self) -> None:
        assert self.name is not None
        self.runtime.control.heartbeat(self.name, {
            "id": self.name, "host": self.name.split(":")[0], "pid": os.getpid(),
            "queues": [self.queue], "workers": self.workers, "worker_type": "huey_consumer",
            "started": self.started, "beat": time.time(), "attached": True})

    def _heartbeat_loop(self) -> None:
        every = self.runtime.config.consumer.heartbeat
        while True:
            time.sleep(every)  # a daemon thread: it ends with the process
            try:
                self._beat()
            except Exception as exc:
                logger.debug("heartbeat failed: %s", exc)
            self._end_lost_runs()
            self._recover_claims()

    def _end_lost_runs(self) -> int:
        """End in history this app's `running` jobs whose huey_consumer went
        silent for a lease (see the module docstring); returns how many."""
        try:
            return self._end_lost_runs_once()
        except Exception as exc:  # a down database: the next heartbeat tries again
            logger.debug("lost-job pass failed: %s", exc)
            return 0

    def _end_lost_runs_once(self) -> int:
        if self.claims is not None:
            return 0  # durable: the claims put the jobs back (_recover_claims)
        runtime = self.runtime
        lease = runtime.config.consumer.lease
        silent = {info["id"] for info in runtime.control.workers()
                  if info["worker_type"] == "huey_consumer" and info["heartbeat_age"] >= lease
                  and info["id"] != self.name}
        if not silent:
            return 0
        from tq.models import Job
        runtime.history_db()
        now = time.time()
        ended = 0
        rows = Job.select().where((Job.queue == self.queue) & (Job.state == "running"))
        for row in rows:
            worker = row.worker or ""
            consumer = worker.rsplit("/", 1)[0]
            if consumer not in silent:
                continue
            failure = records.error("WorkerLost", f"huey_consumer {consumer} stopped "
                                    "heartbeating mid-job; Huey does not put the job back "
                                    "(tq.attach(huey, durable=True) would)")
            attempt = row.attempts or 1
            job = records.job(
                row.id, "failed", attempt, queue=self.queue, task=row.task or "",
                args=row.args or "[]", kwargs=row.kwargs or "{}", priority=row.priority or 0,
                max_retries=row.max_retries, enqueued_at=row.enqueued_at,
                requeued_from=row.requeued_from,
                updated_at=now, started_at=row.started_at, finished_at=now, worker=worker,
                failure=failure)
            runtime.writer.record(dict(job))
            runtime.writer.record(dict(records.attempt_ended(
                row.id, attempt, worker, row.started_at, now, "lost", failure)))
            logger.warning("job %s (%s): %s", row.id, self.queue, failure["error_message"])
            ended += 1
        return ended

    def _on_post_execute(self, task: Any, value: Any, exception: BaseException | None) -> None:
        # Huey's complete signal does not carry the return value; its post-execute
        # hook, run just before it in the same thread, does. History keeps a value
        # only when it is exactly JSON and within [history] result_limit; Huey's own
        # result store (`.get()`) keeps every value, as without tq.
        if exception is not None or value is None:
            return
        try:
            self._results[task.id] = records.result_json(
                value, self.runtime.config.history.result_limit)
        except records.ResultRefused:
            pass

    def _rollup_loop(self) -> None:
        # The summaries (tq stats, the console's charts) are rolled up by a tq
        # consumer's scheduler; an app served only by huey_consumer has none, so
        # its consumer rolls up on [history] rollup_every, in a thread of its own
        # (a slow roll-up never delays a heartbeat). The roll-up's own lease keeps
        # any number of consumers, tq's and Huey's, from running two at once.
        from tq import summaries
        from tq.schedule import parse_schedule
        every = self.runtime.config.history.rollup_every
        if every == "off":
            return
        schedule = parse_schedule(every)
        while True:  # a daemon thread: it ends with the process
            due = schedule.next_run()
            if due is None:
                return
            time.sleep(max(0.0, due - time.time()))
            try:
                summaries.rollup(self.runtime)
                summaries.prune(self.runtime)
            except Exception as exc:
                logger.warning("tq: roll-up failed (%s); trying again at the next", exc)

    # --- signals ----------------------------------------------------------------------
    def _on_signal(self, signal: str, task: Any, *args: Any, **kwargs: Any) -> None:
        try:
            built = self._records_for(signal, task, *args)
            if not built:
                return
            if signal == S.SIGNAL_ENQUEUED:
                self._publish(built)
            else:
                writer = self.runtime.writer
                for record in built:
                    writer.record(dict(record))
        except Exception:
            logger.exception("tq: could not record %s of job %s", signal,
                             getattr(task, "id", "?"))

    def _publish(self, built: list[Record]) -> None:
        runtime = self.runtime
        try:
            sealed = [runtime.records.seal(record) for record in built]
            storage = next(iter(runtime.queues.values())).storage
            storage.schedule_many([], records=sealed)  # no message: the records alone
        except Exception as exc:
            logger.debug("outbox unreachable (%s): record kept by this process", exc)
            for record in built:
                runtime.writer.record(dict(record))

    def _max_retries(self, task: Any) -> int:
        return int(getattr(type(task), "default_retries", 0) or 0)

    def attempts_started(self, task: Any) -> int:
        """Attempts started so far: counted here, else from the retries left."""
        counted = self._attempts.get(task.id)
        if counted is not None:
            return counted
        return (max(0, self._max_retries(task) - (task.retries or 0))
                + self._unfinished.get(task.id, 0))

    def _arguments(self, task: Any) -> tuple[str, str]:
        encoded = self._encoded.get(task.id)
        if encoded is None:
            # No arguments, the common case, without the encoder (what it would say).
            args, kwargs = task.args, task.kwargs
            empty = args is None or (not args and isinstance(args, (tuple, list)))
            encoded = ("[]" if empty else _json_or_repr(_listed(args)),
                       _json_or_repr(kwargs) if kwargs else "{}")
        return encoded

    def job(self, task: Any, state: str, attempt: int, **columns: Any) -> records.JobRecord:
        args, kwargs = self._arguments(task)
        return records.job(
            task.id, state, attempt, queue=self.queue,
            task=self.huey._registry.task_to_string(type(task)),
            args=args, kwargs=kwargs,
            priority=task.priority or 0, max_retries=self._max_retries(task),
            enqueued_at=columns.pop("enqueued_at", None),
            requeued_from=self.requeued_from.pop(task.id, None) if state == "queued" else None,
            updated_at=time.time(), **columns)

    def _records_for(self, signal: str, task: Any, *args: Any) -> list[Record]:
        now = time.time()
        if signal == S.SIGNAL_ENQUEUED:
            attempt = self.attempts_started(task)
            if attempt:  # a retry re-enqueued by Huey: the job stays `retrying`
                return []
            eta = _timestamp(task.eta, self.huey.utc)
            if eta is not None and eta > now:  # .schedule(): due later
                return [self.job(task, "scheduled", 0, eta=eta, enqueued_at=now)]
            return [self.job(task, "queued", 0, enqueued_at=now)]
        if signal == S.SIGNAL_SCHEDULED:
            attempt = self.attempts_started(task)
            state = "retrying" if attempt else "scheduled"
            return [self.job(task, state, attempt, eta=_timestamp(task.eta, self.huey.utc),
                             enqueued_at=None if attempt else now)]
        if signal == S.SIGNAL_EXECUTING:
            attempt = self.attempts_started(task) + 1
            self._attempts[task.id] = attempt
            worker = f"{self.runtime.worker_name()}/{threading.current_thread().name}"
            self._running[task.id] = (now, worker)
            self._errors.pop(task.id, None)
            self._encoded[task.id] = self._arguments(task)
            return [self.job(task, "running", attempt, started_at=now, worker=worker),
                    records.attempt_started(task.id, attempt, worker, now)]
        if signal in (S.SIGNAL_ERROR, S.SIGNAL_TIMEOUT, S.SIGNAL_LOCKED,
                      S.SIGNAL_RATE_LIMITED, S.SIGNAL_CANCELED):
            exc = args[0] if args else sys.exc_info()[1]
            kind = {S.SIGNAL_TIMEOUT: "TaskTimeout", S.SIGNAL_LOCKED: "TaskLocked",
                    S.SIGNAL_RATE_LIMITED: "RateLimited",
                    S.SIGNAL_CANCELED: "Canceled"}.get(signal)
            message = exception_text(exc) if exc is not None else signal
            self._errors[task.id] = records.error(kind or type(exc).__name__, message,
                                                  traceback.format_exc()
                                                  if exc is not None else "")
            if task.retries:
                return []  # SIGNAL_RETRYING follows
            return self._outcome(task, "canceled" if signal == S.SIGNAL_CANCELED
                                 else "failed", now)
        if signal == S.SIGNAL_RETRYING:
            self._errors.setdefault(task.id, records.error("Retry",
                                                           "the task asked to be retried"))
            return self._outcome(task, "retrying", now)
        if signal == S.SIGNAL_COMPLETE:
            self._errors[task.id] = records.no_error()
            return self._outcome(task, "succeeded", now, self._results.pop(task.id, None))
        if signal == S.SIGNAL_INTERRUPTED:
            if self._put_back_interrupted(task):
                self._errors[task.id] = records.error("Interrupted", "huey_consumer "
                                                      "stopped; the job is back on its queue")
                return self._outcome(task, "retrying", now, outcome="interrupted")
            self._errors[task.id] = records.error("Interrupted", "huey_consumer stopped; "
                                                  "Huey does not put the job back")
            return self._outcome(task, "interrupted", now)
        if signal == S.SIGNAL_REVOKED:
            return [self.job(task, "canceled", self.attempts_started(task), finished_at=now,
                             failure=records.error("Revoked", "revoked before it could run",
                                                   None))]
        if signal == S.SIGNAL_EXPIRED:
            return [self.job(task, "expired", self.attempts_started(task), finished_at=now,
                             failure=records.error("Expired", "expired before it could run",
                                                   None))]
        return []

    def _outcome(self, task: Any, state: str, now: float, result: str | None = None,
                 outcome: records.Outcome | None = None) -> list[Record]:
        attempt = self._attempts.get(task.id, self.attempts_started(task))
        started, worker = self._running.pop(task.id, (None, None))
        failure = self._errors.pop(task.id, None)
        final = state != "retrying"
        if final:
            self._attempts.pop(task.id, None)
            self._unfinished.pop(task.id, None)
        if outcome is None:
            outcome = {"succeeded": "succeeded", "failed": "failed",  # type: ignore[assignment]
                       "canceled": "canceled", "retrying": "failed",
                       "interrupted": "interrupted"}[state]
        assert outcome is not None
        job_state = "failed" if state == "interrupted" else state  # Huey does not put it back
        job = self.job(task, job_state, attempt, started_at=started,
                       finished_at=now if final else None, worker=worker, failure=failure,
                       result=result)
        self._encoded.pop(task.id, None)  # a retry encodes them again when it starts
        return [job, records.attempt_ended(task.id, attempt, worker, started, now, outcome,
                                           failure)]


# --- the apps named in [huey] apps, for the console and the CLI --------------------

_apps: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def apps(runtime: Runtime) -> dict[str, Huey]:
    """The Huey apps of `[huey] apps` by queue name (the app's Huey name),
    imported once per runtime and attached to it. Importing them runs the
    operator's own code, as `huey_consumer app.huey` does; a name that does
    not import, is not a Huey, or reuses a tq queue's name is one ConfigError
    line."""
    found = _apps.get(runtime)
    if found is not None:
        return found
    from huey import Huey as HueyClass

    from tq.config import ConfigError
    from tq.format import first_line
    found = {}
    for spec in runtime.config.huey_apps:
        module_name, _, attribute = spec.partition(":")
        shown = spec if len(spec) <= 200 else spec[:200] + "..."
        try:
            huey = getattr(_import_app_module(module_name), attribute)
        except Exception as exc:
            raise ConfigError(f"[huey] apps: cannot load {shown}: {first_line(exc)[:300]}") from None
        if not isinstance(huey, HueyClass):
            raise ConfigError(f"[huey] apps: {shown} is a {type(huey).__name__}, not a Huey")
        if huey.name in runtime.queues or huey.name in found:
            raise ConfigError(f"[huey] apps: {shown}: queue name {huey.name!r} is taken "
                              "(a tq queue or another app)")
        attach(huey, runtime=runtime)
        found[huey.name] = huey
    _apps[runtime] = found
    return found


def _import_app_module(name: str) -> Any:
    """Import an app's module as `huey_consumer app.huey` does: as it is, else,
    when it is not found, with the current directory on sys.path (huey_consumer's
    own fallback), so a name that works for the consumer works for tq."""
    import importlib
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        here = os.getcwd()
        if here in sys.path or exc.name is None or not name.startswith(exc.name):
            raise
        sys.path.insert(0, here)
        return importlib.import_module(name)


def depths(huey: Huey) -> dict[str, int]:
    """An attached app's queue depths, read from its own storage without
    decoding a message (Huey's Redis list, priority zset or SQLite tables).
    Huey keeps no record of running jobs: `running` is 0 (history says which
    run), except for a durable app, whose claims are its messages being run."""
    storage = huey.storage
    found = attachment(huey)
    claims = found._active_claims() if found is not None else None
    return {"queued": int(storage.queue_size()), "scheduled": int(storage.schedule_size()),
            "running": int(storage.conn.hlen(claims.claims_key)) if claims else 0,
            "held": 0}
