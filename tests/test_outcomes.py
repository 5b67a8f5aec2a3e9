"""Every outcome Huey can produce has history, and a consumer's children die with it.

A job that Huey refuses (a lock), drops (revoked), interrupts, or ends in a way
its signals do not announce (a pre-execute hook cancels it, sys.exit) ends in a
terminal or retrying state, never `running`; `.error()` handlers receive a
TaskError; arguments with datetimes are recorded; `tq up` and `tq consumer`
start and run jobs while the history database is down.
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from huey.exceptions import CancelExecution

import tq
from tq import ops
from tq.queries import job_detail, queue_depths
from tq.serializer import JsonSerializer, TaskError, dumps_json, loads_json

import outcome_tasks
from conftest import MYSQL_HOST, MYSQL_PORT, job_states, wait_for, wait_for_states
from proxy import CuttableProxy

MODULES = "tq.tasks.demo,tq.tasks.events,outcome_tasks"
TESTS_DIR = str(Path(__file__).resolve().parent)
TERMINAL_OR_RETRYING = ("succeeded", "failed", "canceled", "expired", "retrying")


def enqueue_with_huey(runtime, name: str, *args, on_error=None, **options) -> str:
    """Enqueue through Huey's own API (`task.error(...)`, `huey.enqueue`)."""
    huey = runtime.queue("default")
    task = huey._registry.string_to_task(name)(args=args, **options)
    if on_error is not None:
        handler_name, handler_args = on_error
        task.error(huey._registry.string_to_task(handler_name)(args=handler_args))
    huey.enqueue(task)
    return task.id


# --- arguments ----------------------------------------------------------------------

def test_datetime_arguments_are_recorded_and_requeued_as_sent(backend, start_consumer):
    runtime = backend.runtime(TQ_TASKS_MODULES=MODULES)
    when = datetime(2026, 1, 2, 3, 4, 5)
    submitted = tq.submit("outcome_tasks.echo_when", when, until=timedelta(seconds=90),
                          runtime=runtime)
    by_huey = enqueue_with_huey(runtime, "outcome_tasks.echo_when", when)
    start_consumer(runtime, workers=2, queues=["default"])
    wait_for_states(runtime, [submitted, by_huey], timeout=20)
    job = job_detail(runtime, submitted)
    assert job["args"] == [{"$dt": "2026-01-02T03:04:05"}]
    assert job["kwargs"] == {"until": {"$td": 90.0}}
    assert job_detail(runtime, by_huey)["args"] == [{"$dt": "2026-01-02T03:04:05"}]
    # A requeued job gets the same arguments, datetimes included.
    result = ops.requeue(runtime, [submitted])
    [again] = result.new_ids.values()
    wait_for_states(runtime, [again], timeout=20)
    assert job_detail(runtime, again)["args"] == job["args"]


@pytest.mark.parametrize("value", [
    datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999999), timedelta(days=-3),
    ValueError("x\x1b[31m[/]"), {"$dt": "not a date"}, {"$err": "forged"},
    {"$esc": ["$dt", 1]}, ["\u202e", "\x00", "$", '"$dt"'], {"nested": [[[{"$td": 1}]]]},
])
def test_tagged_arguments_round_trip(value):
    expected = TaskError.from_exception(value) if isinstance(value, Exception) else value
    assert loads_json(dumps_json(value)) == expected
    for secret in ("", "k"):
        serializer = JsonSerializer(secret)
        assert serializer.deserialize(serializer.serialize([value])) == [expected]


@pytest.mark.parametrize("text", [
    '{"$dt": 5}', '{"$dt": "2026-13-01"}', '{"$td": "x"}', '{"$td": 1e308}', '{"$td": true}',
    '{"$err": "boom"}', '{"$err": {"type": 1, "message": "", "traceback": ""}}',
    '{"$err": {"type": "E"}}', '{"$esc": 5}', '{"$esc": [1, 2]}', '{"$esc": ["a"]}',
])
def test_malformed_tags_are_refused_not_guessed(text):
    with pytest.raises(ValueError):
        loads_json(text)


