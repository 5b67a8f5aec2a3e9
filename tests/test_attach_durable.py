"""A stock huey_consumer of an attached Redis app SIGKILLed (or stopped) mid-job.

What a user relies on: without durable=True (Huey's own at-most-once
delivery) the job is not run again, and history does not show it `running`
forever: once the dead consumer has been silent for a lease, a live attached
huey_consumer ends it `failed` with WorkerLost (its attempt ended `lost`).
With durable=True the job is not lost: it goes back ahead of the jobs
enqueued after it and runs again, once, as its next attempt; a job lost more
than lost_retries times ends failed and is set aside; a job interrupted by a
stopping consumer (SIGTERM) is back on its queue at once.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis

import tq
from tq.attach import attachment
from tq.queries import job_detail

from conftest import REDIS_URL, Backend, wait_for, wait_for_states

TESTS_DIR = Path(__file__).parent
LEASE_SECONDS = 1.5
LEASE = {"TQ_CONSUMER_LEASE": str(LEASE_SECONDS), "TQ_CONSUMER_HEARTBEAT": "0.3"}


class App:
    """An attached app's module in this process and its huey_consumers."""

    def __init__(self, app: str, tmp_path: Path, variant: str = "attached",
                 **env: str) -> None:
        self.tmp_path = tmp_path
        self.backend = Backend("redis", tmp_path)
        self.backend.env.update(LEASE, **env)
        self.variant = variant
        self.name = f"app{uuid.uuid4().hex[:10]}"
        self.app_env = {"HUEYAPP_NAME": self.name, "HUEYAPP_REDIS_URL": REDIS_URL,
                        "HUEYAPP_SQLITE": str(tmp_path / "app.db")}
        if str(TESTS_DIR) not in sys.path:
            sys.path.insert(0, str(TESTS_DIR))
        from hueyapps import load_attached
        self.module = load_attached(app, self.app_env, variant)
        self.app = app
        self.huey = self.module.huey
        self.runtime = self.backend.runtime(TQ_HUEY_APPS=f"hueyapps.{app}_{variant}:huey")
        tq.attach(self.huey, runtime=self.runtime)
        self.processes: list[subprocess.Popen] = []

    def consumer(self) -> subprocess.Popen:
        environment = {**os.environ, **self.backend.env, **self.app_env,
                       "PYTHONPATH": str(TESTS_DIR)}
        executable = Path(sys.executable).with_name("huey_consumer")
        process = subprocess.Popen(
            [str(executable), f"hueyapps.{self.app}_{self.variant}.huey", "-w", "1", "-k", "thread",
             "-d", "0.05", "-m", "0.2"],
            env=environment, cwd=self.tmp_path, stdout=subprocess.DEVNULL,
            stderr=open(self.tmp_path / f"consumer{len(self.processes)}.err", "wb"))
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.huey.flush()
        conn = redis.Redis.from_url(REDIS_URL)
        for key in conn.scan_iter(f"huey.redis.{self.name}.tq.*"):
            conn.delete(key)
        self.backend.cleanup()

    def slow_job_running(self):
        """A huey_consumer started and running the app's slow job, which waits
        for its flag file: (the consumer, the job, its log, its flag)."""
        first = self.consumer()
        log, flag = self.tmp_path / "slow.log", self.tmp_path / "slow.flag"
        job = self.module.slow(str(log), str(flag))
        wait_for(lambda: state(self.runtime, job.id) == "running", timeout=30,
                 message="the slow job running")
        return first, job, log, flag

    def all_consumers_silent(self) -> bool:
        """Every huey_consumer tq lists has been silent for a lease (the killed one)."""
        found = [info for info in self.runtime.control.workers()
                 if info["worker_type"] == "huey_consumer"]
        return bool(found) and all(info["heartbeat_age"] >= LEASE_SECONDS for info in found)

    def claims(self):
        return attachment(self.huey).claims


def state(runtime, job_id):
    runtime.flush_history(5)
    row = job_detail(runtime, job_id)
    return row["state"] if row else None


