"""Test fixtures: every test runs on real backends, isolated from every other test.

`backend` is parametrized over:
  - embedded: SQLite queue and SQLite history in the test's tmp folder;
  - redis: Redis at 127.0.0.1:6379 with a key prefix of its own, and MariaDB at
    127.0.0.1:3306 with a database of its own, both removed afterwards.

Every name a test touches on a server (key prefix, database) is a fresh random
token and every file lives in the test's own tmp_path, so tests share nothing
and run in parallel under pytest-xdist as they run alone.

A test that needs a server carries the marker `redis` and/or `mysql`, set here
from what it asks for (the redis `backend` param, `redis_backend`, or a fixture
listed in SERVER_FIXTURES), so `pytest -m "not redis and not mysql"` runs on the
embedded backend alone with neither server up. A test that reaches a server by
other means marks itself.

Hypothesis runs with the `tq` profile: few examples and no deadline (a loaded
2-core machine makes per-example timing meaningless); TQ_TEST_HYPOTHESIS=ci
or =thorough picks another.
"""
from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pymysql
import pytest
import redis
from hypothesis import HealthCheck, settings

from tq import migrations
from tq.config import load_config
from tq.models import open_database
from tq.runtime import Runtime

REDIS_URL = os.environ.get("TQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
MYSQL_HOST = os.environ.get("TQ_TEST_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("TQ_TEST_MYSQL_PORT", "3306"))
BACKENDS = ("embedded", "redis")
# Fixtures that connect to a server -> the markers of the servers they need.
SERVER_FIXTURES: dict[str, tuple[str, ...]] = {"redis_backend": ("redis", "mysql"),
                                              "private_redis": ("redis", "mysql")}
SERVER_PARAMS: dict[str, tuple[str, ...]] = {"redis": ("redis", "mysql")}

settings.register_profile("tq", max_examples=60, deadline=None, derandomize=False,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=30, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("TQ_TEST_HYPOTHESIS", "tq"))


def pytest_collection_modifyitems(config, items) -> None:
    """Mark every test that needs a server with the server's marker."""
    for item in items:
        needs: set[str] = set()
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "backend" in callspec.params:
            needs.update(SERVER_PARAMS.get(callspec.params["backend"], ()))
        for name in getattr(item, "fixturenames", ()):
            needs.update(SERVER_FIXTURES.get(name, ()))
        for marker in sorted(needs):
            item.add_marker(marker)


def free_port() -> int:
    """A loopback port nothing listens on now (for a server a test starts by port)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], object], timeout: float = 15.0, interval: float = 0.05,
             message: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


class Polls:
    """Watches the claims a queue's workers make in this process, so a test can
    say "the consumer has looked at this queue since then and took nothing"
    instead of sleeping for a while and hoping it looked.

    Wraps the queue's `dequeue` (the one call a Huey worker makes to claim a
    job) on that Huey instance; what dequeue does is unchanged. Install it
    before the consumer starts, on `runtime.queue(name)` of the runtime the
    consumer is given (the consumer's Huey objects are the runtime's)."""

    def __init__(self, queue) -> None:
        self._lock = threading.Lock()
        self._started = 0
        self._finished: list[tuple[int, bool]] = []  # (call number, took a job)
        real = queue.dequeue

        def dequeue():
            with self._lock:
                self._started += 1
                number = self._started
            task = None
            try:
                task = real()
                return task
            finally:
                with self._lock:
                    self._finished.append((number, task is not None))
        queue.dequeue = dequeue

    def mark(self) -> int:
        with self._lock:
            return self._started

    def since(self, mark: int) -> list[bool]:
        """For each claim begun after `mark` and finished: whether it took a job."""
        with self._lock:
            return [took for number, took in self._finished if number > mark]

    def wait(self, mark: int, claims: int = 2, timeout: float = 60.0) -> list[bool]:
        """Until `claims` claims begun after `mark` have finished."""
        wait_for(lambda: len(self.since(mark)) >= claims, timeout=timeout,
                 message=f"{claims} claims by the consumer")
        return self.since(mark)


def _mysql(database: str | None = None):
    return pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user="root", password="",
                           database=database, autocommit=True)


class Backend:
    """Builds isolated settings for one test and removes its data afterwards."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.tmp_path = tmp_path
        self.token = uuid.uuid4().hex[:10]
        self.prefix = f"t{self.token}"
        self.database_name = f"tq_t_{self.token}"
        self.env: dict[str, str] = {"TQ_TQ_DATA_DIR": str(tmp_path / "data"),
                                    "TQ_CONSUMER_HEARTBEAT": "0.3",  # lease 1 s (some tests) >= 3 x heartbeat
                                    "TQ_CONSUMER_POLL_MAX": "0.1",
                                    "TQ_CONSUMER_GRACE": "10",
                                    # No built-in roll-up job in tests that do not ask
                                    # for one: it would show in their job lists.
                                    "TQ_HISTORY_ROLLUP_EVERY": "off"}
        if kind == "redis":
            with _mysql() as conn:
                conn.cursor().execute(f"CREATE DATABASE `{self.database_name}`")
            self.env.update({"TQ_QUEUE_BACKEND": "redis", "TQ_QUEUE_URL": REDIS_URL,
                             "TQ_QUEUE_PREFIX": self.prefix,
                             "TQ_HISTORY_URL": f"mysql://root@{MYSQL_HOST}:{MYSQL_PORT}/"
                                               f"{self.database_name}"})
        self.runtimes: list[Runtime] = []
        # The history schema, as a consumer or `tq up` leaves it (tq.migrations).
        migrations.migrate(open_database(self.config().history.url))

    def config(self, **env: str):
        return load_config(env={**self.env, **env})

    def runtime(self, **env: str) -> Runtime:
        runtime = Runtime(self.config(**env))
        self.runtimes.append(runtime)
        return runtime

    def cleanup(self) -> None:
        for runtime in self.runtimes:
            try:
                runtime.close()
            except Exception:
                pass
        if self.kind == "redis":
            client = redis.Redis.from_url(REDIS_URL)
            keys = list(client.scan_iter(f"*.{self.prefix}.*", count=1000))
            for start in range(0, len(keys), 500):
                client.delete(*keys[start:start + 500])
            client.close()
            with _mysql() as conn:
                conn.cursor().execute(f"DROP DATABASE IF EXISTS `{self.database_name}`")


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path):
    be = Backend(request.param, tmp_path)
    yield be
    be.cleanup()


