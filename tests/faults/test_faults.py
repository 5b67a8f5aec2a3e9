"""Faults on purpose, on real Redis and MariaDB, with every job accounted for.

Each test is bounded in time and talks to loopback only. After each fault the
counts `tq status --json` reports are reconciled with what the test submitted.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

import tq
from tq import ops
from tq.cli import main
from tq.models import Attempt, Job
from tq.queries import queue_depths

from conftest import MYSQL_HOST, MYSQL_PORT, Backend, job_states, use_env, wait_for, wait_for_states
from proxy import CuttableProxy

TESTS_DIR = str(Path(__file__).resolve().parent.parent)


def consumer_process(env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tq.cli", "consumer", *args],
                            env={**os.environ, "PYTHONPATH": TESTS_DIR, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def reconcile(runtime, submitted: dict[str, int], capsys) -> dict:
    """`tq status --json` must show every submitted job in its final state."""
    runtime.flush_history()
    capsys.readouterr()
    assert main(["status", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    totals: dict[str, int] = {}
    for entry in data["queues"].values():
        assert (entry["queued"], entry["running"]) == (0, 0)
        for state, count in entry["history"].items():
            totals[state] = totals.get(state, 0) + count
    assert {k: v for k, v in totals.items() if v} == submitted
    return data


@pytest.fixture
def env(redis_backend, tq_env_redis):
    return redis_backend.env


@pytest.fixture
def tq_env_redis(redis_backend, monkeypatch):
    redis_backend.env["TQ_CONSUMER_LEASE"] = "3"
    return use_env(monkeypatch, redis_backend.env)


def test_worker_crash_every_job_succeeds(redis_backend, env, start_consumer, capsys):
    """1,000 jobs of 50 ms on 4 workers; SIGKILL mid-run; a new consumer finishes."""
    runtime = redis_backend.runtime()
    ids = tq.submit_many([{"task": "tq.tasks.demo.sleep", "args": [0.05]}
                          for _ in range(1000)], runtime=runtime)
    victim = consumer_process(env, "-w", "4", "--queue", "default")
    try:
        wait_for(lambda: runtime.flush_history() and Job.select().where(
            Job.state == "succeeded").count() >= 200, timeout=60, message="200 done")
        running_at_kill = queue_depths(runtime, "default")["running"]
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
    finally:
        victim.kill()
    killed_at = time.monotonic()
    assert running_at_kill >= 1
    start_consumer(runtime, workers=4, queues=["default"])
    states = wait_for_states(runtime, ids, timeout=120)
    assert set(states.values()) == {"succeeded"} and len(states) == 1000
    lost = list(Attempt.select().where(Attempt.outcome == "lost"))
    assert 1 <= len(lost) <= running_at_kill + 4
    for attempt in lost:  # history shows both attempts of each re-run job
        outcomes = [a.outcome for a in Attempt.select().where(Attempt.job_id == attempt.job_id)
                    .order_by(Attempt.attempt)]
        assert outcomes == ["lost", "succeeded"]
    # The figure for the closing note (capsys holds stdout, so straight to stderr).
    sys.__stderr__.write(f"\nworker crash: {len(lost)} jobs ran twice; all 1000 done "
                         f"{time.monotonic() - killed_at:.1f}s after the kill\n")
    reconcile(runtime, {"succeeded": 1000}, capsys)


def test_sigterm_finishes_running_jobs_and_exits_0(redis_backend, env, start_consumer,
                                                   capsys):
    runtime = redis_backend.runtime()
    ids = tq.submit_many([{"task": "tq.tasks.demo.sleep", "args": [0.3]} for _ in range(100)],
                         runtime=runtime)
    consumer = consumer_process(env, "-w", "4", "--queue", "default")
    wait_for(lambda: queue_depths(runtime, "default")["running"] >= 4, message="running")
    started = time.monotonic()
    consumer.send_signal(signal.SIGTERM)
    assert consumer.wait(timeout=15) == 0
    assert time.monotonic() - started < 10  # within the grace period
    assert queue_depths(runtime, "default")["running"] == 0
    runtime.flush_history()
    interrupted = Attempt.select().where(Attempt.outcome == "interrupted").count()
    assert interrupted == 0  # the jobs that were running finished
    start_consumer(runtime, workers=4, queues=["default"])
    wait_for_states(runtime, ids, timeout=60)
    reconcile(runtime, {"succeeded": 100}, capsys)


def test_jobs_over_the_grace_period_are_put_back(redis_backend, env, start_consumer, capsys):
    runtime = redis_backend.runtime()
    ids = tq.submit_many([{"task": "tq.tasks.demo.sleep", "args": [4]} for _ in range(2)],
                         runtime=runtime)
    consumer = consumer_process({**env, "TQ_CONSUMER_GRACE": "1"}, "-w", "2", "--queue",
                                "default")
    wait_for(lambda: queue_depths(runtime, "default")["running"] == 2, message="running")
    consumer.send_signal(signal.SIGTERM)
    assert consumer.wait(timeout=10) == 0
    assert queue_depths(runtime, "default") ["queued"] == 2  # put back, not lost
    assert queue_depths(runtime, "default")["running"] == 0
    start_consumer(runtime, workers=2, queues=["default"])
    wait_for_states(runtime, ids, timeout=30)
    reconcile(runtime, {"succeeded": 2}, capsys)


def test_history_outage_one_warning_and_every_state_recorded(redis_backend, env,
                                                             start_consumer, caplog, capsys):
    proxy = CuttableProxy(MYSQL_HOST, MYSQL_PORT)
    try:
        url = f"mysql://root@127.0.0.1:{proxy.port}/{redis_backend.database_name}"
        runtime = redis_backend.runtime(TQ_HISTORY_URL=url, TQ_QUEUE_CONNECT_TIMEOUT="1")
        runtime.history_db()
        ids = tq.submit_many([{"task": "tq.tasks.demo.sleep", "args": [0.02]}
                              for _ in range(300)], runtime=runtime)
        caplog.set_level(logging.WARNING, logger="tq.history")
        start_consumer(runtime, workers=4, queues=["default"])
        wait_for(lambda: queue_depths(runtime, "default")["queued"] < 250, message="started")
        proxy.cut()
        time.sleep(8)  # the outage: jobs keep running meanwhile
        assert queue_depths(runtime, "default")["queued"] == 0
        proxy.restore()
        states = wait_for_states(runtime, ids, timeout=60)
        assert set(states.values()) == {"succeeded"}
        warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        assert Attempt.select().count() == 300
    finally:
        proxy.close()


@pytest.fixture
def private_redis(tmp_path):
    """A Redis of our own with persistence on, so the test may restart it."""
    if not shutil.which("redis-server"):
        pytest.skip("redis-server not installed")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path),
            "--appendonly", "yes", "--appendfsync", "always", "--save", ""]
    state = {"proc": None}

    def start():
        state["proc"] = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        client = redis.Redis(port=port)
        wait_for(lambda: _ping(client), timeout=10, message="private redis")

    def stop():
        redis.Redis(port=port).shutdown(save=False, nosave=False)
        state["proc"].wait(timeout=10)

    start()
    yield port, start, stop
    if state["proc"].poll() is None:
        state["proc"].kill()


def _ping(client) -> bool:
    try:
        return client.ping()
    except redis.ConnectionError:
        return False


def test_redis_restart_consumers_reconnect(tmp_path, private_redis, start_consumer,
                                           monkeypatch, capsys):
    port, start_redis, stop_redis = private_redis
    backend = Backend("redis", tmp_path)
    backend.env["TQ_QUEUE_URL"] = f"redis://127.0.0.1:{port}/0"
    backend.env["TQ_QUEUE_CONNECT_TIMEOUT"] = "1"
    try:
        runtime = backend.runtime()
        use_env(monkeypatch, backend.env)
        start_consumer(runtime, workers=2, queues=["default"])
        first = tq.submit_many([{"task": "tq.tasks.demo.echo", "args": [i]}
                                for i in range(20)], runtime=runtime)
        wait_for_states(runtime, first)
        ops.pause(runtime, "default")
        before = tq.submit_many([{"task": "tq.tasks.demo.echo", "args": [i]}
                                 for i in range(30)], runtime=runtime)
        stop_redis()
        started = time.monotonic()
        assert main(["submit", "tq.tasks.demo.echo"]) != 0
        assert time.monotonic() - started < 10  # a clear error, not a hang
        assert "unreachable" in capsys.readouterr().err
        time.sleep(2)
        start_redis()  # the AOF brings the 30 waiting jobs back
        ops.resume(runtime, "default")
        wait_for_states(runtime, before, timeout=60)  # same consumer, no restart
        after = tq.submit("tq.tasks.demo.echo", runtime=runtime)
        wait_for_states(runtime, [after])
    finally:
        backend.cleanup()


def test_eta_in_the_past_runs_at_once(redis_backend, start_consumer):
    runtime = redis_backend.runtime()
    job_id = tq.submit("tq.tasks.demo.echo", eta="2001-01-01T00:00:00Z", runtime=runtime)
    assert job_states(runtime, [job_id]) == {job_id: "queued"}
    start_consumer(runtime, workers=1)
    wait_for_states(runtime, [job_id], timeout=10)


@pytest.mark.parametrize("url_env", [
    {"TQ_QUEUE_BACKEND": "redis", "TQ_QUEUE_URL": "redis://:sekret-pw@127.0.0.1:1/0"},
    {"TQ_HISTORY_URL": "mysql://root@127.0.0.1:1/tq", "TQ_HISTORY_PASSWORD": "sekret-pw"},
])
def test_unreachable_server_is_a_quick_clear_error_without_the_password(
        tmp_path, monkeypatch, capsys, url_env):
    use_env(monkeypatch, {"TQ_TQ_DATA_DIR": str(tmp_path), "TQ_QUEUE_CONNECT_TIMEOUT": "2",
                          **url_env})
    started = time.monotonic()
    # A verb that needs the server down (tq jobs reads history alone).
    code = main(["workers" if "TQ_QUEUE_URL" in url_env else "jobs"])
    captured = capsys.readouterr()
    assert code != 0 and time.monotonic() - started < 10
    assert "unreachable" in captured.err and captured.err.count("\n") == 1
    assert "sekret-pw" not in captured.err + captured.out


def test_status_never_shows_passwords(tmp_path, monkeypatch, capsys, redis_backend):
    monkeypatch.setenv("TQ_TQ_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TQ_QUEUE_BACKEND", "redis")
    monkeypatch.setenv("TQ_QUEUE_PREFIX", redis_backend.prefix)
    monkeypatch.setenv("TQ_QUEUE_URL", "redis://default:@127.0.0.1:6379/0")
    monkeypatch.setenv("TQ_HISTORY_URL", f"mysql://root:sekret-pw@{MYSQL_HOST}:{MYSQL_PORT}/"
                                         f"{redis_backend.database_name}")
    code = main(["status", "--json"])
    captured = capsys.readouterr()
    assert "sekret-pw" not in captured.out + captured.err
    if code == 0:
        assert "***" in json.loads(captured.out)["history"]