def test_unencodable_arguments_still_get_a_history_row(backend):
    runtime = backend.runtime(TQ_TASKS_MODULES=MODULES)
    huey = runtime.queue("default")
    task = huey._registry.string_to_task("outcome_tasks.quick")(args=(float("nan"),))
    record = huey.job_record(task, "running")
    assert "not recordable" in json.loads(record["args"])


# --- outcomes Huey announces, or does not -----------------------------------------------

def test_job_refused_by_a_huey_lock_ends_failed(backend, start_consumer):
    runtime = backend.runtime(TQ_TASKS_MODULES=MODULES)
    lock = runtime.queue("default").lock_task(outcome_tasks.LOCK)
    lock.acquire()
    try:
        once = tq.submit("outcome_tasks.under_lock", runtime=runtime)
        retried = tq.submit("outcome_tasks.under_lock_with_retry", runtime=runtime)
        start_consumer(runtime, workers=2, queues=["default"])
        wait_for_states(runtime, [once, retried], states=("failed",), timeout=20)
    finally:
        lock.release()
    for job_id, attempts in ((once, 1), (retried, 2)):
        job = job_detail(runtime, job_id)
        assert job["error_type"] == "TaskLocked" and outcome_tasks.LOCK in job["error_message"]
        assert [a["outcome"] for a in job["attempt_log"]] == ["failed"] * attempts


def test_revoked_job_ends_canceled(backend, start_consumer):
    runtime = backend.runtime(TQ_TASKS_MODULES=MODULES)
    job_id = tq.submit("outcome_tasks.quick", runtime=runtime)
    runtime.queue("default").revoke_by_id(job_id)
    start_consumer(runtime, workers=1, queues=["default"])
    wait_for_states(runtime, [job_id], states=("canceled",), timeout=20)
    assert queue_depths(runtime, "default")["running"] == 0


def test_interrupted_job_is_put_back_and_runs_again(backend, start_consumer, tmp_path):
    runtime = backend.runtime(TQ_TASKS_MODULES=MODULES, TQ_CONSUMER_GRACE="0.2")
    marker = str(tmp_path / "started")
    job_id = tq.submit("outcome_tasks.first_naps", marker, runtime=runtime)
    consumer = start_consumer(runtime, workers=1, queues=["default"])
    wait_for(lambda: job_states(runtime, [job_id]).get(job_id) == "running", timeout=20,
             message="the job to start")
    # The first attempt runs until released, so it surely outlives the grace
    # period (a fixed 1.5 s nap could end first on a busy machine).
    consumer.stop()
    other = backend.runtime(TQ_TASKS_MODULES=MODULES)
    assert job_states(other, [job_id])[job_id] == "retrying"
    open(marker + ".go", "w").close()
    start_consumer(other, workers=1, queues=["default"])
    wait_for_states(other, [job_id], timeout=30)
    outcomes = [a["outcome"] for a in job_detail(other, job_id)["attempt_log"]]
    assert outcomes[-1] == "succeeded" and len(outcomes) >= 2


def test_hooks_and_exits_never_leave_a_job_running(backend, start_consumer):
    runtime = backend.runtime(TQ_TASKS_MODULES=MODULES)
    huey = runtime.queue("default")

    @huey.pre_execute()
    def gate(task):
        if task.args == (1,):
            raise CancelExecution()  # a job with retries left, canceled before it runs
        if task.args == (2,):
            raise RuntimeError("a broken pre-execute hook")

    @huey.post_execute()
    def audit(task, value, exc):
        raise RuntimeError("a broken post-execute hook")

    ids = [tq.submit("outcome_tasks.quick", value, runtime=runtime) for value in (0, 1, 2)]
    start_consumer(runtime, workers=2, queues=["default"])
    wait_for_states(runtime, ids, states=TERMINAL_OR_RETRYING, timeout=20)
    assert job_states(runtime, ids) == {ids[0]: "succeeded", ids[1]: "canceled",
                                        ids[2]: "succeeded"}
    exits = tq.submit("outcome_tasks.exits", runtime=runtime)
    wait_for_states(runtime, [exits], states=("failed",), timeout=20)
    assert job_detail(runtime, exits)["error_type"] == "SystemExit"
    assert queue_depths(runtime, "default")["running"] == 0


