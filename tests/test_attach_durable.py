"""A stock huey_consumer of an attached Redis app SIGKILLed mid-job.

What a user relies on: without durable=True (Huey's own at-most-once
delivery) the job is not run again, and history does not show it `running`
forever: once the dead consumer has been silent for a lease, a live attached
huey_consumer ends it `failed` with WorkerLost (its attempt ended `lost`).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import tq
from tq.queries import job_detail

from conftest import REDIS_URL, Backend, wait_for

TESTS_DIR = Path(__file__).parent
LEASE = {"TQ_CONSUMER_LEASE": "1.5", "TQ_CONSUMER_HEARTBEAT": "0.3"}


class App:
    """An attached app's module in this process and its huey_consumers."""

    def __init__(self, app: str, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.backend = Backend("redis", tmp_path)
        self.backend.env.update(LEASE)
        self.name = f"app{uuid.uuid4().hex[:10]}"
        self.app_env = {"HUEYAPP_NAME": self.name, "HUEYAPP_REDIS_URL": REDIS_URL}
        if str(TESTS_DIR) not in sys.path:
            sys.path.insert(0, str(TESTS_DIR))
        from hueyapps import load_attached
        self.module = load_attached(app, self.app_env)
        self.app = app
        self.huey = self.module.huey
        self.runtime = self.backend.runtime(TQ_HUEY_APPS=f"hueyapps.{app}_attached:huey")
        tq.attach(self.huey, runtime=self.runtime)
        self.processes: list[subprocess.Popen] = []

    def consumer(self) -> subprocess.Popen:
        environment = {**os.environ, **self.backend.env, **self.app_env,
                       "PYTHONPATH": str(TESTS_DIR)}
        executable = Path(sys.executable).with_name("huey_consumer")
        process = subprocess.Popen(
            [str(executable), f"hueyapps.{self.app}_attached.huey", "-w", "1", "-k", "thread",
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
        self.backend.cleanup()


def state(runtime, job_id):
    runtime.flush_history(5)
    row = job_detail(runtime, job_id)
    return row["state"] if row else None


@pytest.mark.parametrize("app", ["redis_app", "priority_app"])
def test_sigkilled_job_without_durable_ends_worker_lost(app, tmp_path):
    running = App(app, tmp_path)
    try:
        first = running.consumer()
        log, flag = tmp_path / "slow.log", tmp_path / "slow.flag"
        job = running.module.slow(str(log), str(flag))
        wait_for(lambda: state(running.runtime, job.id) == "running", timeout=30,
                 message="the slow job running")
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
