"""Queue operations on both backends: priorities, retries, pause, cancel, requeue,
periodic, timeouts, status, signing, and recovery of jobs whose consumer died."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import tq
from tq import ops
from tq.cli import main
from tq.models import Attempt, Job
from tq.queries import job_detail, list_workers, queue_depths, status
from tq.recovery import recover_lost
from tq.where import FilterError, parse

from conftest import Polls, job_states, wait_for, wait_for_states

MODULES = "tq.tasks.demo,tq.tasks.events,testtasks"
TESTS_DIR = str(Path(__file__).parent)


def consumer_process(backend, *args: str, **env: str) -> subprocess.Popen:
    environment = {**os.environ, **backend.env, "TQ_TASKS_MODULES": MODULES,
                   "PYTHONPATH": TESTS_DIR, **env}
    return subprocess.Popen([sys.executable, "-m", "tq.cli", "consumer", *args],
                            env=environment, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def started_order(ids: list[str]) -> list[str]:
    rows = (Attempt.select(Attempt.job_id).where(Attempt.job_id.in_(ids))
            .order_by(Attempt.started_at))
    return [row.job_id for row in rows]


def test_priorities_then_fifo(backend, start_consumer):
    runtime = backend.runtime(TQ_TASKS_MODULES=MODULES)
    ops.pause(runtime, "default")
    specs = [{"task": "testtasks.record_start", "args": [i], "priority": i % 10}
             for i in range(100)]
    ids = tq.submit_many(specs, runtime=runtime)
    polls = Polls(runtime.queue("default"))
    start_consumer(runtime, workers=1, queues=["default"])
    # Paused: the consumer looks at the queue and takes nothing (so the order
    # below is the queue's, not the order the submit happened to land in).
    assert not any(polls.wait(polls.mark(), claims=3))
    assert queue_depths(runtime, "default")["queued"] == 100
    ops.resume(runtime, "default")
    wait_for_states(runtime, ids)
    order = started_order(ids)
    expected = sorted(range(100), key=lambda i: (-(i % 10), i))
    assert [ids.index(job_id) for job_id in order] == expected


class LongWaits:
    """Makes every wait for work an idle worker begins last `seconds` (as if
    its back-off had reached a long poll_max), and tells who is waiting now.
    Wraps the queue's storage.wait_for_work, which TqWorker.sleep calls; the
    wait itself (Redis's blocking pop on the wake-up list) is unchanged."""

    def __init__(self, storage, seconds: float) -> None:
        self._lock = threading.Lock()
        self._waiting: set[int] = set()
        real = storage.wait_for_work

        def wait_for_work(timeout: float) -> None:
            me = threading.get_ident()
            with self._lock:
                self._waiting.add(me)
            try:
                real(seconds)
            finally:
                with self._lock:
                    self._waiting.discard(me)
        storage.wait_for_work = wait_for_work

    def waiting(self) -> int:
        with self._lock:
            return len(self._waiting)


def test_idle_redis_worker_takes_a_new_job_at_once_not_at_its_next_poll(redis_backend,
                                                                          start_consumer):
    """An idle worker in a long wait (150 s) starts a job (a single submit, a
    batch, an ingest-style deduped batch, a resumed queue) as soon as it
    arrives: each is done within 60 s, which a worker that waited out its poll
    could not do."""
    # The wait is capped at half the socket timeout (storage.wait_for_work):
    # 300 s lets it last the 150 s asked here.
    runtime = redis_backend.runtime(TQ_CONSUMER_POLL_MAX="300",
                                    TQ_QUEUE_CONNECT_TIMEOUT="300")
    waits = LongWaits(runtime.queue("default").storage, seconds=150)
    polls = Polls(runtime.queue("default"))
    start_consumer(runtime, workers=2, queues=["default"])

    def paused_submit_then_resume() -> list[str]:
        ops.pause(runtime, "default")
        # Marked before the submit: the woken worker may claim before a mark taken
        # after it, and then sleep out its long wait with no claim left to see.
        mark = polls.mark()
        job_id = tq.submit("tq.tasks.demo.echo", "after resume", runtime=runtime)
        # The submit woke a worker; paused, its claim took nothing.
        assert not any(polls.wait(mark, claims=1))
        assert job_states(runtime, [job_id]) == {job_id: "queued"}
        wait_for(lambda: waits.waiting() == 2, message="both workers back in a long wait")
        ops.resume(runtime, "default")
        return [job_id]

    for submit in (lambda: [tq.submit("tq.tasks.demo.echo", 1, runtime=runtime)],
                   lambda: tq.submit_many([{"task": "tq.tasks.demo.echo"}] * 3,
                                          runtime=runtime),
                   lambda: tq.submit_many([{"task": "tq.tasks.demo.echo", "id": "once-1"}],
                                          runtime=runtime, dedupe=True),
                   paused_submit_then_resume):
        wait_for(lambda: waits.waiting() == 2, message="both workers in a long wait")
        ids = submit()
        wait_for_states(runtime, ids, timeout=60)


def test_retries_then_success_records_every_attempt(backend, start_consumer):
    runtime = backend.runtime(TQ_TASKS_MODULES=MODULES)
    job_id = tq.submit("testtasks.fail_twice_then_succeed", runtime=runtime)
    start_consumer(runtime, workers=1)
    wait_for_states(runtime, [job_id])
    job = job_detail(runtime, job_id)
    assert job["attempts"] == 3
    assert [(a["attempt"], a["outcome"]) for a in job["attempt_log"]] == [
        (1, "failed"), (2, "failed"), (3, "succeeded")]
    assert job["attempt_log"][0]["error_message"] == "failure number 1"


def test_exhausted_job_fails_then_requeue_runs_it_again(backend, start_consumer):
    runtime = backend.runtime(TQ_TASKS_MODULES=MODULES)
    job_id = tq.submit("testtasks.always_fail", runtime=runtime)
    start_consumer(runtime, workers=1)
    wait_for_states(runtime, [job_id], states=("failed",))
    job = job_detail(runtime, job_id)
    assert (job["attempts"], job["error_type"]) == (2, "ValueError")
    assert len(job["attempt_log"]) == 2
    result = ops.requeue(runtime, [job_id])
    new_id = result.new_ids[job_id]
    wait_for_states(runtime, [new_id], states=("failed",))
    new = job_detail(runtime, new_id)
    assert new["requeued_from"] == job_id and new["attempts"] == 2
    assert job_detail(runtime, job_id)["requeued_to"] == [new_id]


def test_requeue_in_bulk_by_filter(backend, start_consumer, tq_env, capsys):
    runtime = backend.runtime(TQ_TASKS_MODULES=MODULES)
    failed = tq.submit_many([{"task": "tq.tasks.demo.fail", "queue": "reports"}
                             for _ in range(5)], runtime=runtime)
    tq.submit("tq.tasks.demo.fail", queue="events", runtime=runtime)
    start_consumer(runtime, workers=2)
    wait_for(lambda: runtime.flush_history() and
             Job.select().where(Job.state == "failed").count() == 6, message="6 failures")
    assert main(["requeue", "--state", "failed", "--queue", "reports"]) == 0
    assert "requeued 5 jobs" in capsys.readouterr().out
    runtime.flush_history()
    assert Job.select().where(Job.requeued_from.in_(failed)).count() == 5


def test_pause_holds_across_processes_and_resume_runs(backend, tmp_path):
    runtime = backend.runtime(TQ_TASKS_MODULES=MODULES)
    consumer = consumer_process(backend, "--queue", "default", "-w", "2")
    try:
        gate = tmp_path / "gate"
        first = tq.submit("testtasks.wait_for_file", str(gate), runtime=runtime)
        wait_for_states(runtime, [first], states=("running",))
        ops.pause(runtime, "default")
        ids = tq.submit_many([{"task": "tq.tasks.demo.echo", "args": [i]} for i in range(5)],
                             runtime=runtime)
        gate.touch()
        # A worker drops a finished job's in-flight record in the same atomic step
        # as its next claim (queues.settle_with_claims): once `first` is no longer
        # running, that worker has claimed again, after the pause, and took nothing.
        wait_for(lambda: queue_depths(runtime, "default")["running"] == 0,
                 message="the claim after the first job")
        assert queue_depths(runtime, "default")["queued"] == 5
        # The consumer's writer may hold the submits' records in a batch it has not
        # written yet (this process then has none left to write): wait for history.
        assert set(wait_for_states(runtime, ids, states=("queued",)).values()) == {"queued"}
        assert status(runtime)["queues"]["default"]["paused"] is True
        ops.resume(runtime, "default")
        wait_for_states(runtime, ids)
    finally:
        consumer.send_signal(signal.SIGTERM)
        assert consumer.wait(timeout=20) == 0


def test_pause_one_task_type_holds_it_and_lets_others_run(backend, start_consumer):
    runtime = backend.runtime()
    ops.pause(runtime, "default", task="tq.tasks.demo.sleep")
    held = tq.submit("tq.tasks.demo.sleep", 0.01, runtime=runtime)
    other = tq.submit("tq.tasks.demo.echo", runtime=runtime)
    start_consumer(runtime, workers=1, queues=["default"])
    wait_for_states(runtime, [other])
    wait_for(lambda: queue_depths(runtime, "default")["held"] == 1, message="job held aside")
    assert job_states(runtime, [held]) == {held: "queued"}
    assert ops.resume(runtime, "default", task="tq.tasks.demo.sleep") == 1
    wait_for_states(runtime, [held])


def test_cancel_scheduled_job_never_runs(backend, start_consumer):
    runtime = backend.runtime()
    # Due in 4 s: long enough that the cancel below certainly comes first, even on a
    # busy machine. The marker is due half a second later on the same queue, so once
    # it has run the scheduler has been past the canceled job's due time.
    job_id = tq.submit("tq.tasks.demo.echo", delay=4, runtime=runtime)
    marker = tq.submit("tq.tasks.demo.echo", delay=4.5, runtime=runtime)
    assert job_states(runtime, [job_id]) == {job_id: "scheduled"}
    start_consumer(runtime, workers=1)
    result = ops.cancel(runtime, [job_id])
    assert result.canceled == [job_id]
    wait_for_states(runtime, [marker], timeout=30)
    assert job_states(runtime, [job_id]) == {job_id: "canceled"}
    assert Attempt.select().where(Attempt.job_id == job_id).count() == 0
    assert queue_depths(runtime, "default")["scheduled"] == 0


def test_cancel_running_cooperative_job(backend, start_consumer):
    runtime = backend.runtime()
    job_id = tq.submit("tq.tasks.demo.sleep", 30.0, runtime=runtime)
    start_consumer(runtime, workers=1)
    wait_for_states(runtime, [job_id], states=("running",))
    result = ops.cancel(runtime, [job_id])
    assert result.requested == [job_id]
    wait_for_states(runtime, [job_id], states=("canceled",), timeout=10)
    assert job_detail(runtime, job_id)["attempt_log"][0]["outcome"] == "canceled"


def test_cancel_finished_job_changes_nothing(backend, start_consumer, tq_env, capsys):
    runtime = backend.runtime()
    job_id = tq.submit("tq.tasks.demo.echo", runtime=runtime)
    start_consumer(runtime, workers=1)
    wait_for_states(runtime, [job_id])
    assert main(["cancel", job_id]) == 2
    assert "already finished" in capsys.readouterr().err
    assert job_states(runtime, [job_id]) == {job_id: "succeeded"}


def test_expired_job_ends_expired(backend, start_consumer):
    runtime = backend.runtime()
    ops.pause(runtime, "default")
    job_id = tq.submit("tq.tasks.demo.echo", expires=0.2, runtime=runtime)
    expiry = time.time() + 0.2  # no earlier than the one submit resolved
    polls = Polls(runtime.queue("default"))
    start_consumer(runtime, workers=1)
    assert not any(polls.wait(polls.mark()))  # the consumer looks; paused, takes nothing
    wait_for(lambda: time.time() > expiry, message="the job's expiry to pass")
    ops.resume(runtime, "default")
    wait_for_states(runtime, [job_id], states=("expired",))


def test_periodic_tick_runs_once_with_two_schedulers(backend, start_consumer):
    env = {"TQ_PERIODIC_PING": "@every 1s tq.tasks.demo.echo"}
    first, second = backend.runtime(**env), backend.runtime(**env)
    start_consumer(first, workers=1)
    start_consumer(second, workers=1)

    def ticks() -> list[int]:
        first.flush_history()
        rows = Job.select(Job.enqueued_at).where(Job.task == "tq.tasks.demo.echo")
        return [int(row.enqueued_at) for row in rows]

    # Three ticks, however slow the machine: then no second of them twice.
    wait_for(lambda: len(ticks()) >= 3, timeout=30, message="three periodic ticks")
    seconds = ticks()
    assert len(seconds) == len(set(seconds)), "a tick was enqueued twice"


def test_periodic_lists_next_run(backend, tq_env, monkeypatch, capsys):
    monkeypatch.setenv("TQ_PERIODIC_NIGHTLY", "0 3 * * * tq.tasks.demo.echo @reports")
    assert main(["periodic", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["name"], row["queue"], row["schedule"]) == ("nightly", "reports", "0 3 * * *")
    assert time.gmtime(row["next_run"]).tm_hour == 3


def test_timeout_in_process_worker_is_recorded(backend, start_consumer):
    runtime = backend.runtime()
    job_id = tq.submit("tq.tasks.demo.slow", 30.0, runtime=runtime)
    start_consumer(runtime, workers=1, worker_type="process", queues=["default"])
    # A busy machine may be slow to fork the worker and to stop it: the bound
    # that matters is that the job was cut short of its 30 s by its 1 s timeout.
    wait_for_states(runtime, [job_id], states=("failed",), timeout=60)
    job = job_detail(runtime, job_id)
    assert job["error_type"] == "TaskTimeout"
    assert job["finished_at"] - job["started_at"] < 30


def test_status_counts_match_what_was_submitted(backend, start_consumer, tq_env, capsys):
    runtime = backend.runtime()
    ok = tq.submit_many([{"task": "tq.tasks.demo.echo"} for _ in range(3)], runtime=runtime)
    bad = tq.submit_many([{"task": "tq.tasks.demo.fail"} for _ in range(2)], runtime=runtime)
    tq.submit("tq.tasks.demo.echo", delay=300, runtime=runtime)
    tq.submit("tq.tasks.demo.echo", queue="reports", runtime=runtime)
    start_consumer(runtime, workers=2, queues=["default"])
    wait_for_states(runtime, ok)
    wait_for_states(runtime, bad, states=("failed",))
    assert main(["status", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    default, reports = data["queues"]["default"], data["queues"]["reports"]
    assert (default["queued"], default["scheduled"], default["running"]) == (0, 1, 0)
    assert default["history"]["succeeded"] == 3 and default["history"]["failed"] == 2
    assert default["succeeded_last_minute"] == 3 and default["failed_last_hour"] == 2
    assert reports["queued"] == 1 and reports["oldest_queued_age"] is not None
    assert data["workers_alive"] == 1


def test_workers_register_and_leave(backend, start_consumer):
    runtime = backend.runtime()
    consumer = start_consumer(runtime, workers=3, queues=["default", "events"])
    [worker] = list_workers(runtime)
    assert worker["alive"] and worker["workers"] == 3
    assert worker["queues"] == ["default", "events"] and worker["pid"] == os.getpid()
    consumer.stop()
    assert list_workers(backend.runtime()) == []


def test_killed_consumer_job_is_recovered_by_another(backend, start_consumer):
    env = {"TQ_CONSUMER_LEASE": "2"}
    runtime = backend.runtime(**env)
    job_id = tq.submit("tq.tasks.demo.sleep", 2.0, runtime=runtime)
    victim = consumer_process(backend, "-w", "1", "--queue", "default", **env)
    try:
        wait_for_states(runtime, [job_id], states=("running",))
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
    finally:
        victim.kill()
    assert queue_depths(runtime, "default")["running"] == 1  # the durable in-flight record
    start_consumer(runtime, workers=1, queues=["default"])
    wait_for_states(runtime, [job_id], timeout=30)
    job = job_detail(runtime, job_id)
    assert [(a["attempt"], a["outcome"]) for a in job["attempt_log"]] == [
        (1, "lost"), (2, "succeeded")]
    assert queue_depths(runtime, "default")["running"] == 0


def test_live_consumer_job_is_never_taken_over(backend, start_consumer, tmp_path):
    """A job runs for three leases while its consumer heartbeats: a recovery
    pass after each heartbeat (by another process's settings: no claim of its
    own to protect) leaves it alone."""
    env = {"TQ_CONSUMER_LEASE": "1", "TQ_CONSUMER_HEARTBEAT": "0.3"}
    runtime = backend.runtime(TQ_TASKS_MODULES=MODULES, **env)
    gate = tmp_path / "gate"
    job_id = tq.submit("testtasks.wait_for_file", str(gate), runtime=runtime)
    start_consumer(runtime, workers=1)
    wait_for_states(runtime, [job_id], states=("running",))
    observer = backend.runtime(TQ_TASKS_MODULES=MODULES, **env)
    beats: list[float] = []

    def next_beat() -> bool:
        [worker] = observer.control.workers()
        if beats and worker["beat"] <= beats[-1]:
            return False
        beats.append(worker["beat"])
        return True

    while len(beats) < 2 or beats[-1] - beats[0] < 3 * 1:  # three leases of 1 s
        assert recover_lost(observer) == 0
        wait_for(next_beat, message="the consumer's next heartbeat")
    gate.touch()
    wait_for_states(runtime, [job_id])
    assert len(job_detail(runtime, job_id)["attempt_log"]) == 1


def test_forged_and_garbage_messages_are_moved_aside(backend, start_consumer):
    runtime = backend.runtime(TQ_SECRET="s3cret")
    storage = runtime.queue("default").storage
    unsigned = json.dumps({"id": "forged", "name": "tq.tasks.demo.echo", "args": [],
                           "kwargs": {}}).encode()
    storage.enqueue_many([(unsigned, 0), (b"\x80\x04garbage\xff", 0)])
    good = tq.submit("tq.tasks.demo.echo", runtime=runtime)
    start_consumer(runtime, workers=1)
    wait_for_states(runtime, [good])
    quarantined = runtime.control.quarantined()
    reasons = sorted(entry["reason"] for entry in quarantined)
    assert len(reasons) == 2
    assert any("unsigned message refused" in reason for reason in reasons)
    assert Job.select().where(Job.id == "forged").count() == 0


def test_filter_language_selects_jobs(backend):
    runtime = backend.runtime()
    tq.submit("tq.tasks.demo.echo", customer=42, runtime=runtime)
    tq.submit("tq.tasks.demo.echo", customer=7, queue="events", runtime=runtime)
    from tq.queries import catch_up, count_jobs
    catch_up(runtime)  # what a read verb and the console's reads do first
    assert count_jobs(runtime, parse("args:customer=42")) == 1
    assert count_jobs(runtime, parse("queue:events state:queued")) == 1
    assert count_jobs(runtime, parse("echo since:1h")) == 2
    assert count_jobs(runtime, parse("state:failed")) == 0


@pytest.mark.parametrize("text", ["tsk:echo", "State:failed", "queue:q tsk:x", "_x:1",
                                  "error:E nosuchkey:[/]"])
def test_an_unknown_filter_key_is_an_error_not_a_bare_word(text):
    with pytest.raises(FilterError, match="unknown filter key"):
        parse(text)


@pytest.mark.parametrize("text", ["web-1:4242", "12:30", "a.b:c", ":y", "plain"])
def test_colon_words_that_are_not_key_like_stay_bare_words(text):
    assert parse(text).words == (text,)


def test_cli_where_refuses_an_unknown_key_in_one_line(backend, tq_env, capsys):
    backend.runtime()
    assert main(["jobs", "--where", "tsk:echo"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown filter key 'tsk'" in err
    assert "Traceback" not in err and "FilterError" not in err


def test_purge_deletes_only_dead_letters(backend, start_consumer, tq_env, capsys):
    runtime = backend.runtime()
    bad = tq.submit("tq.tasks.demo.fail", runtime=runtime)
    good = tq.submit("tq.tasks.demo.echo", runtime=runtime)
    start_consumer(runtime, workers=1)
    wait_for_states(runtime, [bad], states=("failed",))
    wait_for_states(runtime, [good])
    assert main(["purge", "--state", "succeeded"]) == 2
    assert "dead letters only" in capsys.readouterr().err
    assert main(["purge", "--state", "failed"]) == 0
    assert job_states(runtime, [bad, good]) == {good: "succeeded"}


def test_timeout_in_thread_worker_stops_a_cooperative_job(backend, start_consumer):
    runtime = backend.runtime()
    job_id = tq.submit("tq.tasks.demo.sleep", 30.0, timeout=1, runtime=runtime)
    start_consumer(runtime, workers=1, queues=["default"])
    wait_for_states(runtime, [job_id], states=("failed",), timeout=15)
    assert job_detail(runtime, job_id)["error_type"] == "TaskTimeout"


def test_shutdown_while_paused_is_prompt(backend):
    runtime = backend.runtime()
    ops.pause(runtime, "default")
    tq.submit("tq.tasks.demo.echo", runtime=runtime)
    consumer = consumer_process(backend, "-w", "2")
    wait_for(lambda: list_workers(runtime), message="consumer to register")
    started = time.monotonic()
    consumer.send_signal(signal.SIGTERM)
    assert consumer.wait(timeout=10) == 0
    assert time.monotonic() - started < 5
    assert queue_depths(runtime, "default")["queued"] == 1