# --- error handlers ----------------------------------------------------------------------

def test_error_handler_receives_the_error_and_retries_are_kept(backend, start_consumer):
    runtime = backend.runtime(TQ_TASKS_MODULES=MODULES)
    key = uuid.uuid4().hex
    job_id = enqueue_with_huey(runtime, "outcome_tasks.fail_with_retries", "disk full",
                               on_error=("outcome_tasks.on_failure", (key,)))
    start_consumer(runtime, workers=2, queues=["default"])
    wait_for_states(runtime, [job_id], states=("failed",), timeout=20)
    job = job_detail(runtime, job_id)
    assert [a["outcome"] for a in job["attempt_log"]] == ["failed"] * 3  # retries kept
    assert job["error_type"] == "ValueError"
    # Huey runs the handler after each failed attempt (store_intermediate_errors).
    wait_for(lambda: len(outcome_tasks.handled.get(key, [])) == 3, timeout=20,
             message="the error handler to run three times")
    for error in outcome_tasks.handled[key]:
        assert isinstance(error, TaskError) and isinstance(error, Exception)
        assert (error.type, error.message) == ("ValueError", "disk full")
        assert "raise ValueError(message)" in error.traceback


def test_failing_error_handler_and_unprintable_error_end_failed(backend, start_consumer):
    runtime = backend.runtime(TQ_TASKS_MODULES=MODULES)
    key = uuid.uuid4().hex
    job_id = enqueue_with_huey(runtime, "outcome_tasks.fail_unprintably",
                               on_error=("outcome_tasks.failing_handler", (key,)))
    start_consumer(runtime, workers=2, queues=["default"])
    wait_for_states(runtime, [job_id], states=("failed",), timeout=20)
    job = job_detail(runtime, job_id)
    assert job["error_type"] == "UnprintableError"
    assert [a["outcome"] for a in job["attempt_log"]] == ["failed"] * 2
    wait_for(lambda: len(outcome_tasks.handled.get(key, [])) == 2, timeout=20,
             message="the error handler to run twice")
    assert {error.type for error in outcome_tasks.handled[key]} == {"UnprintableError"}
    # The handler's own failure is its own job's outcome.
    wait_for(lambda: queue_depths(runtime, "default")["running"] == 0
             and queue_depths(runtime, "default")["queued"] == 0, timeout=20,
             message="the handlers to finish")
    from tq.models import Job
    runtime.flush_history()
    handlers = list(Job.select().where(Job.task == "outcome_tasks.failing_handler"))
    assert handlers and {row.state for row in handlers} == {"failed"}


# --- child processes ---------------------------------------------------------------------

def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found.update(int(p) for p in (task / "children").read_text().split())
        except OSError:
            pass
    return found


