"""A consumer worker settles a finished job (in-flight record, outcome, revocation
flag) together with its next claim; these are the promises that must still hold."""
from __future__ import annotations

import tq
from tq import ops
from tq.models import Attempt
from tq.queries import queue_depths

from conftest import job_states, wait_for, wait_for_states


def attempts(runtime, ids) -> dict[str, int]:
    runtime.flush_history()
    counts = {job_id: 0 for job_id in ids}
    for row in Attempt.select(Attempt.job_id).where(Attempt.job_id.in_(list(ids))):
        counts[row.job_id] += 1
    return counts


def test_finished_jobs_leave_running_at_once_and_never_run_twice(backend, start_consumer):
    runtime = backend.runtime()
    ids = tq.submit_many([{"task": "tq.tasks.demo.echo", "args": [i]} for i in range(30)],
                         runtime=runtime)
    consumer = start_consumer(runtime, workers=2)
    wait_for_states(runtime, ids)
    # Still running, now idle: nothing may look in flight.
    wait_for(lambda: queue_depths(runtime, "default")["running"] == 0,
             message="finished jobs to leave the in-flight records")
    # Stopped while a job runs: the job finishes within the grace period and,
    # finished, must not be put back on the queue at shutdown.
    last = tq.submit("tq.tasks.demo.sleep", 1.0, runtime=runtime)
    wait_for_states(runtime, [last], states=("running",))
    consumer.stop()
    assert job_states(runtime, [last]) == {last: "succeeded"}
    assert queue_depths(runtime, "default") == {"queued": 0, "scheduled": 0, "running": 0,
                                                "held": 0}
    start_consumer(backend.runtime(), workers=1)
    # A job put back at shutdown would be queued ahead of this one, so once this
    # one is done the new consumer has had its chance to run it again.
    marker = tq.submit("tq.tasks.demo.echo", "after", runtime=runtime)
    wait_for_states(runtime, [marker])
    assert attempts(runtime, ids + [last]) == {job_id: 1 for job_id in ids + [last]}


def test_cancelled_queued_job_is_dropped_and_its_flag_cleared(backend, start_consumer):
    runtime = backend.runtime()
    ops.pause(runtime, "default")
    cancelled, kept = (tq.submit("tq.tasks.demo.echo", "x", runtime=runtime) for _ in range(2))
    assert ops.cancel(runtime, [cancelled]).canceled == [cancelled]
    ops.resume(runtime, "default")
    start_consumer(runtime, workers=1)
    wait_for_states(runtime, [kept])
    wait_for(lambda: queue_depths(runtime, "default")["queued"] == 0, message="queue drained")
    assert job_states(runtime, [cancelled]) == {cancelled: "canceled"}
    assert attempts(runtime, [cancelled]) == {cancelled: 0}
    storage = runtime.queue("default").storage
    wait_for(lambda: storage.result_store_size() == 0, message="revocation flag cleared")
    later = tq.submit("tq.tasks.demo.echo", "y", runtime=runtime)
    wait_for_states(runtime, [later])
