"""`tq.attach(huey)`: stock Huey apps, run by the real `huey_consumer`, recorded in
tq's history by one added line.

What a user relies on: a RedisHuey, PriorityRedisHuey or SqliteHuey app with
`import tq; tq.attach(huey)` added (and nothing else changed) keeps working as
Huey (results, pickled arguments) and every job it enqueues or runs shows in
tq's history: its state, attempts, errors and traceback, arguments as JSON or
repr, enqueue time; its huey_consumer shows in `tq workers`.

One huey_consumer per app (module-scoped), each with its own Huey name (the
Redis key prefix) and its own SQLite file, and tq settings of its own.
"""
from __future__ import annotations

import difflib
import importlib
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import tq
from tq.queries import job_detail, list_workers

from conftest import REDIS_URL, Backend, wait_for, wait_for_states

TESTS_DIR = Path(__file__).parent
APPS = TESTS_DIR / "hueyapps"
# (app module, tq backend): the Redis apps with tq on Redis + MariaDB, the
# SQLite app with tq embedded.
CASES = [("redis_app", "redis"), ("priority_app", "redis"), ("sqlite_app", "embedded")]


@pytest.mark.parametrize("app", ["redis_app", "priority_app", "sqlite_app"])
def test_attached_twin_differs_by_one_added_line(app):
    plain = (APPS / f"{app}.py").read_text().splitlines()
    attached = (APPS / f"{app}_attached.py").read_text().splitlines()
    changed = [line for line in difflib.unified_diff(plain, attached, lineterm="", n=0)
               if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert len(changed) == 1 and changed[0].startswith("+import tq; tq.attach(huey)"), changed


class AttachedApp:
    def __init__(self, app: str, kind: str, tmp_path: Path) -> None:
        self.app = app
        self.backend = Backend(kind, tmp_path)
        self.name = f"app{uuid.uuid4().hex[:10]}"
        self.app_env = {"HUEYAPP_NAME": self.name, "HUEYAPP_REDIS_URL": REDIS_URL,
                        "HUEYAPP_SQLITE": str(tmp_path / "app.db")}
        saved = {key: os.environ.get(key) for key in self.app_env}
        os.environ.update(self.app_env)
        try:
            sys.modules.pop(f"hueyapps.{app}_attached", None)
            if str(TESTS_DIR) not in sys.path:
                sys.path.insert(0, str(TESTS_DIR))
            self.module = importlib.import_module(f"hueyapps.{app}_attached")
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        self.huey = self.module.huey
        self.runtime = self.backend.runtime()
        tq.attach(self.huey, runtime=self.runtime)  # this process's records: this test's tq
        environment = {**os.environ, **self.backend.env, **self.app_env,
                       "PYTHONPATH": str(TESTS_DIR)}
        executable = Path(sys.executable).with_name("huey_consumer")
        self.err = tmp_path / "huey_consumer.err"
        self.process = subprocess.Popen(
            [str(executable), f"hueyapps.{app}_attached.huey", "-w", "2", "-k", "thread",
             "-d", "0.05", "-m", "0.2"],
            env=environment, cwd=tmp_path, stdout=subprocess.DEVNULL,
            stderr=open(self.err, "wb"))

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.huey.flush()  # the app's own keys (Redis prefix, SQLite file in tmp)
        self.backend.cleanup()


@pytest.fixture(scope="module", params=CASES, ids=[f"{a}-{k}" for a, k in CASES])
def attached(request, tmp_path_factory):
    app, kind = request.param
    running = AttachedApp(app, kind, tmp_path_factory.mktemp(app))
    yield running
    running.stop()


def test_every_job_is_recorded(attached):
    app, runtime = attached.module, attached.runtime
    added = app.add(1, 2)
    failing = app.fail("boom <b>\x1b[31m")
    urgent = app.urgent({1, 2})  # a set: pickled by Huey, repr in tq's history
    delayed = app.add.schedule((2, 3), delay=1)
    assert added.get(blocking=True, timeout=30) == 3  # Huey's own results keep working
    assert delayed.get(blocking=True, timeout=30) == 5
    assert urgent.get(blocking=True, timeout=30) == {"value": {1, 2}}
    ids = [added.id, failing.id, urgent.id, delayed.id]
    states = wait_for_states(runtime, ids, states=("succeeded", "failed"), timeout=60)
    assert states == {added.id: "succeeded", failing.id: "failed", urgent.id: "succeeded",
                      delayed.id: "succeeded"}, attached.err.read_text()[-2000:]

    row = job_detail(runtime, added.id)
    assert row is not None
    assert row["queue"] == attached.name and row["task"] == "hueyapps.{}_attached.add".format(
        app.__name__.split(".")[-1].removesuffix("_attached"))
    assert row["args"] == [1, 2] and row["attempts"] == 1
    assert row["enqueued_at"] and row["started_at"] and row["finished_at"]
    assert f":{attached.process.pid}:" in row["worker"], row["worker"]
    assert [a["outcome"] for a in row["attempt_log"]] == ["succeeded"]

    row = job_detail(runtime, failing.id)
    assert row is not None and row["attempts"] == 2 and row["max_retries"] == 1
    assert row["error_type"] == "ValueError" and "boom" in row["error_message"]
    assert "raise ValueError(message)" in row["traceback"]
    assert [a["outcome"] for a in row["attempt_log"]] == ["failed", "failed"]

    row = job_detail(runtime, urgent.id)
    assert row is not None and row["args"] == "[{1, 2}]"  # the repr, as a JSON string
    assert row["priority"] == (0 if attached.app == "redis_app" else 5)

    row = job_detail(runtime, delayed.id)
    assert row is not None and row["args"] == [2, 3] and row["eta"]


def test_huey_consumer_is_listed_as_a_worker(attached):
    def listed():
        return [w for w in list_workers(attached.runtime)
                if w.get("pid") == attached.process.pid and w["alive"]]
    workers = wait_for(listed, timeout=30, message="the huey_consumer's heartbeat")
    assert workers[0]["queues"] == [attached.name]
