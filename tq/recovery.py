"""At-least-once: put back jobs whose consumer died while running them.

Every claimed job has an in-flight record in the queue backend, written in the
same atomic step that took it off the queue (storage.claim). A record whose
consumer has not heartbeated for `[consumer] lease` seconds belongs to a dead
consumer: a live consumer puts the job back on its queue as a new attempt, or,
after `lost_retries` losses of the same job, ends it `failed` ("worker lost")
so a job that kills its worker cannot loop forever. The put-back is atomic
(storage.put_back), so of two consumers recovering the same record one wins.
A job whose consumer is alive is never taken over.

The window: a lost job is noticed within lease + heartbeat seconds (17 s with
the defaults) of its consumer's death.
"""
from __future__ import annotations

import logging
import time

from tq.models import state_seq

logger = logging.getLogger("tq.recovery")


def alive_workers(runtime, now: float | None = None) -> set[str]:
    now = time.time() if now is None else now
    lease = runtime.config.consumer["lease"]
    return {info["id"] for info in runtime.control.workers() if now - info["beat"] < lease}


def recover_lost(runtime, now: float | None = None) -> int:
    """One recovery pass over all queues; returns how many jobs were recovered."""
    now = time.time() if now is None else now
    lease = runtime.config.consumer["lease"]
    workers = {info["id"]: info for info in runtime.control.workers()}
    alive = {name for name, info in workers.items() if now - info["beat"] < lease}
    recovered = 0
    for huey in runtime.queues.values():
        for record in huey.storage.inflight():
            if record.worker in alive:
                continue
            if record.worker not in workers and now - record.taken < lease:
                continue  # a claimer we have not heard of yet: give it one lease
            recovered += _recover(runtime, huey, record, now, reason=(
                f"consumer {record.worker} stopped heartbeating"))
    for name, info in workers.items():
        if now - info["beat"] > 3600:
            runtime.control.forget_worker(name)
    if runtime.consumer_pid is not None:
        adopt_outboxes(runtime, alive | {runtime.worker_name()})
    return recovered


def put_back_own(runtime, worker: str) -> int:
    """At shutdown: jobs this consumer still runs go back on their queues now,
    rather than waiting a lease for another consumer to notice."""
    count = 0
    for huey in runtime.queues.values():
        for record in huey.storage.inflight():
            if record.worker == worker:
                count += _recover(runtime, huey, record, time.time(),
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
    attempt = task.tq_attempt + 1  # the attempt that was running when the worker died
    losses = runtime.control.count_loss(task.id) if counts_as_loss else 0
    give_up = counts_as_loss and losses > runtime.config.consumer["lost_retries"]
    state = "failed" if give_up else "retrying"
    message = f"worker lost {losses} times; last: {reason}" if give_up else reason
    error = {"error_type": "WorkerLost", "error_message": message, "traceback": ""}
    job = huey.job_record(task, state, **error, finished_at=now if give_up else None)
    job["attempts"], job["seq"] = attempt, state_seq(state, attempt)
    lost = {"kind": "attempt", "job_id": task.id, "attempt": attempt, "worker": record.worker,
            "started_at": record.taken, "finished_at": now, "outcome": "lost", **error}
    # The records travel with the put-back, into this consumer's durable outbox.
    records = [runtime.records.seal(job), runtime.records.seal(lost)]
    owner = runtime.worker_name()
    if give_up:
        done = storage.put_back(record.token, drop=True, outbox=owner, records=records)
    else:
        task.tq_attempt = attempt
        done = storage.put_back(record.token, data=huey.serialize_task(task),
                                priority=record.priority, outbox=owner, records=records)
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
