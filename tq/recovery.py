"""At-least-once: put back jobs whose consumer died while running them.

Every claimed job has an in-flight record in the queue backend, written in the
same atomic step that took it off the queue (storage.claim). A record whose
consumer has not heartbeated for `[consumer] lease` seconds belongs to a dead
consumer: a live consumer puts the job back on its queue as a new attempt, or,
after `lost_retries` losses of the same job, ends it `failed` ("worker lost")
so a job that kills its worker cannot loop forever. The put-back is atomic
(storage.put_back), so of two consumers recovering the same record one wins,
and the job goes back where it was in line: its priority and its place ahead
of the jobs enqueued after it.

Invariants:
  - A heartbeat's age is judged by the queue backend's clock (the time it
    stamped on the heartbeat against its "now"), never by this host's clock
    against another host's: consumers whose clocks disagree are all alive.
  - Only tq consumers are recovered: a record is taken over only when its
    consumer registered (heartbeated) and then went silent. A record of
    anything else that claims through tq's storage (a stock `huey_consumer`
    serving a TqHuey, a script calling dequeue) is never taken over, since
    nothing says when that claimer is dead.
  - A consumer's registration is kept while it has in-flight records, so a
    silent consumer's jobs are recovered however long it has been silent.
  - A malformed in-flight entry (no claim wrote it) is moved aside to the
    quarantine, where it can be seen and requeued; it never stops the pass.

The window: a lost job is noticed within lease + heartbeat seconds (17 s with
the defaults) of its consumer's death.
"""
from __future__ import annotations

import logging
from dataclasses import replace

from tq import records
from tq.registry import set_meta, task_meta

logger = logging.getLogger("tq.recovery")
FORGET_AFTER = 3600  # seconds of silence before an idle dead consumer is forgotten


def recover_lost(runtime, now: float | None = None) -> int:
    """One recovery pass over all queues; returns how many jobs were recovered.
    `now` (default: this process's clock) only dates the history records."""
    now = runtime.clock() if now is None else now
    lease = runtime.config.consumer.lease
    workers = {info["id"]: info for info in runtime.control.workers()}
    alive = {name for name, info in workers.items() if info["heartbeat_age"] < lease}
    if runtime.consumer_pid is not None:
        alive.add(runtime.worker_name())  # this consumer, however late its own heartbeat
    busy: set[str] = set()
    recovered = 0
    for huey in runtime.queues.values():
        records, malformed = huey.storage.inflight_records()
        for entry in malformed:
            huey.storage.quarantine(entry.token, entry.data, entry.reason)
        for record in records:
            busy.add(record.worker)
            if record.worker in alive or record.worker not in workers:
                continue  # alive, or not a tq consumer: never taken over
            recovered += _recover(runtime, huey, record, now, reason=(
                f"consumer {record.worker} stopped heartbeating"))
    for name, info in workers.items():
        if info["heartbeat_age"] > FORGET_AFTER and name not in busy:
            runtime.control.forget_worker(name)
    if runtime.consumer_pid is not None:
        adopt_outboxes(runtime, alive)
    return recovered


def forget_if_idle(runtime, worker: str) -> bool:
    """Deregister `worker` unless it still has in-flight records (which then
    stay recoverable: see the invariants)."""
    for huey in runtime.queues.values():
        if any(record.worker == worker for record in huey.storage.inflight()):
            return False
    runtime.control.forget_worker(worker)
    return True


def put_back_own(runtime, worker: str) -> int:
    """At shutdown: jobs this consumer still runs go back on their queues now,
    rather than waiting a lease for another consumer to notice."""
    count = 0
    for huey in runtime.queues.values():
        for record in huey.storage.inflight():
            if record.worker == worker:
                count += _recover(runtime, huey, record, runtime.clock(),
                                  reason="consumer stopped before the job finished",
                                  counts_as_loss=False)
    return count


def _recover(runtime, huey, record, now: float, reason: str, counts_as_loss: bool = True) -> int:
    storage = huey.storage
    try:
        task = huey.deserialize_task(record.data)
    except Exception as exc:
        storage.quarantine(record.token, record.data, f"unreadable in-flight message: {exc}",
                           worker=record.worker)
        return 0
    attempt = task_meta(task).attempt + 1  # the attempt running when the worker died
    losses = runtime.control.count_loss(task.id) if counts_as_loss else 0
    give_up = counts_as_loss and losses > runtime.config.consumer.lost_retries
    state = "failed" if give_up else "retrying"
    message = f"worker lost {losses} times; last: {reason}" if give_up else reason
    error = records.error("WorkerLost", message)
    job = huey.job_record(task, state, attempt=attempt, failure=error,
                          finished_at=now if give_up else None)
    lost = records.attempt_ended(task.id, attempt, record.worker, record.taken, now, "lost",
                                 error)
    # The records travel with the put-back, into this consumer's durable outbox.
    sealed = [runtime.records.seal(job), runtime.records.seal(lost)]
    owner = runtime.worker_name()
    if give_up:
        done = storage.put_back(record.token, drop=True, outbox=owner, records=sealed)
    else:
        set_meta(task, replace(task_meta(task), attempt=attempt))
        # No priority given: the record's own score (and place) is kept.
        done = storage.put_back(record.token, data=huey.serialize_task(task),
                                outbox=owner, records=sealed)
    if done:
        logger.warning("job %s (%s): %s; %s", task.id, huey.queue, reason,
                       "ended failed" if give_up else "put back on the queue")
    return int(done)


def adopt_outboxes(runtime, alive: set[str]) -> int:
    """History records a dead consumer had not yet written: this consumer takes
    its outbox over and writes them."""
    adopted = 0
    me = runtime.worker_name()
    for owner in runtime.control.outbox_owners():
        base = owner.split("+")[0]  # an adopted outbox is named "<adopter>+<tag>"
        if base in alive or base == me:
            continue
        new_name = runtime.control.outbox_adopt(owner, me)
        if new_name is not None:
            runtime.writer.adopt_outbox(new_name)
            adopted += 1
    return adopted
