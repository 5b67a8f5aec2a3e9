"""Control state under attack, on both backends: junk in every control key,
consumers whose clocks disagree, a stock `huey_consumer` beside tq, and where a
recovered job goes back in line.

What a user relies on: `tq status`, `tq workers` and `tq periodic` keep working
whatever is written into the queue backend; every job runs once while its
consumer is alive, whatever the hosts' clocks say and whoever else consumes
the same queues; a job whose consumer died runs again before the jobs that
were queued behind it.
"""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import redis

import tq
from tq.cli import main
from tq.queries import list_periodic, list_workers, queue_depths, status
from tq.recovery import recover_lost
from tq.tui.data import Data

from conftest import REDIS_URL, wait_for, wait_for_states

TESTS_DIR = Path(__file__).parent
MODULES = "tq.tasks.demo,testtasks"
VICTIM = "victim-host:4242:dead00"

# Hostile values for every place a control value is read from.
JUNK_VALUES = [
    b"not json", b"", b"[1, 2]", b'"a string"', b"{}", b"null", b"42",
    b'{"id": 5, "beat": "soon", "host": 7, "pid": "x", "queues": "default"}',
    b'{"beat": NaN}', b'{"beat": Infinity}', b'{"beat": -Infinity, "at": NaN}',
    b'{"beat": 1e400, "job_id": 12, "at": "yesterday"}',
    b'{"host": "[/]\\u001b[31m[red]", "queues": ["[/]"], "job_id": "[/]", "at": 1}',
    b"\x1b[31m[bold]oops[/]\x1b]0;title\x07", b"\xff\xfe\xfd not UTF-8", b"\xed\xa0\x80",
    b"[" * 100_000, b"x" * 1_000_000,
    b"w|nan|nan", b"w|inf|-inf", b"|||", b"a|b", b"9|9|9|9", b"w|1e400|1e400",
]
JUNK_FIELDS = [b"junk", b"[/]", b"\x1b[31m", b"\xff\xfe", b"", b"x" * 10_000]