@pytest.mark.parametrize("app", ["redis_app", "priority_app", "sqlite_app"])
def test_sigkilled_job_without_durable_ends_worker_lost(app, tmp_path):
    running = App(app, tmp_path)
    try:
        first, job, log, flag = running.slow_job_running()
        first.send_signal(signal.SIGKILL)
        first.wait()
        running.consumer()  # a live attached consumer notices the silent one
        wait_for(lambda: state(running.runtime, job.id) == "failed", timeout=30,
                 message="the lost job ended failed")
        row = job_detail(running.runtime, job.id)
        assert row is not None and row["error_type"] == "WorkerLost"
        assert "durable=True" in row["error_message"]
        assert [a["outcome"] for a in row["attempt_log"]] == ["lost"]
        flag.touch()
        assert log.read_text() == "start\n"  # Huey's at-most-once: not run again
    finally:
        running.stop()


def outcomes(runtime, job_id):
    return [a["outcome"] for a in job_detail(runtime, job_id)["attempt_log"]]


@pytest.mark.parametrize("app", ["redis_app", "priority_app"])
def test_sigkilled_job_with_durable_runs_again_ahead_of_later_jobs(app, tmp_path):
    running = App(app, tmp_path, "durable")
    try:
        first, job, log, flag = running.slow_job_running()
        later = [running.module.add(i, i) for i in range(2)]  # queued behind it
        first.send_signal(signal.SIGKILL)
        first.wait()
        # Started once the dead consumer is silent for a lease, the next consumer
        # puts the job back at start-up, before its worker takes a message.
        wait_for(running.all_consumers_silent, timeout=30, message="the killed consumer silent")
        flag.touch()
        running.consumer()
        wait_for_states(running.runtime, [job.id] + [j.id for j in later], timeout=60)
        assert log.read_text() == "start\nstart\nfinish\n"  # run again, once
        row = job_detail(running.runtime, job.id)
        assert row["attempts"] == 2 and outcomes(running.runtime, job.id) == ["lost", "succeeded"]
        rerun = row["attempt_log"][1]["started_at"]
        assert all(rerun <= job_detail(running.runtime, j.id)["started_at"] for j in later)
        assert [j.get() for j in later] == [0, 2]  # Huey's results as ever
        claims = running.claims()
        # The last claim is released by the worker's next poll (within 50 ms).
        wait_for(lambda: claims.claims() == ([], []), message="every claim released")
        assert not claims.conn.exists(claims.losses_key, claims.unfinished_key)
    finally:
        running.stop()


def test_a_job_lost_more_than_lost_retries_times_ends_failed_and_set_aside(tmp_path):
    running = App("redis_app", tmp_path, "durable", TQ_CONSUMER_LOST_RETRIES="0")
    try:
        first, job, log, flag = running.slow_job_running()
        after = running.module.add(1, 1)
        first.send_signal(signal.SIGKILL)
        first.wait()
        wait_for(running.all_consumers_silent, timeout=30, message="the killed consumer silent")
        flag.touch()
        running.consumer()
        wait_for_states(running.runtime, [after.id], timeout=60)
        wait_for(lambda: state(running.runtime, job.id) == "failed", timeout=30,
                 message="the job ended failed")
        row = job_detail(running.runtime, job.id)
        assert row["error_type"] == "WorkerLost" and "lost 1 times" in row["error_message"]
        assert outcomes(running.runtime, job.id) == ["lost"]
        assert log.read_text() == "start\n"  # not run again: it ran ahead of `after` else
        claims = running.claims()
        assert claims.conn.llen(claims.quarantine_key) == 1
    finally:
        running.stop()


def test_a_job_interrupted_by_sigterm_is_back_on_its_queue_at_once(tmp_path):
    running = App("redis_app", tmp_path, "durable")
    try:
        first, job, log, flag = running.slow_job_running()
        first.send_signal(signal.SIGTERM)  # Huey's immediate stop
        first.wait(timeout=30)
        assert running.huey.storage.queue_size() == 1  # no lease waited out
        assert running.claims().claims() == ([], [])
        wait_for(lambda: state(running.runtime, job.id) == "retrying", timeout=30,
                 message="history says retrying")
        flag.touch()
        running.consumer()
        wait_for_states(running.runtime, [job.id], timeout=60)
        assert outcomes(running.runtime, job.id) == ["interrupted", "succeeded"]
        assert log.read_text() == "start\nstart\nfinish\n"
    finally:
        running.stop()