def alive(pid: int) -> bool:
    """Running, not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def consumer_process(env: dict, *args: str, command: str = "consumer") -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tq.cli", command, *args],
                            env={**os.environ, "PYTHONPATH": TESTS_DIR, **env,
                                 "TQ_TASKS_MODULES": MODULES},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_process_consumer_children_obey_sigterm_and_die_with_it(backend):
    runtime = backend.runtime(TQ_TASKS_MODULES=MODULES)
    consumer = consumer_process(backend.env, "-k", "process", "-w", "2", "--queue", "default")
    try:
        # A scheduler and two workers; a job shows the workers are serving.
        wait_for(lambda: len(children(consumer.pid)) == 3, timeout=30, message="3 children")
        job_id = tq.submit("outcome_tasks.pid", runtime=runtime)
        wait_for_states(runtime, [job_id], timeout=30)
        kids = children(consumer.pid)
        # Any child, idle, exits on SIGTERM (the consumer restarts it later).
        first = min(kids)
        os.kill(first, signal.SIGTERM)
        wait_for(lambda: not alive(first), timeout=15, message=f"child {first} to exit")
        # A worker running a job exits too; the job is put back, not lost.
        napping = tq.submit("outcome_tasks.nap", 30, runtime=runtime)
        wait_for(lambda: job_states(runtime, [napping]).get(napping) == "running",
                 timeout=20, message="the long job to start")
        rest = [pid for pid in kids - {first} if alive(pid)]
        for pid in rest:
            os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not any(alive(pid) for pid in rest), timeout=15,
                 message="children to obey SIGTERM")
        wait_for(lambda: job_states(runtime, [napping]).get(napping) != "running",
                 timeout=20, message="the interrupted job to leave `running`")
        # The consumer restarts its children (health check); SIGKILL takes them all.
        wait_for(lambda: len([p for p in children(consumer.pid) if alive(p)]) == 3,
                 timeout=30, message="children restarted")
        kids = children(consumer.pid)
        consumer.send_signal(signal.SIGKILL)
        consumer.wait(timeout=10)
        wait_for(lambda: not any(alive(pid) for pid in kids), timeout=15,
                 message="no orphan after SIGKILL")
    finally:
        if consumer.poll() is None:
            consumer.kill()
            consumer.wait(timeout=10)
        for pid in children(consumer.pid) if Path(f"/proc/{consumer.pid}").exists() else ():
            os.kill(pid, signal.SIGKILL)


# --- starting through a history outage -------------------------------------------------------

class HistoryOutage:
    """The history database unreachable for one consumer: MariaDB behind a cut
    proxy, or the SQLite history held under an exclusive lock."""

    def __init__(self, backend) -> None:
        self.backend = backend
        self.proxy = None
        self.holder = None
        self.env = dict(backend.env)
        if backend.kind == "redis":
            self.proxy = CuttableProxy(MYSQL_HOST, MYSQL_PORT)
            self.env["TQ_HISTORY_URL"] = (f"mysql://root@127.0.0.1:{self.proxy.port}/"
                                          f"{backend.database_name}")
            self.env["TQ_QUEUE_CONNECT_TIMEOUT"] = "1"
            self.proxy.cut()
        else:
            path = Path(self.env["TQ_TQ_DATA_DIR"]) / "history.db"
            path.parent.mkdir(parents=True, exist_ok=True)
            self.holder = sqlite3.connect(path, isolation_level=None)
            self.holder.execute("BEGIN EXCLUSIVE")

    def end(self) -> None:
        if self.proxy is not None:
            self.proxy.restore()
        if self.holder is not None:
            self.holder.execute("ROLLBACK")
            self.holder.close()
            self.holder = None

    def close(self) -> None:
        self.end()
        if self.proxy is not None:
            self.proxy.close()


@pytest.mark.parametrize("command", ["up", "consumer"])
def test_start_and_run_jobs_while_history_is_down(backend, tmp_path, command):
    outage = HistoryOutage(backend)
    process = None
    try:
        runtime = backend.runtime(TQ_TASKS_MODULES=MODULES)  # submits; reads history later
        marker = tmp_path / "ran"
        args = ["-w", "1"] if command == "up" else ["-w", "1", "--queue", "default"]
        process = consumer_process(outage.env, *args, command=command)
        job_id = tq.submit("outcome_tasks.touch", str(marker), runtime=runtime)
        wait_for(marker.exists, timeout=40, message="the job to run while history is down")
        assert process.poll() is None  # still serving
        outage.end()
        wait_for_states(runtime, [job_id], timeout=40)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        outage.close()