def write_redis_junk(backend, victim_job: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    ns = f"tq.{backend.prefix}."
    for index, value in enumerate(JUNK_VALUES):
        field = JUNK_FIELDS[index % len(JUNK_FIELDS)] + str(index).encode()
        for key in ("workers", "paused", "periodic", "inflight.default", "inflight.events"):
            if key == "paused" and field.startswith(b"default"):
                continue
            client.hset(ns + key, field, value)
        client.hset(ns + "periodic", "nightly", value)
        client.hset(ns + "workers", VICTIM.encode() + b"x" + str(index).encode(), value)
        # In-flight records that name the (dead, registered) victim: unreadable tokens.
        client.hset(ns + "inflight.default", b"\x00" * 8 + value[:100],
                    f"{VICTIM}|0|{time.time()}")
        client.hset(ns + "inflight.default", value[:7], f"{VICTIM}|0|{time.time()}")
        client.sadd(ns + "held-tasks.default", field)
        client.zadd(ns + f"held.default.{field.decode(errors='replace')}", {value[:100]: 1})
        client.set(ns + f"cancel.{field.decode(errors='replace')}", value)
        client.set(ns + f"tick.nightly.{index}", value)
        client.set(ns + f"lost.{field.decode(errors='replace')}", value)
        client.zadd(ns + "beats", {field: [0, 1e300, float("inf"), -float("inf")][index % 4]})
    client.set(ns + f"lost.{victim_job}", "not a number")
    # Keys of the wrong type altogether (a queue this test does not consume).
    client.delete(ns + "inflight.events", ns + "held-tasks.events")
    client.set(ns + "inflight.events", "not a hash")
    client.set(ns + "held-tasks.events", "not a set")
    client.close()


def write_sqlite_junk(runtime) -> None:
    path = runtime.config.queue.path
    conn = sqlite3.connect(path, timeout=30)
    for index, value in enumerate(JUNK_VALUES):
        text = value.decode(errors="replace")  # (bad UTF-8 goes in as blobs)
        text_or_blob = [text, value, index, 1e308, None][index % 5]
        field = JUNK_FIELDS[index % len(JUNK_FIELDS)].decode(errors="replace") + str(index)
        conn.execute("insert or replace into tq_workers (id, info) values (?, ?)",
                     (field, value if index % 2 else text))
        conn.execute("insert or replace into tq_paused (target, info) values (?, ?)",
                     ("events/" + field, value))
        conn.execute("insert or replace into tq_periodic (name, info) values (?, ?)",
                     (field if index else "nightly", text_or_blob or "x"))
        conn.execute("insert or replace into tq_inflight (token, queue, data, priority, worker,"
                     " taken) values (?, ?, ?, ?, ?, ?)",
                     ("junk" + field, "default", text_or_blob or "x", [text, "nan", 1e400,
                      "NaN", "9"][index % 5] or 0, VICTIM if index % 2 else field,
                      [text, "x", float("inf"), "nan", -1][index % 5] or 0))
        conn.execute("insert or replace into tq_cancel (job_id, at) values (?, ?)", (field, text))
        conn.execute("insert or replace into tq_lost (job_id, n) values (?, ?)", (field, text))
        conn.execute("insert or replace into tq_ticks (name, tick, at) values (?, ?, ?)",
                     (field, text, value))
        conn.execute("insert into tq_held (queue, task, data, priority) values (?, ?, ?, ?)",
                     ("default", field, value, text))
    conn.commit()
    conn.close()


def register(runtime, worker: str) -> None:
    """What a consumer does at start: heartbeat before it claims anything."""
    runtime.control.heartbeat(worker, {
        "id": worker, "host": "victim-host", "pid": 4242, "queues": ["default"], "workers": 1,
        "worker_type": "thread", "started": time.time(), "beat": time.time()})


def test_junk_in_every_control_key(backend, tq_env, monkeypatch, capsys, start_consumer,
                                   tmp_path):
    """`tq status`, `tq workers`, `tq periodic` and the console's reads keep
    working with junk in every control key, and recovery still puts back a dead
    consumer's valid in-flight job next to the junk."""
    monkeypatch.setenv("TQ_PERIODIC_NIGHTLY", "0 3 * * * tq.tasks.demo.echo")
    monkeypatch.setenv("TQ_TASKS_MODULES", MODULES)
    monkeypatch.setenv("TQ_CONSUMER_LEASE", "1")
    monkeypatch.syspath_prepend(str(TESTS_DIR))
    env = {"TQ_TASKS_MODULES": MODULES, "TQ_CONSUMER_LEASE": "1",
           "TQ_PERIODIC_NIGHTLY": "0 3 * * * tq.tasks.demo.echo"}
    runtime = backend.runtime(**env)
    log = tmp_path / "runs.log"
    register(runtime, VICTIM)
    job_id = tq.submit("testtasks.log_run", str(log), runtime=runtime)
    claimed = runtime.queue("default").storage.claim(VICTIM)
    assert runtime.queue("default").deserialize_task(claimed.data).id == job_id
    if backend.kind == "redis":
        write_redis_junk(backend, job_id)
    else:
        write_sqlite_junk(runtime)

    for argv in (["status"], ["status", "--json"], ["workers"], ["workers", "--json"],
                 ["periodic"], ["periodic", "--json"]):
        assert main(argv) == 0, argv
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err and "Error" not in captured.err, captured.err
    data = status(runtime, totals=False)
    assert data["queues"]["default"]["running"] >= 1
    assert all(isinstance(w["id"], str) and isinstance(w["host"], str)
               for w in list_workers(runtime))
    assert [row["name"] for row in list_periodic(runtime)] == ["nightly"]
    console = Data(runtime)  # what the console reads, through tq.queries
    assert console.status()["queues"]["default"]["paused"] is False
    assert console.workers() and console.periodic() and console.paused_targets()

    # The victim stopped heartbeating: its valid job is put back, by the
    # backend's clock, next to the junk.
    observer = backend.runtime(**env)
    recovered = []
    wait_for(lambda: recovered.append(recover_lost(observer)) or sum(recovered) >= 1,
             timeout=20, message="the victim's job to be recovered")
    start_consumer(backend.runtime(**env), workers=1, queues=["default"])
    wait_for_states(runtime, [job_id], timeout=30)
    assert log.read_text().split() == [job_id]
    assert main(["workers"]) == 0 and main(["status"]) == 0
    # The malformed in-flight entries were moved aside where an operator sees them.
    reasons = [entry["reason"] for entry in runtime.control.quarantined(1000)]
    assert any(reason.startswith("malformed in-flight record") for reason in reasons)


def test_two_consumers_one_clock_off_by_30s_every_job_runs_once(backend, start_consumer,
                                                                 tmp_path, monkeypatch):
    """Liveness is judged by the queue backend's clock: a consumer whose host
    clock is 30 s slow is alive, so none of its jobs is taken over."""
    monkeypatch.syspath_prepend(str(TESTS_DIR))
    env = {"TQ_TASKS_MODULES": MODULES, "TQ_CONSUMER_LEASE": "5"}
    log = tmp_path / "runs.log"
    fast, slow = backend.runtime(**env), backend.runtime(**env)
    slow.clock = lambda: time.time() - 30
    ids = tq.submit_many([{"task": "testtasks.log_run", "args": [str(log), 0.4]}
                          for _ in range(16)], runtime=fast)
    start_consumer(slow, workers=2, queues=["default"])
    start_consumer(fast, workers=2, queues=["default"])
    wait_for_states(fast, ids, timeout=60)
    wait_for(lambda: queue_depths(fast, "default") == {"queued": 0, "scheduled": 0,
                                                        "running": 0, "held": 0},
             message="queue and in-flight records empty")
    runs = log.read_text().split()
    assert sorted(runs) == sorted(ids), f"{len(runs)} runs of {len(ids)} jobs"


def test_recovered_job_goes_back_ahead_of_the_backlog(backend, start_consumer, tmp_path,
                                                      monkeypatch):
    """A dead consumer's job was first in line: it runs again before the 400
    jobs queued behind it, at its own priority."""
    monkeypatch.syspath_prepend(str(TESTS_DIR))
    env = {"TQ_TASKS_MODULES": MODULES, "TQ_CONSUMER_LEASE": "1"}
    runtime = backend.runtime(**env)
    log = tmp_path / "runs.log"
    register(runtime, VICTIM)
    first = tq.submit("testtasks.log_run", str(log), priority=5, runtime=runtime)
    claimed = runtime.queue("default").storage.claim(VICTIM)
    assert runtime.queue("default").deserialize_task(claimed.data).id == first
    backlog = tq.submit_many([{"task": "testtasks.log_run", "args": [str(log)], "priority": 5}
                              for _ in range(400)], runtime=runtime)
    later_low = tq.submit("testtasks.log_run", str(log), priority=0, runtime=runtime)
    observer = backend.runtime(**env)
    wait_for(lambda: recover_lost(observer) == 1, timeout=20,
             message="the victim's job to be recovered")
    start_consumer(backend.runtime(**env), workers=1, queues=["default"])
    wait_for_states(runtime, [first, *backlog, later_low], timeout=120)
    runs = log.read_text().split()
    assert runs[0] == first, f"recovered job ran at position {runs.index(first)}"
    assert runs[-1] == later_low and len(runs) == 402


def _huey_consumer(backend, tmp_path) -> subprocess.Popen:
    environment = {**os.environ, **backend.env, "TQ_TASKS_MODULES": MODULES,
                   "TQ_CONSUMER_LEASE": "1", "PYTHONPATH": str(TESTS_DIR)}
    executable = Path(sys.executable).with_name("huey_consumer")
    return subprocess.Popen([str(executable), "hueyapp.huey", "-w", "1", "-k", "thread"],
                            env=environment, cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=open(tmp_path / "huey_consumer.err", "wb"))


def test_stock_huey_consumer_job_is_never_rerun_by_tq(backend, start_consumer, tmp_path,
                                                     monkeypatch):
    """A `huey_consumer` serving tq's queue never registered as a tq consumer:
    tq's recovery leaves its running job alone (with a 1 s lease and a 3 s job)."""
    monkeypatch.syspath_prepend(str(TESTS_DIR))
    env = {"TQ_TASKS_MODULES": MODULES, "TQ_CONSUMER_LEASE": "1"}
    runtime = backend.runtime(**env)
    log = tmp_path / "runs.log"
    job_id = tq.submit("testtasks.log_run", str(log), 3.0, runtime=runtime)
    stock = _huey_consumer(backend, tmp_path)
    try:
        wait_for(lambda: log.exists() and log.read_text().split() == [job_id], timeout=30,
                 message="huey_consumer to start the job")
        start_consumer(backend.runtime(**env), workers=1, queues=["default"])
        wait_for(lambda: queue_depths(runtime, "default")["running"] == 0
                 and queue_depths(runtime, "default")["queued"] == 0, timeout=30,
                 message="the job to finish")
    finally:
        stock.send_signal(signal.SIGINT)
        try:
            stock.wait(timeout=15)
        except subprocess.TimeoutExpired:
            stock.kill()
    assert log.read_text().split() == [job_id]
    wait_for_states(runtime, [job_id], timeout=30)


def test_long_silent_consumer_is_recovered_before_it_is_forgotten(tmp_path, monkeypatch):
    """A consumer silent for hours (no consumer ran meanwhile) still has its jobs
    put back: it is forgotten only once it holds no in-flight record. Embedded
    only: the backend clock is set back here, which Redis's cannot be."""
    from conftest import Backend

    backend = Backend("embedded", tmp_path)
    runtime = backend.runtime(TQ_CONSUMER_LEASE="1")
    try:
        runtime.control.clock = lambda: time.time() - 7200
        register(runtime, VICTIM)
        runtime.control.clock = time.time
        tq.submit("tq.tasks.demo.echo", runtime=runtime)
        runtime.queue("default").storage.claim(VICTIM)
        assert recover_lost(runtime) == 1
        assert queue_depths(runtime, "default")["queued"] == 1
        assert [w["id"] for w in list_workers(runtime)] == [VICTIM]  # kept while it held a job
        assert recover_lost(runtime) == 0
        assert list_workers(runtime) == []
    finally:
        backend.cleanup()