@pytest.fixture
def redis_backend(tmp_path):
    be = Backend("redis", tmp_path)
    yield be
    be.cleanup()


@pytest.fixture
def runtime(backend):
    return backend.runtime()


class RunningConsumer:
    """A ConsumerGroup run in this process (no signal handlers), stopped at teardown."""

    def __init__(self, runtime: Runtime, **options) -> None:
        from tq.consumer import ConsumerGroup

        self.group = ConsumerGroup(runtime, **options)
        self.group.start()

    def stop(self) -> None:
        if not self.group.stopped.is_set():
            self.group.stop()


@pytest.fixture
def start_consumer():
    started: list[RunningConsumer] = []

    def start(runtime: Runtime, **options) -> RunningConsumer:
        consumer = RunningConsumer(runtime, **options)
        started.append(consumer)
        return consumer

    yield start
    for consumer in started:
        consumer.stop()


def job_states(runtime: Runtime, ids) -> dict[str, str]:
    """What history says of these jobs once everything recorded or submitted
    so far is written."""
    from tq.models import Job

    runtime.flush_history(5)
    runtime.history_db()  # binds the models to this database
    ids = list(ids)
    states = {}
    for start in range(0, len(ids), 500):
        for job_id, state in Job.select(Job.id, Job.state).where(
                Job.id.in_(ids[start:start + 500])).tuples():
            states[job_id] = state
    return states


def wait_for_states(runtime: Runtime, ids, states=("succeeded",), timeout: float = 30.0):
    ids = list(ids)

    def done():
        runtime.flush_history(5)
        current = job_states(runtime, ids)
        return len(current) == len(ids) and all(s in states for s in current.values())
    wait_for(done, timeout=timeout, interval=0.2, message=f"{len(ids)} jobs to reach {states}")
    return job_states(runtime, ids)


def use_env(monkeypatch, env: dict[str, str]) -> dict[str, str]:
    """Make `env` the only TQ_* settings of this process, for in-process CLI calls."""
    for key in list(os.environ):
        if key.startswith("TQ_") and not key.startswith("TQ_TEST_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def tq_env(backend, monkeypatch):
    """The backend's settings as TQ_* variables, for CLI tests (in process or not)."""
    return use_env(monkeypatch, backend.env)


@pytest.fixture
def mute_server():
    """A TCP server that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()
